"""steps.data.fbank (the kaldi-native-fbank extractor) and steps.compute_fbank: frame counts,
values against kaldi-native-fbank called directly, the lhotse registration round trip,
and the features stage end to end (jobs, resampling, speed perturbation, skipping,
resuming)."""

from __future__ import annotations

import json
import subprocess
import sys

import kaldi_native_fbank as knf
import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import CutSet, LilcomChunkyWriter, Recording, RecordingSet, SupervisionSegment, SupervisionSet
from lhotse.features.base import FeatureExtractor, create_default_feature_extractor, get_extractor_type
from lhotse.supervision import AlignmentItem
from lhotse.utils import compute_num_frames, perturb_num_samples

from steps import compute_fbank
from steps.data.fbank import NAME, KnfFbank, KnfFbankConfig, knf_options

SAMPLE_COUNTS = [1, 79, 80, 81, 159, 160, 161, 239, 240, 241, 399, 400, 401, 559, 1000, 1001,
                 12345, 15999, 16000, 16001, 16079, 16080, 16081, 16240, 33333]


def noise(num_samples: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(num_samples)).astype(np.float32)


def direct(samples: np.ndarray, sampling_rate: int, config: KnfFbankConfig | None = None) -> np.ndarray:
    fbank = knf.OnlineFbank(knf_options(config or KnfFbankConfig(), sampling_rate))
    fbank.accept_waveform(sampling_rate, samples)
    fbank.input_finished()
    return np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)])


# The batched path (steps.data.fbank.BatchFbank) against knf's OnlineFbank: float32 FFTs of two
# libraries (0.1% in energy; most of it in the weakest bins, which the log magnifies), so
# equal to this much in the log domain; lilcom stores with a tick of 2^-5.
SAME_FEATURES = 1e-3


@pytest.mark.parametrize("sampling_rate", [8000, 16000, 44100])
def test_num_frames_equal_lhotse_compute_num_frames(sampling_rate):
    extractor = KnfFbank()
    for n in SAMPLE_COUNTS:
        feats = extractor.extract(noise(n), sampling_rate)
        expected = compute_num_frames(n / sampling_rate, 0.01, sampling_rate)
        assert feats.shape == (expected, 80), (n, sampling_rate)
        # lhotse's own rounding of durations (8 digits) must give the same count
        assert compute_num_frames(round(n / sampling_rate, 8), 0.01, sampling_rate) == expected


def test_values_equal_direct_knf_for_all_input_forms():
    extractor = KnfFbank()
    assert extractor.batched
    for n in (401, 16000, 48013):
        x = noise(n, seed=n)
        reference = direct(x, 16000)
        for form in (x, x[None], x.astype(np.float64)):
            out = extractor.extract(form, 16000)
            assert out.shape == reference.shape and np.abs(out - reference).max() < SAME_FEATURES
        out = extractor.extract(torch.from_numpy(x), 16000)
        assert isinstance(out, torch.Tensor) and np.abs(out.numpy() - reference).max() < SAME_FEATURES


@pytest.mark.parametrize("config", [
    KnfFbankConfig(num_mel_bins=40, low_freq=64.0, high_freq=-400.0),
    KnfFbankConfig(window_type="hamming", remove_dc_offset=False, preemph_coeff=0.0),
    KnfFbankConfig(use_power=False, use_log_fbank=False),
    KnfFbankConfig(frame_length=0.032, frame_shift=0.02, round_to_power_of_two=False),
], ids=["mel-edges", "hamming-no-dc-no-preemph", "magnitude-linear", "32ms-20ms-no-pow2"])
@pytest.mark.parametrize("sampling_rate", [8000, 16000])
def test_batched_path_equals_knf_online_fbank_across_options(config, sampling_rate):
    extractor = KnfFbank(config)
    assert extractor.batched
    for n in (int(sampling_rate * config.frame_length), 1599, 16081, 40000):
        x = noise(n, seed=n)
        reference, out = direct(x, sampling_rate, config), extractor.extract(x, sampling_rate)
        assert out.shape == reference.shape, n
        if config.use_log_fbank:
            assert np.abs(out - reference).max() < SAME_FEATURES, n
        else:  # linear energies: relative
            assert np.abs(out - reference).max() <= 1e-4 * np.abs(reference).max(), n


