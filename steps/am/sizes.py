"""How big the acoustic model's outputs are and what its priors come from: the number of
senones (config, senone counts file or the alignments), each auxiliary head's vocabulary
(config, or exp/lm_<level>/tokens.txt), the senone counts, and priors.txt.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from steps.am.cut_store import CutStore
from steps.core.atomic import write_text
from steps.core.config import ConfigError


def read_counts(path: Path) -> np.ndarray:
    counts = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[0].isdigit() or not parts[1].lstrip("-").isdigit():
            raise ValueError(f"{path}:{number}: expected `senone_id count`, got {line!r}")
        counts[int(parts[0])] = int(parts[1])
    out = np.zeros(max(counts) + 1 if counts else 0, dtype=np.int64)
    for i, c in counts.items():
        out[i] = c
    return out


def count_lines(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def resolve_sizes(config, store: CutStore, counts_path: Path | None, lm_dir: Path
                  ) -> tuple[int, dict[str, int], np.ndarray, str]:
    """config: AmConfig. (num_senones, aux head sizes, senone counts [S], where the counts
    came from)."""
    counts, source = store.senone_counts, "the training alignments"
    if counts_path is not None and counts_path.is_file():
        counts, source = read_counts(counts_path), str(counts_path)
    seen = max(len(counts), store.max_id["ali"] + 1, store.max_id.get("senone", -1) + 1)
    num_senones = config.model.num_senones or seen
    if num_senones < len(counts):
        raise ConfigError(f"model.num_senones: {num_senones} is less than the {len(counts)} "
                          f"senones in {source}")
    full = np.zeros(num_senones, dtype=np.int64)
    full[: len(counts)] = counts
    aux = {}
    for i, head in enumerate(config.model.aux_heads):
        if head.num_units is not None:
            aux[head.level] = head.num_units
        elif head.level == "senone":
            aux[head.level] = num_senones
        else:
            tokens = lm_dir / f"lm_{head.level}" / "tokens.txt"
            if not tokens.is_file():
                raise ConfigError(f"model.aux_heads[{i}].num_units: not set and {tokens} does not "
                                  "exist (give --lm-dir or the head's num_units)")
            aux[head.level] = count_lines(tokens)
    return num_senones, aux, full, source


def write_priors(path: Path, counts: np.ndarray, log_priors: torch.Tensor) -> None:
    write_text(path, "".join(f"{i} {int(c)} {float(p):.6f}\n"
                             for i, (c, p) in enumerate(zip(counts, log_priors))))
