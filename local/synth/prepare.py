"""prepare_synth: the embedded synth corpus (egs/synth/s5) as lhotse manifests.

The text comes from a grammar (local/synth/sentences.py), unless transcripts are given;
espeak-ng (local/synth/espeak.py) speaks it with many speakers (local/synth/voices.py),
noise is added (local/synth/noise.py, local/synth/render.py), and every supervision
carries the true word and phone boundaries (local/synth/boundaries.py, whose docstring
defines them).

Reads:  the config (conf/data_*.yaml: seed, text, speakers, audio); the transcripts
        <text-dir>/{train,dev,test}.txt (`utt-id WORDS...`) when text_dir is given
Writes: <out-dir>/text/{train,dev,test}.txt, lm_text.txt, vocab.txt   the generated text
                                                      (when no text_dir is given)
        <out-dir>/audio/<part>/<speaker>/<utt>.flac   16 kHz mono FLAC
        <out-dir>/audio/<part>/<speaker>/<utt>.json   the utterance's recording and
                                                      supervision (resume: a finished
                                                      utterance is skipped)
        <out-dir>/manifests/synth_{recordings,supervisions}_<part>.jsonl.gz
        <out-dir>/manifests/synth_skipped_<part>.txt  `id reason` (see local/manifest_checks.py;
                                                      also synthesis-failed: espeak made nothing)
        <out-dir>/audio/log/synth.JOB.log             per job, when nj > 1
        <out-dir>/manifests/.synth_<part>/.done        written last, with the fingerprint of
                                                      the part's inputs (its transcripts, the
                                                      seed, speaker and audio settings)
Recordings point at the FLAC files by the path as given (data/audio/... when run from
egs/synth/s5). A part whose manifests exist and whose marker holds the same fingerprint
is finished and is not redone (force rewrites its manifests); when the text or the
config changed, the part and the utterances whose inputs changed are made again. An
interrupted part is finished by the next run: the utterances already made are kept.
With nj > 1 the utterances are shared among jobs started through the job runner (cmd),
each running `python -m local.synth ... --job JOB` (run_job).

Example (from egs/synth/s5):
  python -m local.synth --config conf/data_tiny.yaml --out-dir data --nj 2
or in Python:
  manifests = prepare_synth("conf/data_tiny.yaml", "data", nj=2)
  manifests["train"]["recordings"], manifests["train"]["supervisions"]
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import random
import time
from pathlib import Path
from typing import Sequence

import soundfile as sf
import torch
from lhotse import SupervisionSegment, load_manifest

from local import manifest_checks
from local.synth import render as rendering
from local.synth.boundaries import Citations
from local.synth.config import PARTS, SynthDataConfig
from local.synth.espeak import Espeak
from local.synth.noise import LazyBabble
from local.synth.render import Utterance
from local.synth.sentences import prepare_text
from local.synth.voices import Speaker, make_speakers
from steps.core import atomic, jobs
from steps.core.config import load_config
from steps.core.log import progress
from steps.data.manifests import manifest_paths

log = logging.getLogger(__name__)

CORPUS = "synth"


class SynthError(RuntimeError):
    """The corpus could not be made (missing transcripts, failed jobs, unusable manifests)."""


# ---------------------------------------------------------------- the plan

def read_transcripts(path: str | Path) -> list[tuple[str, str]]:
    """(utt-id, text) per non-blank line; a line with an id only has text ''."""
    out = []
    for line in Path(path).read_text().splitlines():
        fields = line.split(maxsplit=1)
        if fields:
            out.append((fields[0], fields[1].strip() if len(fields) > 1 else ""))
    return out


def plan_part(config: SynthDataConfig, part: str, transcripts: list[tuple[str, str]],
              speakers: list[Speaker]) -> tuple[list[Utterance], list[str]]:
    """Utterances with their speakers (balanced, shuffled; independent of --nj), and the
    ids that occur more than once (all but the first are dropped)."""
    rng = random.Random(f"assign-{config.seed}-{part}")
    slots = speakers * math.ceil(len(transcripts) / max(1, len(speakers)))
    rng.shuffle(slots)
    seen, duplicates, plan = set(), [], []
    for (utt_id, text), speaker in zip(transcripts, slots):
        if utt_id in seen:
            duplicates.append(utt_id)
            continue
        seen.add(utt_id)
        plan.append(Utterance(utt_id, part, text, speaker))
    return plan, duplicates


def build_plans(config: SynthDataConfig, text_dir: Path, parts: list[str]):
    """Every part's plan and duplicate ids (the same in every job)."""
    speakers = make_speakers(config.speakers, config.seed)
    plans, duplicates = {}, {}
    for part in parts:
        plans[part], duplicates[part] = plan_part(
            config, part, read_transcripts(text_dir / f"{part}.txt"), speakers[part])
    return plans, duplicates


