"""Bad-input checks shared by every corpus' preparation: find what cannot be used, drop it,
and say so, per item and in counts. Never raises on bad data and never drops silently.

    recordings, supervisions, skipped = check_manifests(recordings, supervisions)
    write_skipped_report(skipped, "data/manifests/synth_skipped_train.txt", "synth", "train")

or both at once with `filter_manifests(...)`. Reasons (one token each, in the report file as
`id reason`, with details in the log):

    empty-transcript          supervision text missing or blank
    no-recording              supervision whose recording is not in the manifest
    no-supervision            recording that no usable supervision refers to
    missing-audio             an audio file that does not exist
    unreadable-audio          a file soundfile cannot open or decode to the end (truncated,
                              corrupt), or a non-file source that fails to load
    zero-length-audio         no samples (in the manifest or in the file)
    audio-length-mismatch     the file's length differs from the manifest's num_samples
    supervision-beyond-audio  a supervision that ends after its recording
    duplicate-id              an id seen before   } reported by the corpus' own prep
    synthesis-failed          no audio was made   } (see local/synth.py)

A recording that fails drops its supervisions (reported under their own ids when these
differ from the recording's). Words missing from the lexicon are not checked here: the
lang stage maps them to <UNK> and lists them.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import soundfile as sf
from lhotse import Recording, RecordingSet, SupervisionSegment, SupervisionSet

from steps import atomic

log = logging.getLogger(__name__)

REASONS = ("empty-transcript", "no-recording", "no-supervision", "missing-audio",
           "unreadable-audio", "zero-length-audio", "audio-length-mismatch",
           "supervision-beyond-audio", "duplicate-id", "synthesis-failed")

# Same spirit as lhotse's duration tolerance: a few ms of disagreement is not an error.
LENGTH_TOLERANCE_S = 0.025


@dataclass(frozen=True)
class Skipped:
    id: str
    reason: str
    detail: str = ""


def _check_file(path: str, recording: Recording, decode: bool) -> tuple[str, str] | None:
    p = Path(path)
    if not p.is_file():
        return "missing-audio", f"no such file: {path}"
    try:
        info = sf.info(str(p))
    except Exception as e:  # soundfile raises RuntimeError/LibsndfileError/TypeError
        return "unreadable-audio", f"{path}: {e}"
    frames = info.frames
    if frames <= 0:
        return "zero-length-audio", f"{path}: no samples"
    if decode:
        # Decode to the end: a truncated or corrupt file fails here, or yields fewer frames
        # than its header promises.
        try:
            decoded = 0
            with sf.SoundFile(str(p)) as f:
                for block in f.blocks(blocksize=1 << 16, dtype="int16", always_2d=True):
                    decoded += len(block)
        except Exception as e:
            return "unreadable-audio", f"{path}: {e}"
        if decoded != frames:
            return "unreadable-audio", f"{path}: decoded {decoded} of {frames} samples (truncated?)"
    tolerance = int(LENGTH_TOLERANCE_S * info.samplerate)
    expected = recording.num_samples
    if info.samplerate == recording.sampling_rate and abs(frames - expected) > tolerance:
        return "audio-length-mismatch", f"{path}: {frames} samples, manifest says {expected}"
    return None


def audio_problem(recording: Recording, decode: bool = True) -> tuple[str, str] | None:
    """(reason, detail) if the recording's audio cannot be used, else None.

    decode=False only opens file headers (fast, for big corpora); decode=True reads every
    file to the end, which also finds truncated and corrupt files."""
    if recording.num_samples <= 0 or recording.duration <= 0:
        return "zero-length-audio", "the manifest says 0 samples"
    for source in recording.sources:
        if source.type == "file":
            problem = _check_file(str(source.source), recording, decode)
            if problem:
                return problem
        elif decode:
            try:
                samples = recording.load_audio()
            except Exception as e:
                return "unreadable-audio", f"{source.type} source: {e}"
            if samples.shape[-1] == 0:
                return "zero-length-audio", f"{source.type} source: no samples"
            return None
    return None


def check_manifests(recordings: Iterable[Recording], supervisions: Iterable[SupervisionSegment],
                    decode: bool = True) -> tuple[RecordingSet, SupervisionSet, list[Skipped]]:
    """The usable recordings and supervisions, and what was skipped (first reason per id)."""
    recs = list(recordings)
    sups = list(supervisions)
    skipped: dict[str, Skipped] = {}

    def skip(item_id: str, reason: str, detail: str = "") -> None:
        if item_id not in skipped:
            skipped[item_id] = Skipped(item_id, reason, detail)

    by_id: dict[str, Recording] = {}
    for r in recs:
        if r.id in by_id:
            skip(r.id, "duplicate-id", "a second recording with this id in the manifest")
            continue
        by_id[r.id] = r

    kept_sups: list[SupervisionSegment] = []
    for s in sups:
        if s.text is None or not s.text.strip():
            skip(s.id, "empty-transcript", "no words")
        elif s.recording_id not in by_id:
            skip(s.id, "no-recording", f"recording {s.recording_id} is not in the manifest")
        else:
            kept_sups.append(s)

    sups_of: dict[str, list[SupervisionSegment]] = {}
    for s in kept_sups:
        sups_of.setdefault(s.recording_id, []).append(s)

    kept_recs: dict[str, Recording] = {}
    for r in by_id.values():
        if r.id in skipped:
            continue
        if r.id not in sups_of:
            skip(r.id, "no-supervision", "no usable supervision refers to it")
            continue
        problem = audio_problem(r, decode=decode)
        if problem:
            reason, detail = problem
            skip(r.id, reason, detail)
            for s in sups_of[r.id]:
                skip(s.id, reason, f"its recording {r.id}: {detail}")
            continue
        kept_recs[r.id] = r

    final_sups: list[SupervisionSegment] = []
    for s in kept_sups:
        r = kept_recs.get(s.recording_id)
        if r is None:
            continue
        if s.end > r.duration + LENGTH_TOLERANCE_S:
            skip(s.id, "supervision-beyond-audio",
                 f"ends at {s.end:.3f} s, recording {r.id} lasts {r.duration:.3f} s")
            continue
        final_sups.append(s)

    # A recording whose supervisions were all dropped above is dropped too.
    used = {s.recording_id for s in final_sups}
    for rid in list(kept_recs):
        if rid not in used:
            skip(rid, "no-supervision", "all its supervisions were skipped")
            del kept_recs[rid]

    return (RecordingSet.from_recordings(kept_recs.values()),
            SupervisionSet.from_segments(final_sups), list(skipped.values()))


def summarize(skipped: list[Skipped]) -> str:
    counts = Counter(s.reason for s in skipped)
    return ", ".join(f"{reason} {counts[reason]}" for reason in sorted(counts)) or "nothing"


def write_skipped_report(skipped: list[Skipped], path: str | Path, corpus: str, part: str,
                         total: int | None = None) -> None:
    """Logs each skipped item and the counts, and writes `id reason` lines to path (an
    empty file when nothing was skipped, so that a reader knows the check ran)."""
    for s in skipped:
        log.warning("%s %s: skipping %s: %s (%s)", corpus, part, s.id, s.reason, s.detail)
    of = f" of {total}" if total is not None else ""
    if skipped:
        log.warning("%s %s: skipped %d%s: %s; list in %s", corpus, part, len(skipped), of,
                    summarize(skipped), path)
    else:
        log.info("%s %s: nothing skipped%s", corpus, part, f" ({total} checked)" if total else "")
    atomic.write_text(path, "".join(f"{s.id} {s.reason}\n" for s in skipped))


def skipped_report_path(manifest_dir: str | Path, corpus: str, part: str) -> Path:
    return Path(manifest_dir) / f"{corpus}_skipped_{part}.txt"


def filter_manifests(recordings: Iterable[Recording], supervisions: Iterable[SupervisionSegment],
                     manifest_dir: str | Path, corpus: str, part: str, decode: bool = True
                     ) -> tuple[RecordingSet, SupervisionSet, list[Skipped]]:
    """check_manifests + the report in <manifest_dir>/<corpus>_skipped_<part>.txt."""
    recs = list(recordings)
    sups = list(supervisions)
    kept_recs, kept_sups, skipped = check_manifests(recs, sups, decode=decode)
    total = len({r.id for r in recs} | {s.id for s in sups})
    write_skipped_report(skipped, skipped_report_path(manifest_dir, corpus, part), corpus, part,
                         total=total)
    return kept_recs, kept_sups, skipped


def write_manifests(recordings: Iterable[Recording], supervisions: Iterable[SupervisionSegment],
                    recordings_path: str | Path, supervisions_path: str | Path, part: str
                    ) -> tuple[RecordingSet, SupervisionSet]:
    """Checked manifests sorted by id (the order of a directory listing is not fixed),
    validated by lhotse and written atomically; a part with nothing usable is an error."""
    from lhotse.qa import validate_recordings_and_supervisions

    recs = RecordingSet.from_recordings(sorted(recordings, key=lambda r: r.id))
    sups = SupervisionSet.from_segments(sorted(supervisions, key=lambda s: s.id))
    if len(recs) == 0:
        raise RuntimeError(f"{part}: no usable utterance (see the skipped report)")
    validate_recordings_and_supervisions(recs, sups)
    with atomic.atomic_path(recordings_path) as tmp:
        recs.to_file(tmp)
    with atomic.atomic_path(supervisions_path) as tmp:
        sups.to_file(tmp)
    return recs, sups
