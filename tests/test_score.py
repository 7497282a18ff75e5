"""WER scoring: counts on hand-made pairs, Kaldi's exact wer lines, icefall's recogs/errs."""

from __future__ import annotations

from pathlib import Path

import pytest

from steps import score as score_program
from steps.scoring import wer as scoring
from steps.scoring.wer import WerCounts, read_text, read_wer, score, score_files

REF = """\
u1 A B C D
u2 A B C
u3 A B C D
u4 E F
u5 G H I
u7
"""
# u1 correct; u2 two insertions at the ends; u3 one substitution and one deletion;
# u4 empty hypothesis (2 deletions); u5 missing (3 deletions); u6 not in the reference;
# u7 empty reference and hypothesis.
HYP = """\
u1 A B C D
u2 X A B C Y
u3 A X D
u4
u6 Z
u7
"""


def write(tmp_path: Path, ref: str = REF, hyp: str = HYP) -> tuple[Path, Path]:
    (tmp_path / "ref").write_text(ref)
    (tmp_path / "hyp").write_text(hyp)
    return tmp_path / "ref", tmp_path / "hyp"


def test_counts_per_utterance():
    result = score(read_text_str(REF), read_text_str(HYP))
    per_utt = {u.utt: (u.ins, u.dels, u.subs, len(u.ref)) for u in result.utterances}
    assert per_utt == {"u1": (0, 0, 0, 4), "u2": (2, 0, 0, 3), "u3": (0, 1, 1, 4),
                       "u4": (0, 2, 0, 2), "u5": (0, 3, 0, 3), "u7": (0, 0, 0, 0)}
    assert result.missing == ["u5"] and result.extra == ["u6"]
    # words 4+3+4+2+3+0 = 16; errors 2 ins + 6 del + 1 sub = 9; sentences with errors: 4 of 6
    assert result.counts == WerCounts(errors=9, words=16, ins=2, dels=6, subs=1, sentences=6,
                                      sentence_errors=4, missing=1, extra=1)
    assert result.counts.wer == pytest.approx(56.25)


def read_text_str(text: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.split()}


def test_wer_file_exact_lines(tmp_path):
    ref, hyp = write(tmp_path)
    assert score_program.main(["--ref", str(ref), "--hyp", str(hyp), "--out-dir", str(tmp_path / "d")]) == 0
    assert (tmp_path / "d/wer").read_text() == (
        "%WER 56.25 [ 9 / 16, 2 ins, 6 del, 1 sub ] [PARTIAL]\n"
        "%SER 66.67 [ 4 / 6 ]\n"
        "Scored 6 sentences, 1 not present in hyp.\n"
        "Not scored: 1 hypotheses whose id is not in the reference.\n")
    counts = read_wer(tmp_path / "d/wer")
    assert (counts.errors, counts.words, counts.ins, counts.dels, counts.subs) == (9, 16, 2, 6, 1)
    assert (counts.sentence_errors, counts.sentences, counts.missing) == (4, 6, 1)
    assert score_files(ref, hyp) == score(read_text(ref).texts, read_text(hyp).texts).counts


def test_wer_line_without_missing_and_rounding(tmp_path):
    ref, hyp = write(tmp_path, "a X Y Z\nb P Q\nc R\n", "a X Y W\nb P Q\nc R\n")
    assert score_program.main(["--ref", str(ref), "--hyp", str(hyp), "--out-dir", str(tmp_path),
                         "--suffix", "_10"]) == 0
    # 1 / 6 = 16.666..% -> 16.67; 1 / 3 sentences -> 33.33
    assert (tmp_path / "wer_10").read_text() == (
        "%WER 16.67 [ 1 / 6, 0 ins, 0 del, 1 sub ]\n"
        "%SER 33.33 [ 1 / 3 ]\n"
        "Scored 3 sentences, 0 not present in hyp.\n")
    assert (tmp_path / "recogs_10").is_file() and (tmp_path / "errs_10").is_file()
    # a tie at the second decimal: 1 / 8 = 12.5%, 1 / 16 = 6.25% exactly
    assert WerCounts(1, 8, 0, 0, 1, 1, 1).kaldi_lines().startswith("%WER 12.50 [ 1 / 8,")
    assert WerCounts(1, 16, 1, 0, 0, 1, 1).kaldi_lines().startswith("%WER 6.25 [ 1 / 16,")
    assert WerCounts(1, 3, 1, 0, 0, 1, 1).kaldi_lines().startswith("%WER 33.33 [ 1 / 3,")


def test_recogs_and_errs(tmp_path):
    ref, hyp = write(tmp_path)
    score_program.main(["--ref", str(ref), "--hyp", str(hyp), "--out-dir", str(tmp_path)])
    recogs = (tmp_path / "recogs").read_text().splitlines()
    assert recogs[2:4] == ["u2:\tref=['A', 'B', 'C']", "u2:\thyp=['X', 'A', 'B', 'C', 'Y']"]
    assert recogs[6:8] == ["u4:\tref=['E', 'F']", "u4:\thyp=[]"]
    assert len(recogs) == 12  # the six reference utterances, sorted by id

    errs = (tmp_path / "errs").read_text()
    assert errs.startswith("%WER = 56.25\nErrors: 2 insertions, 6 deletions, 1 substitutions, "
                           "over 16 reference words (9 correct)\n")  # 16 - 6 del - 1 sub
    details = section(errs, "PER-UTT DETAILS")
    assert details == ["u1:\tA B C D", "u2:\t(*->X) A B C (*->Y)", "u3:\tA (B C->X) D",
                       "u4:\t(E F->*)", "u5:\t(G H I->*)", "u7:\t"]
    assert section(errs, "SUBSTITUTIONS") in (["1   B -> X"], ["1   C -> X"])
    deletions = section(errs, "DELETIONS")
    assert sorted(deletions) == sorted(["1   I", "1   H", "1   G", "1   F", "1   E",
                                        "1   C" if "1   B -> X" in errs else "1   B"])
    assert section(errs, "INSERTIONS") == ["1   Y", "1   X"]
    stats = {line.split()[0]: line.split()[1:] for line in section(errs, "PER-WORD STATS")}
    # word corr tot_errs count_in_ref count_in_hyp
    assert stats["A"] == ["3", "0", "3", "3"]
    assert stats["X"] == ["0", "2", "0", "2"]  # one insertion, one substitution into it
    assert stats["G"] == ["0", "1", "1", "0"]
    assert section(errs, "MISSING FROM HYP") == ["u5"]
    assert section(errs, "NOT IN REF") == ["u6"]


def section(text: str, name: str) -> list[str]:
    body = text.split(f"\n{name}:")[1].split("\n\n")[0]
    return body.splitlines()[1:]


def test_frequent_errors_first():
    refs = {f"u{i}": ["THE", "CAT"] for i in range(3)}
    hyps = {"u0": ["A", "CAT"], "u1": ["A", "CAT"], "u2": ["THE", "BAT"]}
    errs = scoring.format_errs(score(refs, hyps))
    assert section(errs, "SUBSTITUTIONS") == ["2   THE -> A", "1   CAT -> BAT"]
    assert section(errs, "PER-WORD STATS")[0] == "THE   1 2 3 1"


def test_repeated_ids_are_reported(tmp_path):
    (tmp_path / "t").write_text("a X\nb Y\na Z\n\n")
    text = read_text(tmp_path / "t")
    assert text.texts == {"a": ["X"], "b": ["Y"]}
    assert len(text.problems) == 1 and "a: repeated id" in text.problems[0]
