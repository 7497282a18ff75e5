"""Bad-input checks shared by every corpus' preparation: find what cannot be used, drop it,
and say so, per item and in counts. Never raises on bad data and never drops silently.

The entry point for a new corpus takes audio paths, transcripts and speakers, and opens no
file before checking it (so an unreadable file is a report line, not a traceback):

    items = [CorpusItem(id, path, text, speaker) for ...]
    done = prepare_part(items, "data/manifests", corpus, part, sources=[__file__])
    done.recordings, done.supervisions, done.skipped

writes `<corpus>_{recordings,supervisions}_<part>.jsonl.gz` and `<corpus>_skipped_<part>.txt`
and skips the part when its inputs, check settings and the prep's own source (`sources`)
are unchanged. `manifests_from_files(items)` does the checks without writing anything;
`check_manifests(recordings, supervisions)` / `filter_manifests(...)` check manifests a
prep already has (e.g. from a lhotse recipe).

Reasons (one token each, in the report file as `id reason`, with details in the log):

    empty-transcript          supervision text missing or blank
    no-recording              supervision whose recording is not in the manifest
    no-supervision            recording that no usable supervision refers to
    missing-audio             an audio file that does not exist
    unreadable-audio          a file soundfile cannot open or decode to the end (corrupt,
                              or a FLAC cut short), or a non-file source that fails to load
    truncated-audio           fewer samples than the file's header declares (a WAV cut
                              short: its data chunk size, or FLAC's STREAMINFO total)
    zero-length-audio         no samples (in the manifest or in the file)
    audio-length-mismatch     the file's length differs from the manifest's num_samples
    wrong-sampling-rate       not at the expected rate (16 kHz); with resample=True such
                              files are kept and stage 2 (steps.compute_fbank) resamples them
    wrong-channel-count       not the expected number of channels (one); never downmixed
                              (a channel of a stereo file may be another speaker)
    supervision-beyond-audio  a supervision that ends after its recording
    duplicate-id              an id seen before
    synthesis-failed          no audio was made (see local/synth/prepare.py)

A recording that fails drops its supervisions (reported under their own ids when these
differ from the recording's). Words missing from the lexicon are not checked here: the
lang stage maps them to <UNK> and lists them.

Length: one module because every check feeds one per-item report and one skip rule;
split, each corpus would have to wire the report together again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import soundfile as sf
from lhotse import Recording, RecordingSet, SupervisionSegment, SupervisionSet
from lhotse.qa import validate_recordings_and_supervisions

from steps.core import atomic
from steps.data.manifests import manifest_paths

log = logging.getLogger(__name__)

REASONS = ("empty-transcript", "no-recording", "no-supervision", "missing-audio",
           "unreadable-audio", "truncated-audio", "zero-length-audio", "audio-length-mismatch",
           "wrong-sampling-rate", "wrong-channel-count", "supervision-beyond-audio",
           "duplicate-id", "synthesis-failed")

# What the recipes expect (steps.compute_fbank works at 16 kHz, one channel per cut).
SAMPLING_RATE = 16000
CHANNELS = 1

# Same spirit as lhotse's duration tolerance: a few ms of disagreement is not an error.
LENGTH_TOLERANCE_S = 0.025


@dataclass(frozen=True)
class Skipped:
    id: str
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class AudioFormat:
    """What the checks accept: sampling rate (None: any), channel count, and whether a file
    at another rate is kept for stage 2 to resample instead of skipped."""

    sampling_rate: int | None = SAMPLING_RATE
    channels: int = CHANNELS
    resample: bool = False


def declared_frames(path: str | Path) -> int | None:
    """The number of samples per channel a WAV or FLAC header declares (libsndfile reports
    the samples present in a WAV cut short, so only the header tells), or None when the
    format is another or the header does not say."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if head[:4] == b"fLaC":
                # First metadata block is STREAMINFO: 4-byte block header, then 34 bytes;
                # total samples are the low 36 bits of bytes 10-17 of the block.
                f.seek(4)
                block = f.read(4 + 34)
                if len(block) < 38 or block[0] & 0x7F != 0:
                    return None
                total = int.from_bytes(block[4 + 13:4 + 18], "big") & ((1 << 36) - 1)
                return total or None
            if head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE" or head[:4] == b"RF64":
                return None
            block_align = None
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                name, size = chunk[:4], int.from_bytes(chunk[4:], "little")
                if name == b"fmt ":
                    fmt = f.read(size)
                    block_align = int.from_bytes(fmt[12:14], "little") if len(fmt) >= 14 else None
                    if size % 2:
                        f.seek(1, 1)
                elif name == b"data":
                    # 0 and 0xFFFFFFFF: a streamed WAV whose writer never filled in the size.
                    if not block_align or size in (0, 0xFFFFFFFF):
                        return None
                    return size // block_align
                else:
                    f.seek(size + size % 2, 1)
    except OSError:
        return None


