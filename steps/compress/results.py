"""The compression table: teacher (a), DistilHuBERT-style (b), same size from scratch (c)
and GenDistiller (d), with parameters, the ratio to the teacher, the network's CPU RTF and
dev/test WER (mean ± sample std over seeds, as the main RESULTS.md table), and the goals
checked against the measured numbers.

A goal on WER is decided by the calibrated comparison of the main report
(steps.scoring.seed_utterance: utterances paired, the spread between training seeds and
between test utterances both counted, the seed variance pooled over the four systems): met
when the 95% interval of the difference lies on the goal's side, not met when it lies on
the other, and "not shown" when it straddles the line, however the means fall.

Parameters are those used at test time: the teacher AM without its auxiliary heads, the
parallel student without its prediction heads. CPU RTF: seconds of the network's forward
pass (steps.am.scorer's log_posteriors, one thread, one utterance at a time, after one warm-up
call) per second of audio over the given cuts; search time is not included.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from steps.am import model as am_model
from steps.core import checkpoint as ckpt_io
from steps.compress import student
from steps.am.scorer import load_scorer
from steps.scoring import tables
from steps.scoring.recipe_results import SystemResult
from steps.scoring.recipe_results import collect as read_decodes
from steps.scoring.seed_utterance import Comparison, SeedRuns, SeedVariance, compare, format_p

BEGIN, END = "<!-- compress: begin -->", "<!-- compress: end -->"


def checkpoint_parameters(path: str | Path) -> int:
    checkpoint = ckpt_io.load(path)
    kind = checkpoint.get("kind")
    if kind == "acoustic_model":
        model = am_model.model_from_checkpoint(checkpoint)
        return sum(p.numel() for n, p in model.named_parameters() if not n.startswith("aux_heads."))
    if kind == "compressed_am":
        return student.inference_parameters(student.model_from_checkpoint(checkpoint))
    raise ValueError(f"{path}: kind {kind!r} is neither an acoustic model nor a compressed one")


def network_rtf(path: str | Path, cuts, num_threads: int = 1) -> float:
    torch.set_num_threads(num_threads)
    scorer = load_scorer(path, scorers=student.SCORERS)
    feats = [torch.from_numpy(np.asarray(c.load_features(), dtype=np.float32)) for c in cuts]
    if not feats:
        raise ValueError("no cuts to time the network on")
    scorer.log_posteriors(feats[0])
    began = time.perf_counter()
    for f in feats:
        scorer.log_posteriors(f)
    return (time.perf_counter() - began) / (sum(len(f) for f in feats) * 0.01)


@dataclass
class Row:
    """One system of the table: its label, its decodes (steps.scoring.recipe_results, the
    main report's reader: WERs and every utterance's errors per seed) and its size."""

    label: str
    result: SystemResult
    parameters: int | None = None
    rtf: float | None = None

    def utterances(self, part: str) -> dict[tuple[int, str], tuple[int, int]]:
        return self.result.utterances.get(("first pass", part), {})


def collect(exp_dir: Path, systems: list[tuple[str, str, list[int]]], cuts) -> list[Row]:
    """systems: (label, name, seeds); run dirs exp_dir/<name>_s<seed>."""
    rows = []
    for label, name, seeds in systems:
        row = Row(label, read_decodes(exp_dir, [name], seeds, prefix="")[0])
        first = exp_dir / f"{name}_s{seeds[0]}" / "final.pt"
        if first.is_file():
            row.parameters = checkpoint_parameters(first)
            row.rtf = network_rtf(first, cuts)
        else:
            row.result.missing.append(str(first))
        rows.append(row)
    return rows


def _cell(row: Row, part: str) -> str:
    return tables.mean_std_cell(row.result.mean(part), row.result.std(part), "missing")


def comparisons(rows: list[Row], part: str) -> dict[str, Comparison] | None:
    """label -> the GenDistiller student (the last row) minus that row, on `part`; None
    when a row has no scored utterances there."""
    if not all(row.utterances(part) for row in rows):
        return None
    runs = {row.label: SeedRuns.from_items(row.utterances(part)) for row in rows}
    seed_var = SeedVariance.pooled(list(runs.values()))
    gen = rows[-1].label
    return {row.label: compare(runs[row.label], runs[gen], seed_var) for row in rows[:-1]}


def _difference(c: Comparison) -> str:
    d = c.difference.scaled(100)
    return f"difference {d.value:+.2f} [{d.low:+.2f}, {d.high:+.2f}]"


def goals(rows: list[Row], max_ratio: float = 0.18, max_relative: float = 0.10) -> list[str]:
    """One line per goal of the issue from the numbers (rows: a, b, c, d): met, not met, or
    not shown (the interval of the difference straddles the goal's line). The goals are
    stated on test; the dev figures are given beside them."""
    teacher, parallel, scratch, gen = rows
    lines = []

    def fmt(x):
        return "missing" if x is None else f"{x:.2f}"

    teacher_test, gen_test = teacher.result.mean("test"), gen.result.mean("test")

    if teacher.parameters and gen.parameters:
        ratio = gen.parameters / teacher.parameters
        lines.append(f"- student at most {max_ratio:.0%} of the teacher's parameters: "
                     f"{'met' if ratio <= max_ratio else 'not met'} ({ratio:.1%})")
    test, dev = comparisons(rows, "test"), comparisons(rows, "dev")
    if test is None:
        return lines + ["- WER goals: missing figures (decodes without hyp.txt)"]
    c = test[teacher.label]
    margin = max_relative * c.a.value * 100
    d = c.difference.scaled(100)
    verdict = "met" if d.high <= margin else "not met" if d.low > margin else "not shown"
    on_dev = "" if dev is None else f"; dev {_difference(dev[teacher.label])}"
    lines.append(f"- test WER within {max_relative:.0%} relative of the teacher: {verdict} "
                 f"({fmt(gen_test)} vs {fmt(teacher_test)}, {_difference(c)}, "
                 f"margin +{margin:.2f}{on_dev})")
    for other, what in ((parallel, "(b) DistilHuBERT-style"), (scratch, "(c) from scratch")):
        c = test[other.label]
        d = c.difference.scaled(100)
        verdict = "met" if d.high < 0 else "not met, worse" if d.low > 0 else "not shown"
        size = ""
        if other is parallel and gen.parameters and parallel.parameters:
            size = (f"; at {'equal or fewer' if gen.parameters <= parallel.parameters else 'more'} "
                    f"parameters ({gen.parameters:,} vs {parallel.parameters:,})")
        on_dev = "" if dev is None else f"; dev {_difference(dev[other.label])}"
        lines.append(f"- beats {what} on test: {verdict} ({fmt(gen_test)} vs "
                     f"{fmt(other.result.mean('test'))}, {_difference(c)}, p = {format_p(c.p_value)}){size}{on_dev}")
    return lines


def render(rows: list[Row], seeds: list[int], notes: list[str]) -> str:
    teacher = rows[0].parameters
    lines = [BEGIN, "## Compressing the acoustic model (local/compress.sh)", "",
             f"Seeds of the students: {' '.join(map(str, seeds))}; WER % mean ± std over seeds "
             "(the teacher: its one run). CPU RTF: the network alone, one thread.", ""]
    lines += tables.markdown_table(
        ["system", "parameters", "ratio to teacher", "CPU RTF", "dev WER", "test WER"],
        [[row.label, f"{row.parameters:,}" if row.parameters else "missing",
          f"{row.parameters / teacher:.3f}" if row.parameters and teacher else "-",
          f"{row.rtf:.4f}" if row.rtf is not None else "-", _cell(row, "dev"), _cell(row, "test")] for row in rows])
    lines += ["", "Per seed (dev / test):", ""]
    for row in rows:
        pairs = [f"{d:.2f} / {t:.2f}" for d, t in zip(row.result.wers["dev"], row.result.wers["test"])]
        lines.append(f"- {row.label}: {', '.join(pairs) or 'missing'}")
    lines += ["", "Goals:", *goals(rows)]
    missing = [m for row in rows for m in row.result.missing]
    if missing:
        lines += ["", f"Missing: {', '.join(missing)}"]
    if notes:
        lines += ["", *notes]
    lines.append(END)
    return "\n".join(lines) + "\n"


def splice(document: str, section: str) -> str:
    """The document with its compression section replaced (or appended)."""
    if BEGIN in document and END in document:
        head, rest = document.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        return head + section + tail
    return document.rstrip("\n") + "\n\n" + section if document.strip() else section