def test_dither_energy_and_short_input_go_through_knf_exactly():
    short = noise(300)  # under one 25 ms window at 16 kHz: mirrored more than once
    assert np.array_equal(KnfFbank().extract(short, 16000), direct(short, 16000))
    energy = KnfFbankConfig(use_energy=True)
    assert not KnfFbank(energy).batched
    x = noise(16000)
    assert np.array_equal(KnfFbank(energy).extract(x, 16000), direct(x, 16000, energy))
    assert not KnfFbank(KnfFbankConfig(dither=1.0)).batched


def test_known_values_silence_floor_and_tone_peak():
    extractor = KnfFbank()
    silence = extractor.extract(np.zeros(16000, np.float32), 16000)
    # Digital silence: every mel energy sits on knf's floor, log(float32 epsilon).
    assert np.allclose(silence, np.log(np.finfo(np.float32).eps), atol=1e-5)

    t = np.arange(16000) / 16000
    for freq in (300.0, 1000.0, 4000.0):
        feats = extractor.extract((0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 16000)
        peak = int(np.median(feats[5:-5].argmax(axis=1)))
        # Kaldi mel bins: centres evenly spaced in mel between 20 Hz and 8 kHz.
        mel = lambda f: 1127.0 * np.log(1 + f / 700.0)  # noqa: E731
        centres = mel(20) + (np.arange(80) + 1) * (mel(8000) - mel(20)) / 81
        assert abs(peak - int(np.argmin(abs(centres - mel(freq))))) <= 1, freq
        assert feats[5:-5, peak].mean() > silence[0, 0] + 15


def test_energy_dim_and_multichannel_rejected():
    assert KnfFbank(KnfFbankConfig(use_energy=True)).extract(noise(1600), 16000).shape == (10, 81)
    with pytest.raises(ValueError, match="one channel"):
        KnfFbank().extract(np.zeros((2, 1600), np.float32), 16000)


def test_registration_round_trip_through_manifests(tmp_path):
    assert get_extractor_type(NAME) is KnfFbank
    config = KnfFbankConfig(num_mel_bins=40, low_freq=64.0)
    again = FeatureExtractor.from_dict(KnfFbank(config).to_dict())
    assert isinstance(again, KnfFbank) and again.config == config
    KnfFbank(config).to_yaml(tmp_path / "fbank.yaml")
    assert FeatureExtractor.from_yaml(tmp_path / "fbank.yaml").config == config

    samples = noise(16000 * 2 + 37)
    sf.write(tmp_path / "a.wav", samples, 16000, subtype="FLOAT")
    cut = Recording.from_file(tmp_path / "a.wav").to_cut()
    with LilcomChunkyWriter(tmp_path / "feats") as writer:
        cut = cut.compute_and_store_features(KnfFbank(), writer)
    CutSet.from_cuts([cut]).to_file(tmp_path / "cuts.jsonl.gz")

    loaded = CutSet.from_file(tmp_path / "cuts.jsonl.gz")[0]
    assert loaded.features.type == NAME
    assert loaded.features.storage_type == "lilcom_chunky"
    assert loaded.num_frames == compute_num_frames(loaded.duration, 0.01, 16000) == 200
    feats = loaded.load_features()
    reference = direct(samples, 16000)
    assert feats.shape == reference.shape == (200, 80)
    assert np.abs(feats - reference).max() < 0.05  # lilcom is lossy (tick 2^-5)
    extractor = create_default_feature_extractor(loaded.features.type)
    assert isinstance(extractor, KnfFbank)
    assert np.abs(extractor.extract(loaded.load_audio(), 16000) - reference).max() < SAME_FEATURES


# ------------------------------------------------------------------ steps.compute_fbank


def make_corpus(root, parts: dict[str, list[tuple[int, float]]]):
    """Wavs (tone + noise) and manifests; each utterance (sampling rate, seconds); word
    alignments at fixed times."""
    (root / "wav").mkdir()
    manifests = root / "manifests"
    manifests.mkdir()
    for part, utts in parts.items():
        recordings, supervisions = [], []
        for i, (sr, seconds) in enumerate(utts):
            n = int(round(sr * seconds)) + i  # odd sample counts too
            t = np.arange(n) / sr
            x = (0.3 * np.sin(2 * np.pi * (200 + 40 * i) * t)).astype(np.float32) + noise(n, i) * 0.1
            path = root / "wav" / f"{part}{i}.wav"
            sf.write(path, x, sr)
            rec = Recording.from_file(path, recording_id=f"{part}{i}")
            recordings.append(rec)
            words = [AlignmentItem("HELLO", 0.1, 0.2), AlignmentItem("WORLD", 0.3, 0.2)]
            supervisions.append(SupervisionSegment(rec.id, rec.id, 0.0, rec.duration, text="HELLO WORLD",
                                                   speaker=f"spk{i % 2}", alignment={"word": words}))
        RecordingSet.from_recordings(recordings).to_file(manifests / f"toy_recordings_{part}.jsonl.gz")
        SupervisionSet.from_segments(supervisions).to_file(manifests / f"toy_supervisions_{part}.jsonl.gz")
    return manifests


def check_cuts(path, expected_ids):
    cuts = CutSet.from_file(path)
    assert [c.id for c in cuts] == expected_ids
    for cut in cuts:
        assert cut.sampling_rate == 16000
        assert cut.features.type == NAME and cut.features.storage_type == "lilcom_chunky"
        assert cut.num_frames == compute_num_frames(cut.duration, 0.01, 16000)
        assert cut.load_features().shape == (cut.num_frames, 80)
    return cuts


def test_compute_fbank_jobs_speed_perturb_and_skip(repo, tmp_path):
    manifests = make_corpus(tmp_path, {"train": [(16000, 0.7), (22050, 1.0), (16000, 0.004), (16000, 1.3)]})
    out = tmp_path / "fbank"
    command = [sys.executable, "-m", "steps.compute_fbank", "--manifest-dir", str(manifests), "--corpus", "toy",
               "--parts", "train", "--out-dir", str(out), "--nj", "2", "--speed-perturb"]
    run = subprocess.run(command, cwd=repo, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr

    kept = ["train0", "train1", "train3"]
    ids = kept + [f"{i}_sp0.9" for i in kept] + [f"{i}_sp1.1" for i in kept]
    cuts = check_cuts(out / "toy_cuts_train.jsonl.gz", ids)
    by_id = {c.id: c for c in cuts}
    # 0.7 s -> 70 frames; speed 0.9 stretches 11200 samples to 12444 -> 78 frames
    assert by_id["train0"].num_frames == 70
    assert perturb_num_samples(11200, 0.9) == 12444 and by_id["train0_sp0.9"].num_frames == 78
    # 22.05 kHz audio resampled to 16 kHz: 22051 samples -> 1.00005 s -> 100 frames
    assert by_id["train1"].num_frames == 100
    # supervisions keep their fields; alignments follow the speed change
    sup = by_id["train3"].supervisions[0]
    assert sup.speaker == "spk1" and [a.symbol for a in sup.alignment["word"]] == ["HELLO", "WORLD"]
    perturbed = by_id["train3_sp1.1"].supervisions[0].alignment["word"][1]
    assert perturbed.start == pytest.approx(0.3 / 1.1, abs=1e-3)
    # the too-short recording is reported, not silently dropped
    skipped = (out / "toy_skipped_train.txt").read_text().splitlines()
    assert sorted(line.split()[0] for line in skipped) == ["train2", "train2_sp0.9", "train2_sp1.1"]
    assert all("no frame" in line for line in skipped)
    feats_dir = out / "toy_feats_train"
    assert sorted(p.name for p in feats_dir.iterdir()) == [".done", "feats-1.lca", "feats-2.lca"]
    done = json.loads((feats_dir / ".done").read_text())
    assert done["num_jobs"] == 2 and done["num_cuts"] == 9 and done["num_skipped"] == 3
    assert "# Ended (code 0)" in (out / "log" / "fbank_toy_train.2.log").read_text()

    # a second run skips the finished part
    mtime = (out / "toy_cuts_train.jsonl.gz").stat().st_mtime_ns
    run = subprocess.run(command, cwd=repo, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "already done" in run.stderr
    assert (out / "toy_cuts_train.jsonl.gz").stat().st_mtime_ns == mtime


def test_compute_fbank_redoes_interrupted_and_changed_parts(tmp_path):
    manifests = make_corpus(tmp_path, {"dev": [(16000, 0.5), (16000, 0.61)]})
    out = tmp_path / "fbank"
    args = ["--manifest-dir", str(manifests), "--corpus", "toy", "--parts", "dev", "--out-dir", str(out)]
    # leftovers of an interrupted run: no marker, a stale archive and job manifest
    feats_dir = out / "toy_feats_dev"
    feats_dir.mkdir(parents=True)
    (feats_dir / "feats-7.lca").write_bytes(b"junk")
    (feats_dir / "cuts.7.jsonl.gz").write_bytes(b"junk")
    compute_fbank.main(args)
    assert sorted(p.name for p in feats_dir.iterdir()) == [".done", "feats-1.lca"]
    check_cuts(out / "toy_cuts_dev.jsonl.gz", ["dev0", "dev1"])
    stamp = json.loads((feats_dir / ".done").read_text())["fingerprint"]

    compute_fbank.main(args)  # done: skipped
    assert json.loads((feats_dir / ".done").read_text())["fingerprint"] == stamp
    # changed input: redone
    sups = SupervisionSet.from_file(manifests / "toy_supervisions_dev.jsonl.gz")
    SupervisionSet.from_segments([s for s in sups if s.id == "dev1"]).to_file(
        manifests / "toy_supervisions_dev.jsonl.gz")
    compute_fbank.main(args)
    assert json.loads((feats_dir / ".done").read_text())["fingerprint"] != stamp
    check_cuts(out / "toy_cuts_dev.jsonl.gz", ["dev1"])
    assert (out / "toy_skipped_dev.txt").read_text() == "dev0 no supervision\n"


def test_a_wav_cut_short_after_stage_one_is_named_not_sent_to_lhotse(tmp_path):
    """The manifest holds the header's length, the file was cut short since: stage 2 says
    what is wrong instead of lhotse's "please report this issue"."""
    manifests = make_corpus(tmp_path, {"dev": [(16000, 1.0), (16000, 0.8)]})
    wav = tmp_path / "wav" / "dev0.wav"
    data = wav.read_bytes()
    wav.write_bytes(data[: 44 + (len(data) - 44) // 2])  # header intact, half the data
    out = tmp_path / "fbank"
    compute_fbank.main(["--manifest-dir", str(manifests), "--corpus", "toy", "--parts", "dev",
                        "--out-dir", str(out)])
    assert [c.id for c in CutSet.from_file(out / "toy_cuts_dev.jsonl.gz")] == ["dev1"]
    (line,) = (out / "toy_skipped_dev.txt").read_text().splitlines()
    assert line == ("dev0 truncated-audio: the file holds 8000 samples, the manifest says 16000 "
                    "(local.manifest_checks reports such files at stage 1)")
