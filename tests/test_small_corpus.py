"""What a small corpus of one's own trips over, said clearly: stage 10's LM perplexity table
reads the held-out transcripts from the manifests (a corpus writes no data/text/<part>.txt)
and names a part it lacks. utils/stages.sh's stage_report runs with every program but
steps.lm_perplexity recorded instead of run, in a recipe directory that has only the
manifests, the LMs and the teacher (tiny ones)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lhotse import SupervisionSegment, SupervisionSet

from steps.core import checkpoint as ckpt_io
from steps.lm.kneser_ney import estimate_kneser_ney
from steps.lm.model import KIND, ModelConfig, build_model
from steps.lm.tokens import load_sentencepiece
from steps.train_bpe import train_bpe

REPO = Path(__file__).resolve().parents[1]
DEV = ["TURN ON THE LIGHTS", "TURN OFF THE HEATER IN THE KITCHEN", "TURN ON THE RADIO PLEASE"]
LM_TEXT = [f"TURN {a} THE {b}{c}" for a in ("ON", "OFF") for b in ("LIGHTS", "HEATER")
           for c in ("", " IN THE KITCHEN", " IN THE BEDROOM", " PLEASE")]

# stage_report's settings (run.sh defines them) and programs: steps.report and any other
# program are recorded; steps.lm_perplexity runs
STAGE_REPORT = """
set -e
force=false corpus=mine eval_parts="dev test" bpe_vocab_size=25 levels="{levels}" plm_teacher=
systems=baseline seeds=1 aa_seeds= lm_order=3 rescore_lm_order=0 parse_options_configs= run_options=
train_cmd=true
python() {{
  echo "python $*" >> calls.txt
  if [ "$2" = steps.lm_perplexity ]; then "{python}" "$@"; else echo "the table" > RESULTS.md; fi
}}
. "{repo}/utils/log.sh"
. "{repo}/utils/stages.sh"
stage_report
"""


@pytest.fixture
def recipe(tmp_path):
    """A recipe directory after stage 9 of a corpus with a dev part and no test part."""
    (tmp_path / "data" / "manifests").mkdir(parents=True)
    SupervisionSet.from_segments(
        SupervisionSegment(id=f"dev-{i}", recording_id=f"dev-{i}", start=0.0, duration=1.0, text=text)
        for i, text in enumerate(DEV)).to_file(tmp_path / "data" / "manifests" / "mine_supervisions_dev.jsonl.gz")
    (tmp_path / "lm_text.txt").write_text("".join(line + "\n" for line in LM_TEXT * 5))
    (tmp_path / "data" / "lang_bpe_25").mkdir()
    train_bpe(tmp_path / "lm_text.txt", tmp_path / "data" / "lang_bpe_25" / "bpe.model", 25)
    (tmp_path / "data" / "lang_test").mkdir()
    estimate_kneser_ney(LM_TEXT, order=3)[0].write_arpa(tmp_path / "data" / "lang_test" / "lm_3gram.arpa")
    num_units = load_sentencepiece(tmp_path / "data" / "lang_bpe_25" / "bpe.model").get_piece_size()
    torch.manual_seed(0)
    config = {"model": dict(d_model=8, num_heads=2, num_layers=1, ff_dim=16, dropout=0.0, max_context=32,
                            objective="causal"), "train": {}}
    model = build_model(num_units, ModelConfig(**config["model"]))
    (tmp_path / "exp" / "lm_subword").mkdir(parents=True)
    ckpt_io.save({"kind": KIND, "level": "subword", "config": config, "num_units": num_units,
                  "state_dict": model.state_dict()}, tmp_path / "exp" / "lm_subword" / "final.pt")
    return tmp_path


def run_stage_report(recipe: Path, levels: str = "subword") -> str:
    script = STAGE_REPORT.format(levels=levels, python=sys.executable, repo=REPO)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(["bash", "-c", script], cwd=recipe, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stderr


def test_stage_report_reads_the_held_out_transcripts_from_the_manifests(recipe):
    log = run_stage_report(recipe)
    calls = (recipe / "calls.txt").read_text().splitlines()
    assert calls[0].startswith("python -m steps.lm_perplexity --supervisions "
                               "data/manifests/mine_supervisions_dev.jsonl.gz --ngram")
    assert "--lm-perplexity exp/lm_perplexity.txt" in calls[1]  # the table goes into RESULTS.md
    figures = json.loads((recipe / "exp" / "lm_perplexity.json").read_text())
    # RADIO and PLEASE after it: the 3-gram of the LM text cannot score the third sentence
    assert figures["sentences"] == 3 and figures["scored"] == 2
    assert set(figures["models"]) == {"lm_3gram.arpa", "teacher (lm_subword)"}
    assert "LM perplexity table: no test part (data/manifests/mine_supervisions_test.jsonl.gz)" in log


def test_stage_report_says_why_the_table_is_left_out(recipe):
    (recipe / "data" / "manifests" / "mine_supervisions_dev.jsonl.gz").unlink()
    log = run_stage_report(recipe)
    assert "LM perplexity table: no dev part (data/manifests/mine_supervisions_dev.jsonl.gz)" in log
    assert "LM perplexity table left out: neither a dev nor a test part in data/manifests" in log
    (recipe / "exp" / "lm_subword" / "final.pt").unlink()
    log = run_stage_report(recipe, levels="phone")
    assert "LM perplexity table left out: no subword teacher exp/lm_subword/final.pt (levels: phone)" in log
    calls = (recipe / "calls.txt").read_text().splitlines()
    assert len(calls) == 2 and all(call.startswith("python -m steps.report") for call in calls)
    assert all("--lm-perplexity" not in call for call in calls)
