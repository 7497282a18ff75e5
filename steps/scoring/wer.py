"""Word error rate in Kaldi's compute-wer format, with icefall's recogs and errs files."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import kaldialign
import numpy as np

from steps.core.atomic import write_text

EPS = "*"  # the gap symbol in alignments, as icefall prints it


@dataclass
class Transcripts:
    texts: dict[str, list[str]]  # utt id -> words, file order
    problems: list[str] = field(default_factory=list)  # "path:line: id: reason"


def read_text(path: str | Path) -> Transcripts:
    """Kaldi text; a repeated id keeps its first line and is reported."""
    result = Transcripts({})
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            utt, words = fields[0], fields[1:]
            if utt in result.texts:
                result.problems.append(f"{path}:{number}: {utt}: repeated id, line ignored")
                continue
            result.texts[utt] = words
    return result


@dataclass
class UttScore:
    utt: str
    ref: list[str]
    hyp: list[str]
    alignment: list[tuple[str, str]]  # (ref word or EPS, hyp word or EPS)
    ins: int
    dels: int
    subs: int
    missing: bool = False  # no hypothesis: scored as empty

    @property
    def errors(self) -> int:
        return self.ins + self.dels + self.subs


def score_utterance(utt: str, ref: list[str], hyp: list[str], missing: bool = False) -> UttScore:
    alignment = kaldialign.align(ref, hyp, EPS)
    ins = sum(r == EPS for r, _ in alignment)
    dels = sum(h == EPS for _, h in alignment)
    subs = sum(r != h and r != EPS and h != EPS for r, h in alignment)
    return UttScore(utt, list(ref), list(hyp), alignment, ins, dels, subs, missing)


@dataclass
class WerCounts:
    errors: int
    words: int
    ins: int
    dels: int
    subs: int
    sentences: int = 0
    sentence_errors: int = 0
    missing: int = 0  # reference utterances without hypothesis (scored as empty)
    extra: int = 0  # hypothesis utterances not in the reference (not scored)

    @property
    def wer(self) -> float:
        """Percent, as Kaldi computes it (float32)."""
        return _kaldi_percent(self.errors, self.words)

    @property
    def ser(self) -> float:
        return _kaldi_percent(self.sentence_errors, self.sentences)

    def kaldi_lines(self) -> str:
        """compute-wer's three lines (plus one if hypotheses were not scored)."""
        partial = " [PARTIAL]" if self.missing else ""
        text = (f"%WER {_fixed2(self.wer)} [ {self.errors} / {self.words}, {self.ins} ins, "
                f"{self.dels} del, {self.subs} sub ]{partial}\n"
                f"%SER {_fixed2(self.ser)} [ {self.sentence_errors} / {self.sentences} ]\n"
                f"Scored {self.sentences} sentences, {self.missing} not present in hyp.\n")
        if self.extra:
            text += f"Not scored: {self.extra} hypotheses whose id is not in the reference.\n"
        return text


def _kaldi_percent(errors: int, total: int) -> float:
    # compute-wer: BaseFloat percent = 100.0 * errs / total, printed std::fixed, 2 digits
    if total == 0:
        return 0.0 if errors == 0 else float("inf")
    return float(np.float32(100.0 * errors / total))


def _fixed2(value: float) -> str:
    return "inf" if value == float("inf") else f"{value:.2f}"


@dataclass
class ScoreResult:
    counts: WerCounts
    utterances: list[UttScore]  # reference order
    missing: list[str]  # reference ids without hypothesis
    extra: list[str]  # hypothesis ids not in the reference


def score(refs: dict[str, list[str]], hyps: dict[str, list[str]]) -> ScoreResult:
    utterances = []
    for utt, ref in refs.items():
        hyp = hyps.get(utt)
        utterances.append(score_utterance(utt, ref, hyp or [], missing=hyp is None))
    missing = [u.utt for u in utterances if u.missing]
    extra = [utt for utt in hyps if utt not in refs]
    counts = WerCounts(
        errors=sum(u.errors for u in utterances),
        words=sum(len(u.ref) for u in utterances),
        ins=sum(u.ins for u in utterances),
        dels=sum(u.dels for u in utterances),
        subs=sum(u.subs for u in utterances),
        sentences=len(utterances),
        sentence_errors=sum(u.errors > 0 for u in utterances),
        missing=len(missing),
        extra=len(extra),
    )
    return ScoreResult(counts, utterances, missing, extra)


def score_files(ref: str | Path, hyp: str | Path) -> WerCounts:
    """The counts (errors, words, ins, dels, subs, ...) of a hypothesis file."""
    return score(read_text(ref).texts, read_text(hyp).texts).counts


_WER_LINE = re.compile(r"%WER (\S+) \[ (\d+) / (\d+), (\d+) ins, (\d+) del, (\d+) sub \]")


_SER_LINE = re.compile(r"%SER (\S+) \[ (\d+) / (\d+) \]")


_SCORED_LINE = re.compile(r"Scored (\d+) sentences, (\d+) not present in hyp")