# ---------------------------------------------------------------- fingerprints

# The code that makes the audio: editing it redoes the audio and stage 1 (like a setting).
AUDIO_SOURCES = tuple(Path(__file__).with_name(f"{name}.py")
                      for name in ("prepare", "render", "voices", "boundaries", "noise", "espeak"))


def sources_fingerprint() -> str:
    h = hashlib.sha256()
    for path in AUDIO_SOURCES:
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def config_fingerprint(config: SynthDataConfig) -> str:
    """What the audio depends on besides the text: seed, speakers and audio settings, and
    the code that makes it."""
    data = [config.seed, dataclasses.asdict(config.speakers), dataclasses.asdict(config.audio),
            sources_fingerprint()]
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def utterance_fingerprint(config_print: str, utt: Utterance) -> str:
    data = [config_print, utt.part, utt.id, utt.text, utt.speaker.id]
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()[:16]


def audio_path(out_dir: Path, utt: Utterance) -> Path:
    return out_dir / "audio" / utt.part / utt.speaker.id / f"{utt.id}.flac"


# ---------------------------------------------------------------- audio and manifests

def sidecar_path(flac: Path) -> Path:
    return flac.with_suffix(".json")


def read_sidecar(out_dir: Path, utt: Utterance, config_print: str) -> dict | None:
    """A finished utterance's sidecar, or None if there is none or it was made from other
    inputs (other text, speaker or settings: the utterance is then made again)."""
    path = sidecar_path(audio_path(out_dir, utt))
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if data.get("fingerprint") != utterance_fingerprint(config_print, utt):
        return None
    return data


def synthesize_share(config: SynthDataConfig, plans: dict[str, list[Utterance]], out_dir: Path,
                     job: int, nj: int) -> dict[str, int]:
    """Makes the audio and sidecars of this job's utterances (every nj-th, from job-1),
    skipping finished ones. Returns counts."""
    torch.set_num_threads(1)
    engine = Espeak()
    citations = Citations(engine)
    counts = {"made": 0, "kept": 0, "failed": 0, "empty": 0}
    config_print = config_fingerprint(config)
    for part, plan in plans.items():
        share = plan[job - 1::nj]
        todo = [u for u in share
                if u.text.strip() and read_sidecar(out_dir, u, config_print) is None]
        counts["kept"] += sum(1 for u in share if u.text.strip()) - len(todo)
        counts["empty"] += sum(1 for u in share if not u.text.strip())
        if not todo:
            continue
        babble = LazyBabble(engine, plan, config, part)
        for utt in progress(todo, desc=f"synth {part} job {job}/{nj}", mininterval=5):
            flac = audio_path(out_dir, utt)
            try:
                rendered = rendering.render(engine, citations, utt, config, babble)
                recording, supervision = rendering.make_manifest_entries(utt, flac, rendered,
                                                                         config.audio.sample_rate)
                with atomic.atomic_path(flac) as tmp:
                    sf.write(str(tmp), rendered.audio, config.audio.sample_rate,
                             format="FLAC", subtype="PCM_16")
                atomic.write_text(sidecar_path(flac), json.dumps(
                    {"fingerprint": utterance_fingerprint(config_print, utt),
                     "recording": recording.to_dict(), "supervision": supervision.to_dict()}) + "\n")
                counts["made"] += 1
            except Exception as e:  # one bad utterance must not stop the others
                log.warning("%s %s: synthesis failed: %s: %s", part, utt.id, type(e).__name__, e)
                counts["failed"] += 1
    return counts