def file_problem(path: str | Path, decode: bool = True, audio: AudioFormat = AudioFormat()
                 ) -> tuple[str, str] | None:
    """(reason, detail) if the audio file cannot be used, else None; opens only what is
    needed and never raises on a bad file."""
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
    declared = declared_frames(p)
    if declared is not None and frames < declared:
        return "truncated-audio", (f"{path}: {frames} samples ({frames / info.samplerate:.2f} s), "
                                   f"its header declares {declared} ({declared / info.samplerate:.2f} s)")
    if info.channels != audio.channels:
        return "wrong-channel-count", f"{path}: {info.channels} channels, expected {audio.channels}"
    if audio.sampling_rate and info.samplerate != audio.sampling_rate and not audio.resample:
        return "wrong-sampling-rate", (f"{path}: {info.samplerate} Hz, expected {audio.sampling_rate} "
                                       "(resample=True keeps it for stage 2 to resample)")
    if decode:
        # Decode to the end: a corrupt file fails here, or yields fewer frames than its
        # header promises.
        decoded = 0
        try:
            with sf.SoundFile(str(p)) as f:
                for block in f.blocks(blocksize=1 << 16, dtype="int16", always_2d=True):
                    decoded += len(block)
        except Exception as e:
            return "unreadable-audio", f"{path}: decoding stopped after {decoded} of {frames} samples: {e}"
        if decoded < frames:
            return "truncated-audio", f"{path}: decoded {decoded} of the {frames} samples its header declares"
    return None


def _check_file(path: str, recording: Recording, decode: bool, audio: AudioFormat
                ) -> tuple[str, str] | None:
    problem = file_problem(path, decode, audio)
    if problem:
        return problem
    info = sf.info(path)
    tolerance = int(LENGTH_TOLERANCE_S * info.samplerate)
    expected = recording.num_samples
    if info.samplerate == recording.sampling_rate and abs(info.frames - expected) > tolerance:
        return "audio-length-mismatch", f"{path}: {info.frames} samples, manifest says {expected}"
    return None


def audio_problem(recording: Recording, decode: bool = True, audio: AudioFormat = AudioFormat()
                  ) -> tuple[str, str] | None:
    """(reason, detail) if the recording's audio cannot be used, else None.

    decode=False only opens file headers (fast, for big corpora; still finds a WAV cut
    short); decode=True reads every file to the end, which also finds corrupt files."""
    if recording.num_samples <= 0 or recording.duration <= 0:
        return "zero-length-audio", "the manifest says 0 samples"
    if recording.num_channels != audio.channels:
        return "wrong-channel-count", f"{recording.num_channels} channels, expected {audio.channels}"
    if (audio.sampling_rate and recording.sampling_rate != audio.sampling_rate
            and not audio.resample):
        return "wrong-sampling-rate", f"{recording.sampling_rate} Hz, expected {audio.sampling_rate}"
    for source in recording.sources:
        if source.type == "file":
            problem = _check_file(str(source.source), recording, decode, audio)
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
                    decode: bool = True, audio: AudioFormat = AudioFormat()
                    ) -> tuple[RecordingSet, SupervisionSet, list[Skipped]]:
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
        problem = audio_problem(r, decode=decode, audio=audio)
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

    other_rate = sum(1 for r in kept_recs.values()
                     if audio.sampling_rate and r.sampling_rate != audio.sampling_rate)
    if other_rate:
        log.info("%d recordings are not at %d Hz: kept (resample=True), stage 2 resamples them",
                 other_rate, audio.sampling_rate)
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
                     manifest_dir: str | Path, corpus: str, part: str, decode: bool = True,
                     audio: AudioFormat = AudioFormat()
                     ) -> tuple[RecordingSet, SupervisionSet, list[Skipped]]:
    """check_manifests + the report in <manifest_dir>/<corpus>_skipped_<part>.txt."""
    recs = list(recordings)
    sups = list(supervisions)
    kept_recs, kept_sups, skipped = check_manifests(recs, sups, decode=decode, audio=audio)
    total = len({r.id for r in recs} | {s.id for s in sups})
    write_skipped_report(skipped, skipped_report_path(manifest_dir, corpus, part), corpus, part,
                         total=total)
    return kept_recs, kept_sups, skipped


def write_manifests(recordings: Iterable[Recording], supervisions: Iterable[SupervisionSegment],
                    recordings_path: str | Path, supervisions_path: str | Path, part: str
                    ) -> tuple[RecordingSet, SupervisionSet]:
    """Checked manifests sorted by id (the order of a directory listing is not fixed),
    validated by lhotse and written atomically; a part with nothing usable is an error."""

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


# ---------------------------------------------------------------- from audio paths

@dataclass
class CorpusItem:
    """One utterance as a corpus lists it: an id, its audio file (the whole file is the
    utterance), the transcript and the speaker; the rest is optional and passed on to the
    supervision (`alignment`: e.g. {"word": [AlignmentItem, ...]}, true boundaries for
    steps.score_alignment; start times alone (duration 0) are fine)."""

    id: str
    audio: str | Path
    text: str | None
    speaker: str
    gender: str | None = None
    language: str | None = None
    alignment: dict | None = None
    custom: dict | None = None


