"""Stage 1 of egs/librispeech/s5, text side: the LM text data/text/lm_text.txt.

Source: LibriSpeech's LM corpus, librispeech-lm-norm.txt(.gz) (openslr.org resource 11:
about 40 M normalised sentences, 800 M words, from 14,500 books, the books of dev and test
excluded) when --lm-norm names an existing file; otherwise the training transcripts
alone, which is logged as a warning (teachers and the decoding LM then learn from the
paired text only). The training transcripts are always added (the teachers are meant to
know the training text, as in the synth recipe).

--fraction F keeps a deterministic share of the LM corpus' sentences: those whose MD5
falls in the first F of the hash range (the same sentences whatever the order or the
machine; repeats of a sentence are kept or dropped together). The shared steps hold the
text in memory (n-gram counts, teacher token files): see README.md for sizes.

Every line is normalised (local/librispeech/text.py); blank lines are dropped, and so is
every sentence that is also a transcript of an evaluation part (dev, test, dev_other,
test_other: those present in --manifest-dir), wherever it comes from. Counts of what was
read, kept and removed go to the log and to lm_text_info.json.

Reads:  --lm-norm (optional), <manifest-dir>/librispeech_supervisions_<part>.jsonl.gz
Writes: <out-dir>/lm_text.txt        one sentence per line
        <out-dir>/lm_text_info.json  source, counts
        <out-dir>/.done              the inputs' fingerprint (a finished text is kept while
                                     its inputs and options are unchanged; --force redoes it)

Example (from egs/librispeech/s5):
  python -m local.librispeech.lm_text --lm-norm /data/librispeech-lm-norm.txt.gz \\
      --manifest-dir data/manifests --out-dir data/text --fraction 0.05
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import logging
import sys
import time
from pathlib import Path
from typing import Iterator

from lhotse import SupervisionSet

from local.librispeech.text import CORPUS, EVAL_PARTS, normalise
from steps.core import atomic
from steps.core.log import progress, setup_logging

log = logging.getLogger(__name__)
HASH_RANGE = 1 << 64


class LmTextError(RuntimeError):
    """No LM text could be made (no training supervisions, nothing left)."""


def keep_sentence(sentence: str, fraction: float) -> bool:
    """The deterministic subset: the first `fraction` of the MD5 range."""
    if fraction >= 1.0:
        return True
    value = int.from_bytes(hashlib.md5(sentence.encode()).digest()[:8], "big")
    return value < fraction * HASH_RANGE


def open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def read_transcripts(path: Path) -> list[str]:
    return [s.text or "" for s in SupervisionSet.from_file(path)]


def lm_sentences(path: Path, fraction: float, counts: dict) -> Iterator[str]:
    """Normalised, non-blank sentences of the LM corpus in the subset."""
    with open_text(path) as f:
        for line in progress(f, desc="LM corpus", unit=" lines", mininterval=30):
            counts["lm_lines"] += 1
            sentence = normalise(line)
            if not sentence:
                counts["lm_blank"] += 1
            elif keep_sentence(sentence, fraction):
                yield sentence
            else:
                counts["lm_not_sampled"] += 1


def fingerprint(lm_norm: Path | None, manifests: list[Path], options: dict) -> str:
    """The LM corpus by name, size and mtime (hashing 4 GB at every run would cost
    minutes), the manifests by content, and the options."""
    digest = hashlib.sha256(json.dumps(options, sort_keys=True).encode())
    if lm_norm is not None:
        st = lm_norm.stat()
        digest.update(f"{lm_norm.resolve()} {st.st_size} {st.st_mtime_ns}".encode())
    for path in manifests:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def prepare_lm_text(manifest_dir: str | Path, out_dir: str | Path, lm_norm: str | Path | None = None,
                    train_part: str = "train", fraction: float = 1.0, force: bool = False) -> dict:
    """Writes <out_dir>/lm_text.txt (see the module docstring) and returns what .done
    holds; kept while its inputs and options are unchanged (force redoes it). Raises
    LmTextError when there are no training supervisions or no sentence is left."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError("fraction must be in (0, 1]")
    manifest_dir, out_dir = Path(manifest_dir), Path(out_dir)
    asked = Path(lm_norm) if lm_norm is not None else None
    manifest = lambda part: manifest_dir / f"{CORPUS}_supervisions_{part}.jsonl.gz"  # noqa: E731
    train_path = manifest(train_part)
    if not train_path.is_file():
        raise LmTextError(f"no training supervisions {train_path} (run the manifests first)")
    eval_paths = [manifest(p) for p in EVAL_PARTS.values() if manifest(p).is_file()]
    absent = [p for p in EVAL_PARTS.values() if not manifest(p).is_file()]
    lm_norm = asked if asked is not None and asked.is_file() else None
    options = {"fraction": fraction, "train_part": train_part, "version": 1}
    stamp = fingerprint(lm_norm, [train_path, *eval_paths], options)
    if not force and atomic.is_done(out_dir) and (out_dir / "lm_text.txt").is_file():
        done = json.loads((out_dir / ".done").read_text())
        if done.get("fingerprint") == stamp:
            log.info("%s: already made from these inputs, nothing to do", out_dir / "lm_text.txt")
            return done
    atomic.clear_done(out_dir)
    started = time.time()

    held_out: set[str] = set()
    for path in eval_paths:
        held_out.update(t for t in map(normalise, read_transcripts(path)) if t)
    log.info("held out: %d distinct sentences of %s", len(held_out),
             ", ".join(p.name for p in eval_paths))
    if absent:
        log.warning("no manifests of %s: their sentences cannot be removed from the LM text", ", ".join(absent))

    counts = {"lm_lines": 0, "lm_blank": 0, "lm_not_sampled": 0, "lm_kept": 0, "train_kept": 0,
              "removed_held_out": 0, "train_blank": 0}
    if lm_norm is not None:
        source = str(lm_norm)
        log.info("LM text: LibriSpeech's LM corpus %s (fraction %g) plus the training transcripts",
                 lm_norm, fraction)
    else:
        source = "training transcripts"
        where = f" ({asked} does not exist)" if asked is not None else ""
        log.warning("FALLBACK: no LibriSpeech LM corpus (librispeech-lm-norm.txt[.gz])%s: the LM text "
                    "is the training transcripts alone; the teachers and the decoding LM will know "
                    "only the paired text. Give --lm-norm (run.sh: lm_dir, or --download true).", where)

    out_path = out_dir / "lm_text.txt"
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(out_path) as tmp, open(tmp, "w", encoding="utf-8") as out:
        if lm_norm is not None:
            for sentence in lm_sentences(lm_norm, fraction, counts):
                if sentence in held_out:
                    counts["removed_held_out"] += 1
                    continue
                out.write(sentence + "\n")
                counts["lm_kept"] += 1
        for text in read_transcripts(train_path):
            sentence = normalise(text)
            if not sentence:
                counts["train_blank"] += 1
            elif sentence in held_out:
                counts["removed_held_out"] += 1
            else:
                out.write(sentence + "\n")
                counts["train_kept"] += 1
    total = counts["lm_kept"] + counts["train_kept"]
    if total == 0:
        raise LmTextError("the LM text is empty")
    info = {"source": source, "fraction": fraction if lm_norm else None,
            "held_out_parts": [p.name for p in eval_paths], "sentences": total, **counts}
    atomic.write_text(out_dir / "lm_text_info.json", json.dumps(info, indent=1) + "\n")
    log.info("wrote %s: %d sentences (%d from the LM corpus of %d lines read, %d from the training "
             "transcripts); removed: %d held-out sentences, %d blank lines; not sampled: %d (%.1f s)",
             out_path, total, counts["lm_kept"], counts["lm_lines"], counts["train_kept"],
             counts["removed_held_out"], counts["lm_blank"] + counts["train_blank"],
             counts["lm_not_sampled"], time.time() - started)
    done = {"fingerprint": stamp, "sentences": total, "source": source}
    atomic.mark_done(out_dir, done)
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.librispeech.lm_text", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lm-norm", type=Path, default=None,
                        help="librispeech-lm-norm.txt or .txt.gz (if absent: training transcripts only)")
    parser.add_argument("--manifest-dir", required=True, type=Path)
    parser.add_argument("--train-part", default="train")
    parser.add_argument("--out-dir", required=True, type=Path, help="e.g. data/text")
    parser.add_argument("--fraction", type=float, default=1.0,
                        help="share of the LM corpus' sentences kept (deterministic, by hash)")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    setup_logging()
    if not 0.0 < args.fraction <= 1.0:
        parser.error("--fraction must be in (0, 1]")
    try:
        prepare_lm_text(args.manifest_dir, args.out_dir, lm_norm=args.lm_norm, train_part=args.train_part,
                        fraction=args.fraction, force=args.force)
    except LmTextError as e:
        log.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
