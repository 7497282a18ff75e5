"""prepare_librispeech: LibriSpeech -> the recipe's lhotse manifests (stage 1 of
egs/librispeech/s5).

LibriSpeech parts are prepared by lhotse's own recipe (lhotse.recipes.librispeech:
download_librispeech for the parts missing under --corpus-dir when --download is given,
prepare_librispeech for the manifests), then mapped to the recipe's parts:

    train       the --train-parts combined (default train-clean-100; the 960 h set is
                "train-clean-100 train-clean-360 train-other-500")
    dev         dev-clean
    test        test-clean
    dev_other   dev-other     } --extra-parts (default both; dev_other and test_other
    test_other  test-other    } are scored like dev and test)

Transcripts are normalised to the toolkit's conventions (local/librispeech/text.py:
LibriSpeech's own text passes unchanged). Word alignments found next to the transcripts
(`<speaker>-<chapter>.alignment.txt`, the format lhotse reads, e.g. the Montreal Forced
Aligner alignments of github.com/CorentinJ/librispeech-alignments, or --alignments-dir)
are kept as the reference `word` alignment when, silences left out, their words are
the transcript's; steps.score_alignment then measures the aligner against them.

Nothing is dropped silently. Before lhotse runs, the part's transcript files are
scanned: blank lines, lines with an id but no words and repeated ids are reported;
lhotse's prepare_librispeech cannot parse such lines, so a part that has any (or on which
prepare_librispeech fails, e.g. on an unreadable file) is prepared utterance by
utterance with lhotse's parse_utterance, each failure reported. Transcript lines that
got no recording (missing or unreadable audio) and audio files without a transcript line
are reported too, then the shared checks (local/manifest_checks.py) drop and report
what the manifests cannot use (empty transcript after normalisation, zero-length or
wrongly sized audio; with --check-audio decode also truncated or corrupt files).

Reads:  <corpus-dir>/<part>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac
        <corpus-dir>/<part>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt
        <alignments-dir>/<part>/<speaker>/<chapter>/<speaker>-<chapter>.alignment.txt (optional)
Writes: <out-dir>/librispeech_{recordings,supervisions}_<part>.jsonl.gz   recipe parts
        <out-dir>/librispeech_skipped_<part>.txt        `id reason`, one line per item left out
        <out-dir>/librispeech_word_alignments.txt       `part count`: parts with reference
                                                        word alignments (for scoring)
        <out-dir>/lhotse/librispeech_*_<LibriSpeech part>.jsonl.gz  prepare_librispeech's
                                                        own output (reused while its
                                                        inputs are unchanged)
        <out-dir>/.librispeech_<part>.done              the part's fingerprint and counts
A part whose manifests exist and whose inputs (transcript files, options) did not change
is not redone (force redoes it).

Example (from egs/librispeech/s5):
  python -m local.librispeech --corpus-dir /data/LibriSpeech --out-dir data/manifests \\
      --train-parts train-clean-100 --extra-parts dev-other test-other --nj 8
or in Python:
  manifests = prepare_librispeech("/data/LibriSpeech", "data/manifests", nj=8)
  manifests["train"]["recordings"], manifests["train"]["supervisions"]
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from lhotse import load_manifest
from lhotse.recipes import librispeech as lhotse_librispeech

from local import manifest_checks
from local.librispeech.text import ALL_PARTS, CORPUS, normalise, recipe_parts
from local.manifest_checks import Skipped
from steps.core import atomic
from steps.data.manifests import manifest_paths

log = logging.getLogger(__name__)
VERSION = 1  # of what this module writes: a change redoes finished parts


class LibriSpeechError(RuntimeError):
    """The manifests could not be made (parts missing, a part with nothing usable)."""


@dataclass
class PartData:
    """What one LibriSpeech part gave: recordings, supervisions and the items left out."""

    recordings: list = field(default_factory=list)
    supervisions: list = field(default_factory=list)
    skipped: list = field(default_factory=list)  # local.manifest_checks.Skipped
    seen: int = 0  # distinct items looked at (transcript ids and audio files)
    changed_text: int = 0
    word_alignments: int = 0
    alignment_mismatch: int = 0


# ---------------------------------------------------------------- transcripts

def transcript_files(part_dir: Path) -> list[Path]:
    return sorted(part_dir.rglob("*.trans.txt"))


def scan_transcripts(part_dir: Path) -> tuple[dict[str, str], list]:
    """utt id -> text of every usable transcript line of a part, and the lines that are
    not usable (blank, no words, an id seen before) as Skipped items."""
    texts: dict[str, str] = {}
    problems: list[Skipped] = []
    seen: set[str] = set()
    for trans in transcript_files(part_dir):
        lines = trans.read_text(encoding="utf-8", errors="replace").splitlines()
        for number, line in enumerate(lines, 1):
            fields = line.split(maxsplit=1)
            if not fields:
                problems.append(Skipped(f"{trans.name}:{number}", "blank-line", f"{trans}:{number}"))
                continue
            utt_id = fields[0]
            if utt_id in seen:
                problems.append(Skipped(f"{utt_id}@{trans.name}:{number}", "duplicate-id",
                                        f"{trans}:{number}: the id {utt_id} occurs again"))
                continue
            seen.add(utt_id)
            if len(fields) < 2 or not fields[1].strip():
                problems.append(Skipped(utt_id, "empty-transcript", f"{trans}:{number}: an id without words"))
            else:
                texts[utt_id] = fields[1].strip()
    return texts, problems


def audio_path(part_dir: Path, utt_id: str) -> Path:
    """Where LibriSpeech keeps an utterance's audio (lhotse's parse_utterance does the same)."""
    return part_dir / Path(utt_id.replace("-", "/")).parent / f"{utt_id}.flac"


def fingerprint(corpus_dir: Path, ls_parts: list[str], options: dict) -> str:
    """A recipe part's inputs: its transcript files' bytes, the options, and the code that
    prepares and checks it (this program, its text normalisation, the shared checks: an
    edit redoes the part)."""
    digest = hashlib.sha256(json.dumps([VERSION, options, ls_parts], sort_keys=True).encode())
    here = Path(__file__).resolve().parent
    for source in (here / "prepare.py", here / "text.py", Path(manifest_checks.__file__)):
        digest.update(source.read_bytes())
    for part in ls_parts:
        for trans in transcript_files(corpus_dir / part):
            digest.update(str(trans.relative_to(corpus_dir)).encode())
            digest.update(trans.read_bytes())
    return digest.hexdigest()


# ---------------------------------------------------------------- lhotse

def with_lhotse(corpus_dir: Path, part: str, alignments_dir: Path, raw_dir: Path, nj: int,
                stamp: str, force: bool):
    """lhotse's prepare_librispeech on one part: (recordings, supervisions), or None if it
    failed (logged). Its manifests in raw_dir are reused when they were made from the same
    inputs (stamp) and not force."""
    stamp_file = raw_dir / f".{CORPUS}_{part}.fingerprint"
    if force or not stamp_file.is_file() or stamp_file.read_text().strip() != stamp:
        stamp_file.unlink(missing_ok=True)
        for kind in ("recordings", "supervisions"):
            (raw_dir / f"{CORPUS}_{kind}_{part}.jsonl.gz").unlink(missing_ok=True)
    try:
        manifests = lhotse_librispeech.prepare_librispeech(corpus_dir, alignments_dir=alignments_dir, dataset_parts=[part],
                                        output_dir=raw_dir, num_jobs=nj)
        result = list(manifests[part]["recordings"]), list(manifests[part]["supervisions"])
        stamp_file.write_text(stamp + "\n")
        return result
    except Exception as e:  # a bad file must not stop the corpus: fall back, report per item
        log.warning("%s: lhotse's prepare_librispeech failed (%s: %s); preparing the part "
                    "utterance by utterance instead", part, type(e).__name__, str(e)[:300])
        return None


def per_utterance(corpus_dir: Path, part: str, alignments_dir: Path, texts: dict[str, str], nj: int):
    """The part through lhotse's parse_utterance, one line at a time: (recordings,
    supervisions, Skipped items for the lines that raised)."""
    part_dir = corpus_dir / part
    tasks, queued = [], set()
    for trans in transcript_files(part_dir):
        ali_path = alignments_dir / trans.parent.relative_to(corpus_dir) / (trans.stem.split(".")[0] + ".alignment.txt")
        alignments = {}
        if ali_path.is_file():
            try:
                alignments = lhotse_librispeech.parse_alignments(ali_path)
            except Exception as e:
                log.warning("%s: unreadable alignment file, its utterances get no reference alignment: %s: %s",
                            ali_path, type(e).__name__, e)
        ids = [line.split(maxsplit=1)[0] for line in trans.read_text(encoding="utf-8", errors="replace").splitlines()
               if line.strip()]
        for utt_id in ids:
            if utt_id in texts and utt_id not in queued:  # a repeated id: its first line only
                queued.add(utt_id)
                tasks.append((utt_id, alignments))

    def parse(task):
        utt_id, alignments = task
        try:
            return utt_id, lhotse_librispeech.parse_utterance(part_dir, f"{utt_id} {texts[utt_id]}", alignments), None
        except Exception as e:
            return utt_id, None, f"{type(e).__name__}: {str(e)[:300]}"

    recordings, supervisions, failed = [], [], []
    with ThreadPoolExecutor(max(1, nj)) as pool:
        for utt_id, result, error in pool.map(parse, tasks):
            if error is not None:
                failed.append(Skipped(utt_id, "unreadable-audio", f"{audio_path(part_dir, utt_id)}: {error}"))
            elif result is not None:  # None: no audio file (found by reconcile)
                recordings.append(result[0])
                supervisions.append(result[1])
    return recordings, supervisions, failed


def reconcile(part_dir: Path, texts: dict[str, str], reported: set[str], made: set[str]) -> list:
    """Skipped items for the transcript lines that got no recording and the audio files
    that no transcript line names."""
    skipped = []
    for utt_id in texts:
        if utt_id in made or utt_id in reported:
            continue
        path = audio_path(part_dir, utt_id)
        if not path.is_file():
            skipped.append(Skipped(utt_id, "missing-audio", f"no such file: {path}"))
        else:
            skipped.append(Skipped(utt_id, "unreadable-audio", f"{path}: lhotse made no recording of it"))
    for path in sorted(part_dir.rglob("*.flac")):
        if path.stem not in texts and path.stem not in reported:
            skipped.append(Skipped(path.stem, "no-supervision", f"{path}: no transcript line names it"))
    return skipped


def clean_alignment(items, words: list[str]):
    """A reference word alignment in the conventions (silences left out, symbols
    normalised), or None if its words are not the transcript's."""
    kept = []
    for item in items:
        symbol = normalise(item.symbol)
        if symbol:
            kept.append(item._replace(symbol=symbol))
    return kept if [k.symbol for k in kept] == words else None


