"""Compute 80-dim fbank (kaldi-native-fbank, steps.data.fbank) for the parts of a corpus.

For each part the recordings and supervisions become one cut per recording (cut id ==
recording id, supervisions with all their fields, alignments included). With
--speed-perturb the parts named by --perturb-parts (train) also get copies at speeds 0.9
and 1.1 (ids `<id>_sp0.9`, `<id>_sp1.1`: lhotse's Speed transform, which resamples with
lhotse's own torch resampler, so no torchaudio is needed; supervision times and
alignments are scaled with the audio). Audio at another rate than --sampling-rate (16 kHz
by default: lhotse needs frame_shift * rate to be a whole number of samples, which 10 ms
at 22.05 kHz is not) is resampled with that same torch resampler (see load_audio).

Features are stored with an explicit storage type, lilcom_chunky (LilcomChunkyWriter),
one archive per job. Cuts that cannot be processed (audio that does not load, shorter
than half a frame, no supervision, several channels) are left out and listed with the
reason in <corpus>_skipped_<part>.txt.

Reads:  <manifest-dir>/<corpus>_{recordings,supervisions}_<part>.jsonl.gz
Writes: <out-dir>/<corpus>_cuts_<part>.jsonl.gz        the cuts with features
        <out-dir>/<corpus>_feats_<part>/feats-<job>.lca  the features
        <out-dir>/<corpus>_feats_<part>/.done           marker (inputs' fingerprint, counts)
        <out-dir>/<corpus>_skipped_<part>.txt           `cut_id reason` per left-out cut
        <out-dir>/log/fbank_<corpus>_<part>.<job>.log   job logs (--nj > 1)

A part whose marker matches its inputs and options is skipped (--force redoes it); a part
without a marker (interrupted, or inputs changed) is redone from a clean directory.

Example:
  python -m steps.compute_fbank --manifest-dir data/manifests --corpus synth \\
      --parts train dev test --out-dir data/fbank --nj 2 --speed-perturb
"""

from __future__ import annotations

import argparse
import logging
import re
import shutil
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from lhotse import CutSet, LilcomChunkyWriter, RecordingSet, SupervisionSet
from lhotse.augmentation.torchaudio import get_or_create_resampler
from lhotse.cut import MonoCut
from lhotse.utils import compute_num_frames, fastcopy

from steps.core import atomic
from steps.core.jobs import JobsFailed, add_job_arguments, job_argv, run_jobs
from steps.core.log import progress, setup_logging
from steps.data.fbank import KnfFbank, KnfFbankConfig
from steps.data.manifests import cuts_path, manifest_paths

log = logging.getLogger(__name__)
SPEED_FACTORS = (0.9, 1.1)


def feats_dir(out_dir: Path, corpus: str, part: str) -> Path:
    return out_dir / f"{corpus}_feats_{part}"


def make_cuts(recordings: RecordingSet, supervisions: SupervisionSet
              ) -> tuple[list[MonoCut], list[tuple[str, str]]]:
    """One cut per recording (id == recording id) with its supervisions; and the
    (id, reason) of what cannot become a usable cut."""
    by_recording = defaultdict(list)
    for s in supervisions:
        by_recording[s.recording_id].append(s)
    cuts, skipped = [], []
    for rec in recordings:
        sups = by_recording.pop(rec.id, [])
        short = _short_file(rec)
        if rec.num_channels != 1:
            skipped.append((rec.id, f"{rec.num_channels} channels (one expected)"))
        elif short:
            skipped.append((rec.id, short))
        elif not sups:
            skipped.append((rec.id, "no supervision"))
        else:
            cuts.append(MonoCut(id=rec.id, start=0.0, duration=rec.duration, channel=rec.channel_ids[0],
                                recording=rec, supervisions=sorted(sups, key=lambda s: s.start)))
    for rec_id, sups in by_recording.items():
        skipped += [(s.id, f"supervision of unknown recording {rec_id}") for s in sups]
    return cuts, skipped


def _short_file(rec) -> str | None:
    """Why a recording's file holds fewer samples than the manifest says, or None. Checked
    here because lhotse pads a shortfall of up to half its length without a word, and
    reports a larger one as its own bug."""
    for source in rec.sources:
        if source.type != "file":
            continue
        try:
            frames = sf.info(str(source.source)).frames
        except Exception:
            return None  # unreadable: loading it reports why
        if rec.num_samples - frames > 0.025 * rec.sampling_rate:
            return (f"truncated-audio: the file holds {frames} samples, the manifest says "
                    f"{rec.num_samples} (local.manifest_checks reports such files at stage 1)")
    return None


