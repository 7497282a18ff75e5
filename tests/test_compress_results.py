"""steps.compress.results: the compression table's goals are decided by the calibrated
comparison (seeds and utterances), and a difference the seeds cannot decide is "not shown"
even where the means fall on the goal's side."""

from __future__ import annotations

from steps.compress.results import BEGIN, END, Row, goals, render, splice
from steps.scoring.recipe_results import SystemResult


def _row(label: str, params: int, errors: dict[str, list[list[int]]]) -> Row:
    """errors: part -> per seed, per utterance word errors (10 words each)."""
    row = Row(label, SystemResult(label), parameters=params, rtf=0.01)
    for part, seeds in errors.items():
        for seed, per_utt in enumerate(seeds, start=1):
            row.result.utterances.setdefault(("first pass", part), {}).update(
                {(seed, f"u{i}"): (e, 10) for i, e in enumerate(per_utt)})
            row.result.wers[part].append(100.0 * sum(per_utt) / (10 * len(per_utt)))
    return row


def _seeds(*wers_per_seed: float, utterances: int = 100) -> list[list[int]]:
    """Seeds whose WERs are the given % on `utterances` utterances of 10 words (errors spread
    over the first utterances)."""
    out = []
    for wer in wers_per_seed:
        total = round(wer / 100 * 10 * utterances)
        out.append([min(10, max(0, total - 10 * i)) if i < total / 10 else 0 for i in range(utterances)])
    return out


def test_goals_by_the_calibrated_comparison():
    rows = [_row("a", 1000, {p: _seeds(10.0) for p in ("dev", "test")}),
            _row("b", 150, {p: _seeds(20.0, 21.0, 20.0) for p in ("dev", "test")}),
            _row("c", 140, {p: _seeds(10.3, 10.6, 10.0) for p in ("dev", "test")}),
            _row("d", 140, {p: _seeds(10.5, 10.8, 10.2) for p in ("dev", "test")})]
    lines = goals(rows)
    assert lines[0] == "- student at most 18% of the teacher's parameters: met (14.0%)"
    # d is 0.5 points above a's 10% (within the 1.0 margin by its mean), but one teacher run
    # and three student seeds cannot place the interval below the margin
    assert lines[1].startswith("- test WER within 10% relative of the teacher: not shown (10.50 vs 10.00, "
                               "difference +0.50 [")
    assert "margin +1.00" in lines[1]
    # far better than b on every seed: shown
    assert lines[2].startswith("- beats (b) DistilHuBERT-style on test: met (10.50 vs 20.33, difference -9.83 [")
    assert "at equal or fewer parameters (140 vs 150)" in lines[2]
    # 0.2 points worse than c, within the seeds' spread: neither way
    assert lines[3].startswith("- beats (c) from scratch on test: not shown (10.50 vs 10.30, difference +0.20 [")

    rows[3] = _row("d", 140, {p: _seeds(30.0, 31.0, 30.0) for p in ("dev", "test")})
    lines = goals(rows)
    assert "relative of the teacher: not met (" in lines[1]
    assert "from scratch on test: not met, worse (" in lines[3]

    section = render(rows, [1, 2, 3], [])
    assert "| b | 150 | 0.150 | 0.0100 | 20.33 ± 0.58 | 20.33 ± 0.58 |" in section
    document = splice("# Results\n\ntable\n", section)
    assert document.startswith("# Results\n\ntable\n\n" + BEGIN)
    again = splice(document + "after\n", render(rows, [1, 2, 3], ["note"]))
    assert again.count(BEGIN) == 1 and again.count(END) == 1 and again.endswith("after\n")


def test_goals_without_scored_utterances_say_so():
    rows = [Row(x, SystemResult(x), parameters=100, rtf=0.01) for x in "abcd"]
    assert goals(rows)[-1] == "- WER goals: missing figures (decodes without hyp.txt)"