def prepare_part(corpus_dir: Path, part: str, alignments_dir: Path, raw_dir: Path, nj: int,
                 options: dict, force: bool) -> PartData:
    """One LibriSpeech part, normalised, with everything left out so far reported."""
    part_dir = corpus_dir / part
    texts, problems = scan_transcripts(part_dir)
    data = PartData(skipped=list(problems))
    if problems:
        log.warning("%s: %d transcript lines lhotse's prepare_librispeech cannot parse (blank, no words "
                    "or a repeated id); preparing the part utterance by utterance", part, len(problems))
        result = None
    else:
        result = with_lhotse(corpus_dir, part, alignments_dir, raw_dir, nj,
                             fingerprint(corpus_dir, [part], options), force)
    if result is None:
        recordings, supervisions, failed = per_utterance(corpus_dir, part, alignments_dir, texts, nj)
        data.skipped += failed
    else:
        recordings, supervisions = result
    reported = {s.id for s in data.skipped}
    made = {s.id for s in supervisions} & {r.id for r in recordings}
    data.skipped += reconcile(part_dir, texts, reported, made)
    data.seen = len(set(texts) | {s.id for s in data.skipped})

    for sup in supervisions:
        text = normalise(sup.text or "")
        if text != sup.text:
            data.changed_text += 1
            sup.text = text
        if sup.alignment and "word" in sup.alignment:
            cleaned = clean_alignment(sup.alignment["word"], text.split())
            alignment = {k: v for k, v in sup.alignment.items() if k != "word"}
            if cleaned is None:
                data.alignment_mismatch += 1
            else:
                alignment["word"] = cleaned
                data.word_alignments += 1
            sup.alignment = alignment or None
    data.recordings, data.supervisions = recordings, supervisions
    if data.changed_text:
        log.info("%s: %d transcripts changed by the normalisation", part, data.changed_text)
    if data.alignment_mismatch:
        log.warning("%s: %d reference word alignments dropped: their words differ from the transcript's",
                    part, data.alignment_mismatch)
    return data