def part_marker_dir(out_dir: Path, part: str) -> Path:
    return out_dir / "manifests" / f".{CORPUS}_{part}"


def part_fingerprint(config: SynthDataConfig, text_dir: Path, part: str) -> dict:
    """What a part's manifests are made from: its transcripts, the settings the audio
    depends on, and the code that makes the audio and checks it."""
    return atomic.inputs_fingerprint([text_dir / f"{part}.txt"], seed=config.seed,
                                     speakers=dataclasses.asdict(config.speakers),
                                     audio=dataclasses.asdict(config.audio),
                                     sources=atomic.source_fingerprint(*AUDIO_SOURCES, manifest_checks.__file__))


def part_done(out_dir: Path, part: str, stamp: dict, force: bool = False) -> bool:
    """The part's manifests exist and were made from the same inputs (logs why not)."""
    return atomic.up_to_date(part_marker_dir(out_dir, part), stamp, force, manifest_paths(out_dir / "manifests", CORPUS, part),
                             what=f"{CORPUS} {part} manifests", logger=log)


def write_part_manifests(plan: list[Utterance], duplicates: list[str], out_dir: Path, part: str,
                         config: SynthDataConfig):
    """Collects the finished utterances, passes them through the shared entry point
    (local.manifest_checks.manifests_from_files: every file checked and decoded, what is
    unusable dropped and reported), validates with lhotse and writes the part's manifests."""
    items, failed = [], []
    config_print = config_fingerprint(config)
    for utt in plan:
        data = read_sidecar(out_dir, utt, config_print)
        if data is not None:
            sup = SupervisionSegment.from_dict(data["supervision"])
            items.append(manifest_checks.CorpusItem(
                utt.id, audio_path(out_dir, utt), sup.text, sup.speaker, gender=sup.gender,
                language=sup.language, alignment=sup.alignment, custom=sup.custom))
        elif not utt.text.strip():
            # Nothing to say: the checks report the empty transcript.
            items.append(manifest_checks.CorpusItem(utt.id, audio_path(out_dir, utt), utt.text,
                                                    utt.speaker.id))
        else:
            failed.append(manifest_checks.Skipped(
                utt.id, "synthesis-failed", "no audio was made (see the job's log)"))
    manifest_dir = out_dir / "manifests"
    recs, sups, skipped = manifest_checks.manifests_from_files(
        items, decode=True, audio=manifest_checks.AudioFormat(sampling_rate=config.audio.sample_rate))
    skipped = [manifest_checks.Skipped(u, "duplicate-id", "the id occurs again in the text")
               for u in duplicates] + failed + skipped
    manifest_checks.write_skipped_report(
        skipped, manifest_checks.skipped_report_path(manifest_dir, CORPUS, part), CORPUS, part,
        total=len(plan) + len(duplicates))
    rec_path, sup_path = manifest_paths(out_dir / "manifests", CORPUS, part)
    recs, sups = manifest_checks.write_manifests(recs, sups, rec_path, sup_path, part)
    hours = sum(r.duration for r in recs) / 3600
    log.info("%s: %d utterances, %.2f h, %d speakers -> %s, %s", part, len(recs), hours,
             len({s.speaker for s in sups}), rec_path, sup_path)
    return recs, sups, skipped


# ---------------------------------------------------------------- the entry point

def read_part(out_dir: Path, part: str) -> dict:
    """A finished part's manifests, as prepare_synth returns them."""
    rec_path, sup_path = manifest_paths(out_dir / "manifests", CORPUS, part)
    return {"recordings": load_manifest(rec_path), "supervisions": load_manifest(sup_path)}