def load_cuts(manifest_dir: Path, corpus: str, part: str,
              speed_factors: tuple[float, ...] = ()) -> tuple[CutSet, list[tuple[str, str]]]:
    """The part's cuts at their own sampling rate, plus speed-perturbed copies, in a fixed
    order: the originals, then each factor's copies."""
    rec_path, sup_path = manifest_paths(manifest_dir, corpus, part)
    cuts, skipped = make_cuts(RecordingSet.from_file(rec_path), SupervisionSet.from_file(sup_path))
    cuts = CutSet.from_cuts(cuts)
    if speed_factors:
        cuts = CutSet.from_cuts([c for cs in [cuts, *(cuts.perturb_speed(f) for f in speed_factors)] for c in cs])
    return cuts, skipped


def load_audio(cut, sampling_rate: int) -> tuple[np.ndarray, object]:
    """The cut's samples [1, N] at sampling_rate, and the cut as it describes them.

    lhotse 1.33 resamples recordings with scipy or torchaudio, neither of which the
    toolkit installs; its Speed transform uses lhotse's own torch resampler, and so does
    this: the audio is loaded at its own rate and resampled here, then cut to exactly
    round(duration * rate) samples so that features and cut agree on num_frames. The
    cut returned (`cut.resample(rate)`) describes the result; loading its audio later
    needs scipy or torchaudio."""
    samples = cut.load_audio()
    if cut.sampling_rate == sampling_rate:
        return samples, cut
    resampled = cut.resample(sampling_rate)
    resampler = get_or_create_resampler(cut.sampling_rate, sampling_rate)
    samples = resampler(torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))).numpy()
    want = resampled.num_samples
    if samples.shape[1] < want:
        samples = np.pad(samples, ((0, 0), (0, want - samples.shape[1])))
    return samples[:, :want], resampled


def compute_features(cuts: CutSet, extractor: KnfFbank, archive: Path, sampling_rate: int, desc: str
                     ) -> tuple[list, list[tuple[str, str]]]:
    """Cuts (at sampling_rate) with features stored in the lilcom_chunky archive, and
    (id, reason) of the cuts that failed."""
    done, skipped = [], []
    archive.parent.mkdir(parents=True, exist_ok=True)
    with LilcomChunkyWriter(archive) as writer:
        for cut in progress(cuts, desc=desc, mininterval=1 if sys.stderr.isatty() else 10):
            if compute_num_frames(cut.duration, extractor.frame_shift, sampling_rate) < 1:
                skipped.append((cut.id, f"too short ({cut.duration:.4f} s): no frame"))
                continue
            try:
                samples, cut = load_audio(cut, sampling_rate)
                features = extractor.extract_from_samples_and_store(
                    samples, writer, sampling_rate=sampling_rate, offset=cut.start, channel=cut.channel)
                done.append(fastcopy(cut, features=features))
            except Exception as e:  # one bad file must not stop the part; reported
                skipped.append((cut.id, _reason(e, cut)))
    return done, skipped


_SHORT_AUDIO = re.compile(r"diverged from the one obtained when loading audio.*?audio\.shape=\(\d+, (\d+)\)",
                          re.DOTALL)


def _reason(error: Exception, cut=None) -> str:
    # lhotse appends whole manifests as "[extra info]"; the first part says what failed.
    text = str(error).split(" [extra info]")[0].replace("\n", " ")
    short = _SHORT_AUDIO.search(text)
    if short and cut is not None and cut.has_recording:
        # lhotse asks for a bug report; what is wrong is the file (e.g. a WAV cut short).
        return (f"truncated-audio: the file holds {short.group(1)} samples, the manifest says "
                f"{cut.recording.num_samples} (local.manifest_checks reports such files at stage 1)")
    return f"{type(error).__name__}: {text[:300]}"


def _skipped_text(skipped: list[tuple[str, str]]) -> str:
    return "".join(f"{cut_id} {reason}\n" for cut_id, reason in skipped)


def _job_files(directory: Path, job: int) -> tuple[Path, Path, Path]:
    return (directory / f"feats-{job}.lca", directory / f"cuts.{job}.jsonl.gz",
            directory / f"skipped.{job}.txt")