# ---------------------------------------------------------------- recipe parts

def stamp_path(out_dir: Path, part: str) -> Path:
    return out_dir / f".{CORPUS}_{part}.done"


def read_stamp(out_dir: Path, part: str) -> dict:
    try:
        return json.loads(stamp_path(out_dir, part).read_text())
    except (OSError, ValueError):
        return {}


def write_recipe_part(out_dir: Path, part: str, pieces: list[PartData], decode: bool) -> dict:
    """Checks, reports and writes one recipe part made of LibriSpeech parts' data."""
    recordings = [r for p in pieces for r in p.recordings]
    supervisions = [s for p in pieces for s in p.supervisions]
    recs, sups, skipped = manifest_checks.check_manifests(recordings, supervisions, decode=decode)
    skipped = [s for p in pieces for s in p.skipped] + skipped
    manifest_checks.write_skipped_report(
        skipped, manifest_checks.skipped_report_path(out_dir, CORPUS, part), CORPUS, part,
        total=sum(p.seen for p in pieces))
    # LibriSpeech ids are unique across its parts: the manifests are sorted by them.
    rec_path, sup_path = manifest_paths(out_dir, CORPUS, part)
    recs, sups = manifest_checks.write_manifests(recs, sups, rec_path, sup_path, part)
    hours = sum(r.duration for r in recs) / 3600
    with_ali = sum(1 for s in sups if s.alignment and "word" in s.alignment)
    log.info("%s: %d utterances, %.2f h, %d speakers, %d with reference word alignments, %d left out -> %s, %s",
             part, len(recs), hours, len({s.speaker for s in sups}), with_ali, len(skipped), rec_path, sup_path)
    return {"utterances": len(recs), "hours": round(hours, 4), "skipped": len(skipped),
            "word_alignments": with_ali, "changed_text": sum(p.changed_text for p in pieces)}