def run_job(config: str | Path, text_dir: str | Path, output_dir: str | Path, parts: Sequence[str],
            job: int, nj: int) -> dict[str, int]:
    """Job `job` of nj: the audio of its share of the parts' utterances (prepare_synth
    starts these through the job runner, then writes the manifests itself)."""
    cfg = load_config(config, SynthDataConfig)
    plans, _ = build_plans(cfg, Path(text_dir), list(parts))
    counts = synthesize_share(cfg, plans, Path(output_dir), job, nj)
    log.info("job %d/%d: %s", job, nj, counts)
    return counts


def prepare_synth(config: str | Path, output_dir: str | Path, text_dir: str | Path | None = None,
                  parts: Sequence[str] = PARTS, nj: int = 1, cmd: str | None = None,
                  force: bool = False, grammar_dir: str | Path | None = None) -> dict[str, dict]:
    """The synth corpus under output_dir (see the module docstring): the text, made into
    <output_dir>/text from the config's grammar unless text_dir holds transcripts of its
    own, then the audio and the manifests of each part. Parts finished from the same
    inputs are kept (force remakes the text and the manifests; finished audio is kept).

    config: a conf/data_*.yaml file (jobs read it again). nj > 1 shares the synthesis
    among jobs run by `cmd` (a job runner such as utils/run.py; default steps.core.jobs').
    Returns {part: {"recordings": RecordingSet, "supervisions": SupervisionSet}}.
    Raises SynthError when transcripts are missing, jobs fail or a part has no usable
    utterance; GrammarError when the grammar is unusable."""
    cfg = load_config(config, SynthDataConfig)
    out_dir = Path(output_dir)
    parts = list(parts)
    if text_dir is None:
        text_dir = out_dir / "text"
        prepare_text(cfg, text_dir, grammar_dir, force)
    text_dir = Path(text_dir)
    missing = [p for p in parts if not (text_dir / f"{p}.txt").is_file()]
    if missing:
        raise SynthError("no transcripts " + ", ".join(str(text_dir / f"{p}.txt") for p in missing))

    stamps = {p: part_fingerprint(cfg, text_dir, p) for p in parts}
    todo = [p for p in parts if not part_done(out_dir, p, stamps[p], force)]
    if todo:
        _make_parts(config, cfg, text_dir, out_dir, todo, stamps, nj, cmd)
    return {p: read_part(out_dir, p) for p in parts}


def _make_parts(config: str | Path, cfg: SynthDataConfig, text_dir: Path, out_dir: Path,
                parts: list[str], stamps: dict[str, dict], nj: int, cmd: str | None) -> None:
    for part in parts:
        # Unfinished until its manifests are rewritten; the old ones go first, since the
        # audio they point at may be remade.
        atomic.clear_done(part_marker_dir(out_dir, part))
        atomic.remove(*manifest_paths(out_dir / "manifests", CORPUS, part))
    started = time.time()
    plans, duplicates = build_plans(cfg, text_dir, parts)
    if nj > 1:
        job_args = ["--config", str(config), "--text-dir", str(text_dir), "--out-dir", str(out_dir),
                    "--parts", *parts]
        log.info("synthesising %s with %d jobs (logs: %s)", " ".join(parts), nj, out_dir / "audio" / "log")
        try:
            jobs.run_jobs(cmd, nj, out_dir / "audio" / "log" / "synth.JOB.log", "local.synth", job_args)
        except jobs.JobsFailed as e:
            raise SynthError(f"synthesis failed: {e}") from e
    else:
        counts = synthesize_share(cfg, plans, out_dir, 1, 1)
        log.info("synthesis: %s", counts)
    log.info("synthesis took %.1f s", time.time() - started)
    for part in parts:
        try:
            write_part_manifests(plans[part], duplicates[part], out_dir, part, cfg)
        except (RuntimeError, AssertionError) as e:
            raise SynthError(f"{part}: {e}") from e
        atomic.mark_done(part_marker_dir(out_dir, part), fingerprint=stamps[part])