def utterance_errors(ref: str | Path, hyp: str | Path) -> dict[str, tuple[int, int]]:
    """utt id -> (word errors, reference words), every reference utterance (no hypothesis:
    scored as empty): the items of a bootstrap over utterances (steps.scoring.bootstrap)."""
    result = score(read_text(ref).texts, read_text(hyp).texts)
    return {u.utt: (u.errors, len(u.ref)) for u in result.utterances}


def read_wer(path: str | Path) -> WerCounts:
    """WerCounts from a wer file written here or by Kaldi's compute-wer."""
    text = Path(path).read_text()
    match = _WER_LINE.search(text)
    if not match:
        raise ValueError(f"{path}: no %WER line")
    errors, words, ins, dels, subs = (int(x) for x in match.groups()[1:])
    counts = WerCounts(errors, words, ins, dels, subs)
    if m := _SER_LINE.search(text):
        counts.sentence_errors, counts.sentences = int(m.group(2)), int(m.group(3))
    if m := _SCORED_LINE.search(text):
        counts.missing = int(m.group(2))
    return counts


def format_recogs(result: ScoreResult) -> str:
    lines = []
    for u in sorted(result.utterances, key=lambda u: u.utt):
        lines.append(f"{u.utt}:\tref={u.ref}\n{u.utt}:\thyp={u.hyp}\n")
    return "".join(lines)


def _merged_errors(alignment: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Consecutive error pairs merged into one (icefall's combine_successive_errors)."""
    groups: list[tuple[list[str], list[str]]] = []
    previous_error = False
    for r, h in alignment:
        error = r != h
        if error and previous_error:
            groups[-1][0].append(r)
            groups[-1][1].append(h)
        else:
            groups.append(([r], [h]))
        previous_error = error
    merged = []
    for refs, hyps in groups:
        refs = [w for w in refs if w != EPS]
        hyps = [w for w in hyps if w != EPS]
        merged.append((" ".join(refs) or EPS, " ".join(hyps) or EPS))
    return merged


def format_errs(result: ScoreResult) -> str:
    c = result.counts
    subs: dict[tuple[str, str], int] = defaultdict(int)
    ins: dict[str, int] = defaultdict(int)
    dels: dict[str, int] = defaultdict(int)
    per_word: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])  # corr ref_sub hyp_sub ins del
    correct = 0
    for u in result.utterances:
        for r, h in u.alignment:
            if r == EPS:
                ins[h] += 1
                per_word[h][3] += 1
            elif h == EPS:
                dels[r] += 1
                per_word[r][4] += 1
            elif r != h:
                subs[(r, h)] += 1
                per_word[r][1] += 1
                per_word[h][2] += 1
            else:
                per_word[r][0] += 1
                correct += 1
    out = [
        f"%WER = {_fixed2(c.wer)}\n",
        f"Errors: {c.ins} insertions, {c.dels} deletions, {c.subs} substitutions, over "
        f"{c.words} reference words ({correct} correct)\n",
        "Search below for sections starting with PER-UTT DETAILS:, SUBSTITUTIONS:, "
        "DELETIONS:, INSERTIONS:, PER-WORD STATS:, MISSING FROM HYP:, NOT IN REF:\n",
        "\nPER-UTT DETAILS: corr or (ref->hyp)  \n",
    ]
    for u in sorted(result.utterances, key=lambda u: u.utt):
        shown = " ".join(r if r == h else f"({r}->{h})" for r, h in _merged_errors(u.alignment))
        out.append(f"{u.utt}:\t{shown}\n")
    out.append("\nSUBSTITUTIONS: count ref -> hyp\n")
    for count, (r, h) in sorted(((v, k) for k, v in subs.items()), reverse=True):
        out.append(f"{count}   {r} -> {h}\n")
    out.append("\nDELETIONS: count ref\n")
    for count, r in sorted(((v, k) for k, v in dels.items()), reverse=True):
        out.append(f"{count}   {r}\n")
    out.append("\nINSERTIONS: count hyp\n")
    for count, h in sorted(((v, k) for k, v in ins.items()), reverse=True):
        out.append(f"{count}   {h}\n")
    out.append("\nPER-WORD STATS: word  corr tot_errs count_in_ref count_in_hyp\n")
    for _, word, (corr, ref_sub, hyp_sub, n_ins, n_del) in sorted(
            ((sum(v[1:]), k, v) for k, v in per_word.items()), reverse=True):
        out.append(f"{word}   {corr} {ref_sub + hyp_sub + n_ins + n_del} "
                   f"{corr + ref_sub + n_del} {corr + hyp_sub + n_ins}\n")
    out.append(f"\nMISSING FROM HYP: {len(result.missing)} reference utterances without "
               f"hypothesis, scored as all deletions\n")
    out.extend(f"{utt}\n" for utt in result.missing)
    out.append(f"\nNOT IN REF: {len(result.extra)} hypothesis utterances not in the "
               f"reference, not scored\n")
    out.extend(f"{utt}\n" for utt in result.extra)
    return "".join(out)


def write_scoring(out_dir: str | Path, result: ScoreResult, suffix: str = "") -> None:
    out_dir = Path(out_dir)
    write_text(out_dir / f"recogs{suffix}", format_recogs(result))
    write_text(out_dir / f"errs{suffix}", format_errs(result))
    write_text(out_dir / f"wer{suffix}", result.counts.kaldi_lines())
