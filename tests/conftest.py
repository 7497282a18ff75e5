import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from lhotse import SupervisionSegment, SupervisionSet
from lhotse.features.io import close_cached_file_handles

REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "egs" / "synth" / "s5"


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def venv_python() -> str:
    return sys.executable


@pytest.fixture(autouse=True)
def fresh_array_handles():
    """lhotse keeps array files open by their path as the manifest spells it, often relative
    (exp/senone_ali/...); tests chdir into different recipe copies, so a handle one test opened
    would answer another's reads of the same relative path. Each test starts with none."""
    close_cached_file_handles()
    yield
    close_cached_file_handles()


@pytest.fixture
def one_torch_thread():
    """Small models run faster on one thread than on two (and are kind to a shared machine);
    a test module asks for it with pytestmark = pytest.mark.usefixtures("one_torch_thread")."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_configure(config):
    # Programs started by tests must find the package and the runners.
    os.environ.setdefault("PYTHONUNBUFFERED", "1")


@dataclass
class RecipeRun:
    """The tiny recipe, run once through every stage in a copy (see `tiny_recipe`)."""
    root: Path      # stands in for the repository: steps/ utils/ local/ link to it, .venv to the test's environment
    dir: Path       # <root>/egs/synth/s5, the recipe's copy, where run.sh ran
    seconds: float  # wall-clock time of run.sh
    log: Path       # its output


def write_transcripts_corpus(root: Path, corpus: str, transcripts: dict[str, list[str]],
                             lm_text: str) -> list[str]:
    """Supervision manifests (one per part) and an LM text under root, as a corpus' stage 1
    leaves them; returns steps.prepare_lang's arguments for them (lang dir root/lang)."""
    manifests = root / "manifests"
    manifests.mkdir()
    for part, texts in transcripts.items():
        SupervisionSet.from_segments([SupervisionSegment(f"{part}{i}", f"{part}{i}", 0, 1, text=t)
                                      for i, t in enumerate(texts)]).to_file(
            manifests / f"{corpus}_supervisions_{part}.jsonl.gz")
    (root / "lm_text.txt").write_text(lm_text)
    return ["--manifest-dir", str(manifests), "--corpus", corpus, "--lm-text", str(root / "lm_text.txt"),
            "--lang-dir", str(root / "lang")]


def copy_recipe(root: Path) -> Path:
    """A copy of egs/synth/s5 (scripts, conf, local; no data or exp) under `root`, which
    links to the repository's steps/, utils/ and local/, and whose .venv is the environment
    running the tests (which LM2AM_VENV may have put outside the repository), so that the
    recipe's relative links and path.sh work unchanged."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("steps", "utils", "local"):
        (root / name).symlink_to(REPO / name)
    (root / ".venv").symlink_to(Path(sys.prefix))
    recipe = root / "egs" / "synth" / "s5"
    recipe.mkdir(parents=True)
    for name in ("run.sh", "cmd.sh", "path.sh"):
        shutil.copy2(RECIPE / name, recipe / name)
    for name in ("conf", "local"):
        shutil.copytree(RECIPE / name, recipe / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("steps", "utils"):
        (recipe / name).symlink_to(Path("..") / ".." / ".." / name)
    return recipe


@pytest.fixture(scope="session")
def tiny_recipe(tmp_path_factory) -> RecipeRun:
    """egs/synth/s5/run.sh --config conf/tiny.conf, stages 1-10, once per test session, in
    a temporary copy of the recipe (tests/test_recipe_e2e.py checks what it made; other
    tests take their inputs from it)."""
    root = tmp_path_factory.mktemp("recipe")
    recipe = copy_recipe(root)
    log = recipe / "run.log"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    start = time.monotonic()
    with open(log, "w") as out:
        result = subprocess.run(["./run.sh", "--config", "conf/tiny.conf"], cwd=recipe, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    seconds = time.monotonic() - start
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        pytest.fail(f"run.sh --config conf/tiny.conf failed (exit {result.returncode}) after "
                    f"{seconds:.0f} s; the end of {log}:\n{tail}", pytrace=False)
    return RecipeRun(root, recipe, seconds, log)
