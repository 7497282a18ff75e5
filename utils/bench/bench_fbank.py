"""Speed and values of the registered kaldi-native-fbank extractor (steps.data.fbank, its
batched path) against kaldi-native-fbank's own OnlineFbank called directly and against
lhotse's Fbank ("kaldi-fbank", torch), at matched settings.

All three compute 80-bin log-mel fbank, 25 ms / 10 ms, 20 Hz to Nyquist (lhotse's
default upper edge is Nyquist - 400 Hz: it is set to Nyquist here), dither 0,
snip_edges False, on the same generated audio (noise, tones and a harmonic "voice" with a
moving pitch, cut into utterances of --utt-seconds), one thread. Printed first: the
largest difference of our values from each of the other two. Each method then runs
--rounds times, interleaved with the others, and the best round counts (the machine may
be shared): seconds of audio per wall second, and each speed as a ratio to lhotse's, the
anchor (aim: ours >= 1.0). A second table does the whole per-cut pipeline (load the wav,
extract, lilcom_chunky write) through lhotse's cut.compute_and_store_features.

    utils/bench/bench_fbank.py [--minutes 2] [--utt-seconds 5] [--rounds 5]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for `steps`

import argparse
import tempfile
import time
from pathlib import Path

import kaldi_native_fbank as knf
import numpy as np
import soundfile as sf
import torch
from lhotse import CutSet, LilcomChunkyWriter, Recording
from lhotse.features.kaldi.extractors import Fbank, FbankConfig

from steps.data.fbank import KnfFbank, knf_options


def make_audio(seconds: float, sampling_rate: int, seed: int = 0) -> np.ndarray:
    """Noise + two tones + a harmonic source with a gliding pitch and a syllable-rate
    envelope, in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sampling_rate)) / sampling_rate
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sampling_rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 20)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) ** 2
    tones = 0.1 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.sin(2 * np.pi * 3000 * t)
    x = 0.2 * voice + tones + 0.02 * rng.standard_normal(t.size)
    return (0.9 * x / np.abs(x).max()).astype(np.float32)


def direct_knf(samples: np.ndarray, opts: knf.FbankOptions, sampling_rate: int) -> np.ndarray:
    """The plain way to call kaldi-native-fbank on a numpy array."""
    fbank = knf.OnlineFbank(opts)
    fbank.accept_waveform(sampling_rate, samples)
    fbank.input_finished()
    return np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)])


def best_times(methods: dict, rounds: int) -> dict[str, float]:
    best = {name: float("inf") for name in methods}
    for _ in range(rounds):
        for name, run in methods.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def report(title: str, seconds_of_audio: float, times: dict[str, float], anchor: str) -> None:
    print(f"\n{title}")
    print(f"{'method':<44} {'audio s / wall s':>16} {'speed / lhotse':>15}")
    for name, t in times.items():
        print(f"{name:<44} {seconds_of_audio / t:>16.0f} {times[anchor] / t:>15.2f}")
    ours = times[next(iter(times))]
    ratio = times[anchor] / ours
    print(f"ours vs lhotse Fbank: {ratio:.2f}x its speed (aim >= 1.00: {'met' if ratio >= 1.0 else 'MISSED'})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=2.0, help="audio to process per round")
    parser.add_argument("--utt-seconds", type=float, default=5.0, help="length of each utterance")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sampling-rate", type=int, default=16000)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    sr = args.sampling_rate

    audio = make_audio(args.minutes * 60, sr)
    n = int(args.utt_seconds * sr)
    utts = [audio[i:i + n] for i in range(0, audio.size, n)]
    seconds = audio.size / sr
    ours = KnfFbank()
    opts = knf_options(ours.config, sr)
    lhotse_fbank = Fbank(FbankConfig(num_filters=80, dither=0.0, snip_edges=False, low_freq=20.0,
                                     high_freq=0.0, sampling_rate=sr))

    a, b, c = ours.extract(utts[0], sr), direct_knf(utts[0], opts, sr), lhotse_fbank.extract(utts[0], sr)
    assert a.shape == b.shape == c.shape, (a.shape, b.shape, c.shape)
    print(f"{len(utts)} utterances of {args.utt_seconds} s, {seconds:.0f} s of audio at {sr} Hz, "
          f"best of {args.rounds} rounds, torch threads {torch.get_num_threads()}")
    print(f"largest |difference| of our log-mel values: from knf OnlineFbank {np.abs(a - b).max():.2e}, "
          f"from lhotse Fbank {np.abs(a - c).max():.2e}")

    lhotse_name = "lhotse Fbank (kaldi-fbank, torch)"
    times = best_times({
        f"{KnfFbank.name} (ours, batched)": lambda: [ours.extract(u, sr) for u in utts],
        "kaldi-native-fbank OnlineFbank (direct)": lambda: [direct_knf(u, opts, sr) for u in utts],
        lhotse_name: lambda: [lhotse_fbank.extract(u, sr) for u in utts],
    }, args.rounds)
    report("feature extraction only", seconds, times, lhotse_name)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cuts = []
        for i, u in enumerate(utts):
            sf.write(tmp / f"u{i}.wav", u, sr, subtype="FLOAT")
            cuts.append(Recording.from_file(tmp / f"u{i}.wav").to_cut())
        cuts = CutSet.from_cuts(cuts)

        def pipeline(extractor, name):
            def run():
                with LilcomChunkyWriter(tmp / f"{name}.lca") as writer:
                    for cut in cuts:
                        cut.compute_and_store_features(extractor, writer)
            return run

        times = best_times({
            f"{KnfFbank.name} (ours)": pipeline(ours, "ours"),
            lhotse_name: pipeline(lhotse_fbank, "lhotse"),
        }, args.rounds)
        report("whole cut pipeline (load wav, extract, lilcom_chunky write)", seconds, times, lhotse_name)


if __name__ == "__main__":
    main()