def manifests_from_files(items: Iterable[CorpusItem], decode: bool = True,
                         audio: AudioFormat = AudioFormat()
                         ) -> tuple[RecordingSet, SupervisionSet, list[Skipped]]:
    """Checked recordings and supervisions made from audio paths, and what was skipped.

    Each file is checked (file_problem) before lhotse opens it, and lhotse's own failure
    on a file that passed is reported as unreadable-audio, so nothing here raises on bad
    data. The result then goes through check_manifests (headers only: the files were
    read already)."""
    recordings: list[Recording] = []
    supervisions: list[SupervisionSegment] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            skipped.append(Skipped(item.id, "duplicate-id", f"listed again with {item.audio}"))
            continue
        seen.add(item.id)
        if item.text is None or not item.text.strip():
            skipped.append(Skipped(item.id, "empty-transcript", "no words"))
            continue
        problem = file_problem(item.audio, decode=decode, audio=audio)
        if problem:
            skipped.append(Skipped(item.id, *problem))
            continue
        try:
            recording = Recording.from_file(str(item.audio), recording_id=item.id)
        except Exception as e:  # lhotse's view of a file soundfile accepted
            skipped.append(Skipped(item.id, "unreadable-audio", f"{item.audio}: {type(e).__name__}: {e}"))
            continue
        recordings.append(recording)
        supervisions.append(SupervisionSegment(
            id=item.id, recording_id=item.id, start=0.0, duration=recording.duration, channel=0,
            text=" ".join(item.text.split()), speaker=item.speaker, gender=item.gender,
            language=item.language, alignment=item.alignment, custom=item.custom))
    recs, sups, more = check_manifests(recordings, supervisions, decode=False, audio=audio)
    return recs, sups, skipped + more


@dataclass
class PreparedPart:
    recordings: RecordingSet
    supervisions: SupervisionSet
    skipped: list[Skipped] = field(default_factory=list)
    redone: bool = True  # False: the part was up to date and read back from disk


def read_skipped_report(path: str | Path) -> list[Skipped]:
    lines = Path(path).read_text().splitlines() if Path(path).is_file() else []
    return [Skipped(*line.split(maxsplit=1)) for line in lines if line.strip()]


def prepare_part(items: Sequence[CorpusItem], manifest_dir: str | Path, corpus: str, part: str,
                 sources: Sequence[str | Path] = (), settings: dict | None = None,
                 decode: bool = True, audio: AudioFormat = AudioFormat(), force: bool = False,
                 skipped: Sequence[Skipped] = ()) -> PreparedPart:
    """A corpus part from audio paths to checked manifests on disk, in one call.

    Writes <manifest_dir>/<corpus>_{recordings,supervisions}_<part>.jsonl.gz and the
    skipped report; `skipped` adds what the prep itself found (e.g. a metadata row without
    a file name). The part is not redone when the items, their files' size and time, the
    check settings, `settings` and the content of `sources` (give the prep's own
    `__file__`: editing the prep redoes the part) are those it was made from."""
    items = list(items)
    marker = Path(manifest_dir) / f".{corpus}_{part}"
    rec_path, sup_path = manifest_paths(manifest_dir, corpus, part)
    report = skipped_report_path(manifest_dir, corpus, part)
    stamp = atomic.inputs_fingerprint(
        [], items=hash_items(items), settings=settings or {}, decode=decode,
        audio=vars(audio), sources=atomic.source_fingerprint(*sources, __file__),
        skipped=sorted((s.id, s.reason) for s in skipped))
    if atomic.up_to_date(marker, stamp, force, [rec_path, sup_path, report],
                         what=f"{corpus} {part} manifests", logger=log):
        return PreparedPart(RecordingSet.from_file(rec_path), SupervisionSet.from_file(sup_path),
                            read_skipped_report(report), redone=False)
    atomic.clear_done(marker)
    recs, sups, found = manifests_from_files(items, decode=decode, audio=audio)
    found = list(skipped) + found
    total = len({i.id for i in items} | {s.id for s in skipped})
    write_skipped_report(found, report, corpus, part, total=total)
    recs, sups = write_manifests(recs, sups, rec_path, sup_path, part)
    hours = sum(r.duration for r in recs) / 3600
    log.info("%s %s: %d utterances, %.2f h, %d speakers, %d skipped -> %s, %s", corpus, part,
             len(recs), hours, len({s.speaker for s in sups}), len(found), rec_path, sup_path)
    atomic.mark_done(marker, {"utterances": len(recs), "skipped": len(found)}, fingerprint=stamp)
    return PreparedPart(recs, sups, found)


def hash_items(items: Sequence[CorpusItem]) -> str:
    """One hash of the items' fields and their audio files' size and time."""
    digest = hashlib.sha256()
    for item in items:
        fields = dict(vars(item), audio=str(item.audio), stamp=atomic.path_stamp(item.audio))
        digest.update(json.dumps(fields, sort_keys=True, default=str).encode())
    return digest.hexdigest()
