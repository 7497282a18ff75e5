"""Where a corpus' manifests live: the file names every stage agrees on (DESIGN.md, stage 1),
and the transcripts of a part as every stage reads them."""

from __future__ import annotations

from pathlib import Path

from lhotse import SupervisionSet


def manifest_paths(manifest_dir: str | Path, corpus: str, part: str) -> tuple[Path, Path]:
    """The recordings and supervisions of one part: <corpus>_{recordings,supervisions}_<part>.jsonl.gz."""
    d = Path(manifest_dir)
    return (d / f"{corpus}_recordings_{part}.jsonl.gz", d / f"{corpus}_supervisions_{part}.jsonl.gz")


def cuts_path(out_dir: str | Path, corpus: str, part: str) -> Path:
    """The cuts of one part after a stage (fbank, alignment, soft labels): <corpus>_cuts_<part>.jsonl.gz."""
    return Path(out_dir) / f"{corpus}_cuts_{part}.jsonl.gz"


def supervision_words(path: str | Path) -> list[tuple[str, list[str]]]:
    """(supervision id, words) of a supervisions manifest, in file order: the text split on
    white space, as the lang stage counts words and the decoder scores them."""
    return [(s.id, (s.text or "").split()) for s in SupervisionSet.from_file(path)]