def ensure_parts(corpus_dir: Path, parts: list[str], download: bool) -> None:
    """Downloads (lhotse's download_librispeech) the parts missing under corpus_dir, or
    stops with a message saying what is missing."""
    missing = [p for p in parts if not (corpus_dir / p).is_dir()]
    if not missing:
        return
    if not download:
        raise LibriSpeechError(f"{', '.join(missing)} not found under {corpus_dir}; "
                               "give the directory that holds them (--corpus-dir) or --download")
    if corpus_dir.name != "LibriSpeech":
        raise LibriSpeechError(f"--download needs --corpus-dir to end in LibriSpeech "
                               f"(lhotse unpacks the parts into <dir>/LibriSpeech), got {corpus_dir}")
    log.info("downloading %s into %s (openslr.org resource 12)", " ".join(missing), corpus_dir.parent)
    lhotse_librispeech.download_librispeech(corpus_dir.parent, dataset_parts=missing)


def write_alignment_summary(out_dir: Path, parts: list[str]) -> None:
    lines = []
    for part in parts:
        count = read_stamp(out_dir, part).get("counts", {}).get("word_alignments", 0)
        if count:
            lines.append(f"{part} {count}\n")
    atomic.write_text(out_dir / f"{CORPUS}_word_alignments.txt", "".join(lines))