def run_job(args, part: str, job: int, nj: int, cuts: CutSet | None = None) -> None:
    """One job's share of a part: features for cuts.split(nj)[job - 1]."""
    out_dir = Path(args.out_dir)
    directory = feats_dir(out_dir, args.corpus, part)
    if cuts is None:
        cuts, _ = load_cuts(Path(args.manifest_dir), args.corpus, part, _factors(args, part))
    share = cuts.split(nj)[job - 1]
    archive, cuts_file, skipped_file = _job_files(directory, job)
    done, skipped = compute_features(share, KnfFbank(KnfFbankConfig()), archive, args.sampling_rate,
                                     f"fbank {args.corpus} {part} {job}/{nj}")
    with atomic.atomic_path(cuts_file) as tmp:
        CutSet.from_cuts(done).to_file(tmp)
    atomic.write_text(skipped_file, _skipped_text(skipped))
    log.info("%s job %d/%d: %d cuts, %d skipped", part, job, nj, len(done), len(skipped))


def _factors(args, part: str) -> tuple[float, ...]:
    return SPEED_FACTORS if args.speed_perturb and part in args.perturb_parts else ()


def process_part(args, part: str, argv: list[str]) -> None:
    out_dir = Path(args.out_dir)
    manifest_dir = Path(args.manifest_dir)
    directory = feats_dir(out_dir, args.corpus, part)
    final = cuts_path(out_dir, args.corpus, part)
    inputs = list(manifest_paths(manifest_dir, args.corpus, part))
    missing = [str(p) for p in inputs if not p.is_file()]
    if missing:
        raise SystemExit(f"compute_fbank: {part}: missing manifest(s): {', '.join(missing)}")
    options = {"sampling_rate": args.sampling_rate, "speed_factors": _factors(args, part),
               "extractor": KnfFbank().to_dict()}
    stamp = atomic.inputs_fingerprint(inputs, **options)
    if atomic.up_to_date(directory, stamp, args.force, [final], what=f"{part} features ({final})"):
        return

    # From clean: no marker, no archives or job files of an interrupted run.
    final.unlink(missing_ok=True)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    cuts, skipped = load_cuts(manifest_dir, args.corpus, part, _factors(args, part))
    nj = max(1, min(args.nj, len(cuts)))
    if nj > 1:
        run_jobs(args.cmd, nj, out_dir / "log" / f"fbank_{args.corpus}_{part}.JOB.log", "steps.compute_fbank",
                 [*job_argv(argv), "--parts", part])
    else:
        run_job(args, part, 1, 1, cuts)
    missing = [str(f) for job in range(1, nj + 1) for f in _job_files(directory, job) if not f.is_file()]
    if missing:
        raise SystemExit(f"compute_fbank: {part}: job outputs missing (a job did not finish): {', '.join(missing)}")
    merged = []
    for job in range(1, nj + 1):
        _, cuts_file, skipped_file = _job_files(directory, job)
        merged += list(CutSet.from_file(cuts_file) or [])  # an empty manifest reads as None
        skipped += [tuple(line.split(" ", 1)) for line in skipped_file.read_text().splitlines()]
        cuts_file.unlink()
        skipped_file.unlink()
    atomic.write_text(out_dir / f"{args.corpus}_skipped_{part}.txt", _skipped_text(skipped))
    with atomic.atomic_path(final) as tmp:
        CutSet.from_cuts(merged).to_file(tmp)
    hours = sum(c.duration for c in merged) / 3600
    atomic.mark_done(directory, {"num_jobs": nj, "num_cuts": len(merged),
                                 "num_skipped": len(skipped), "hours": round(hours, 4),
                                 "storage_type": LilcomChunkyWriter.name, **options}, stamp)
    if skipped:
        log.warning("%s: %d cuts left out, see %s", part, len(skipped),
                    out_dir / f"{args.corpus}_skipped_{part}.txt")
    log.info("%s: %d cuts, %.2f h of features in %s; wrote %s", part, len(merged), hours, directory, final)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest-dir", required=True)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--parts", nargs="+", default=["train", "dev", "test"])
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--sampling-rate", type=int, default=16000,
                        help="resample audio at other rates to this one (default 16000)")
    parser.add_argument("--speed-perturb", action="store_true",
                        help=f"add speed-perturbed copies {SPEED_FACTORS} of the --perturb-parts")
    parser.add_argument("--perturb-parts", nargs="+", default=["train"])
    parser.add_argument("--force", action="store_true", help="redo finished parts")
    add_job_arguments(parser)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    setup_logging()

    if args.job is not None:  # one job of several, for the one part it was given
        torch.set_num_threads(1)  # the jobs share the cores (resampling runs in torch)
        for part in args.parts:
            run_job(args, part, args.job, args.nj)
        return
    try:
        for part in args.parts:
            process_part(args, part, argv)
    except JobsFailed as e:
        log.error("%s", e)
        sys.exit(1)


if __name__ == "__main__":
    main()