def prepare_librispeech(corpus_dir: str | Path, output_dir: str | Path,
                        train_parts: Sequence[str] = ("train-clean-100",),
                        extra_parts: Sequence[str] = ("dev-other", "test-other"),
                        alignments_dir: str | Path | None = None, download: bool = False,
                        check_audio: str = "header", nj: int = 1, force: bool = False) -> dict[str, dict]:
    """The recipe's parts (see the module docstring) under output_dir, each skipped when
    made from the same inputs (force redoes it).

    corpus_dir: the LibriSpeech directory (holds train-clean-100/, dev-clean/, ...);
    alignments_dir: a tree of <speaker>-<chapter>.alignment.txt files (default corpus_dir);
    download: fetch the parts missing under corpus_dir (lhotse's download_librispeech);
    check_audio: "header" opens every file's header, "decode" reads every file to the end;
    nj: threads for lhotse's preparation.
    Returns {part: {"recordings": RecordingSet, "supervisions": SupervisionSet}}. Raises
    LibriSpeechError when parts are missing or a part has no usable utterance."""
    if check_audio not in ("header", "decode"):
        raise ValueError(f"check_audio must be header or decode, got {check_audio!r}")
    parts = recipe_parts(list(train_parts), list(extra_parts))
    corpus_dir, out_dir = Path(corpus_dir), Path(output_dir)
    alignments_dir = Path(alignments_dir) if alignments_dir else corpus_dir
    options = {"corpus_dir": str(corpus_dir), "alignments_dir": str(alignments_dir),
               "check_audio": check_audio}
    started = time.time()
    todo = {}
    for part, ls_parts in parts.items():
        stamp = None
        if all((corpus_dir / p).is_dir() for p in ls_parts):
            stamp = fingerprint(corpus_dir, ls_parts, options)
            done = all(p.is_file() for p in manifest_paths(out_dir, CORPUS, part))
            if done and not force and read_stamp(out_dir, part).get("fingerprint") == stamp:
                log.info("%s: manifests exist, nothing to do (--force redoes them)", part)
                continue
        todo[part] = stamp
    if todo:
        ensure_parts(corpus_dir, sorted({p for part in todo for p in parts[part]}, key=ALL_PARTS.index),
                     download)
    raw_dir = out_dir / "lhotse"
    for part, stamp in todo.items():
        stamp = stamp or fingerprint(corpus_dir, parts[part], options)
        stamp_path(out_dir, part).unlink(missing_ok=True)
        log.info("%s: from %s", part, " + ".join(parts[part]))
        pieces = [prepare_part(corpus_dir, p, alignments_dir, raw_dir, nj, options, force)
                  for p in parts[part]]
        try:
            counts = write_recipe_part(out_dir, part, pieces, decode=check_audio == "decode")
        except RuntimeError as e:
            raise LibriSpeechError(str(e)) from e
        atomic.write_text(stamp_path(out_dir, part), json.dumps(
            {"fingerprint": stamp, "librispeech_parts": parts[part], "counts": counts}) + "\n")
    write_alignment_summary(out_dir, list(parts))
    log.info("manifests of %s in %s (%.1f s)", " ".join(parts), out_dir, time.time() - started)
    return {part: {"recordings": load_manifest(rec), "supervisions": load_manifest(sup)}
            for part in parts for rec, sup in [manifest_paths(out_dir, CORPUS, part)]}
