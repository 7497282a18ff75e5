"""Tokens of each unit level read off a cut's alignment: their frame spans and what the teacher sees (senone runs, phones, subword pieces over word spans, plm pieces), silence cut out."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from steps.data.ali_times import item_frames
from steps.kd.pretrained_teacher import PretrainedTeacher
from steps.lang.lexicon import SILENCE, Lang

NOT_WORDS = {"!SIL", "<eps>", SILENCE, "<s>", "</s>"}


@dataclass
class UnitMaps:
    """What turns an alignment into each level's units."""

    lang: Lang
    sp: object  # sentencepiece.SentencePieceProcessor
    phones: list[str]  # the phone level's units (steps.lm.tokens.phone_units)
    # phones.txt ids (no silence) -> senone ids; set to check senone_ali against the text path
    expected_senones: Callable[[list[int]], list[int]] | None = None
    plm: PretrainedTeacher | None = None  # the plm level's tokenizer and normalisation
    phone_unit: dict[str, int] = field(init=False)

    def __post_init__(self):
        self.phone_unit = {p: i for i, p in enumerate(self.phones)}


@dataclass
class LevelTokens:
    teacher_tokens: list[int]  # the teacher's input, one per reference token
    tokens: np.ndarray  # int32 [N] rows: unit id
    spans: np.ndarray  # int32 [N, 2]
    positions: np.ndarray  # int64 [N] index into teacher_tokens
    problems: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)


def _silent_before(speech: np.ndarray) -> list[int]:
    """Number of non-speech frames before each frame index 0..T (a prefix count)."""
    return np.concatenate([[0], np.cumsum(~speech)]).tolist()


def _split_at_silence(token: int, position: int, start: int, end: int, speech: np.ndarray,
                      silent_before: list[int], rows: list) -> None:
    """Rows for the speech frames of [start, end): one per contiguous run."""
    if silent_before[end] == silent_before[start]:  # the common case: all speech
        rows.append((token, start, end, position))
        return
    inside = np.flatnonzero(speech[start:end]) + start
    if len(inside) == 0:
        return
    breaks = np.flatnonzero(np.diff(inside) != 1) + 1
    for run in np.split(inside, breaks):
        rows.append((token, int(run[0]), int(run[-1]) + 1, position))


def _level(teacher_tokens: list[int], rows: list, problems: Counter, notes: list[str]) -> LevelTokens:
    rows.sort(key=lambda r: r[1])
    return LevelTokens(
        teacher_tokens,
        np.array([r[0] for r in rows], dtype=np.int32),
        np.array([[r[1], r[2]] for r in rows], dtype=np.int32).reshape(-1, 2),
        np.array([r[3] for r in rows], dtype=np.int64),
        problems, notes)


def phone_tokens(segments: list[tuple[str, int, int]], speech: np.ndarray, units: UnitMaps) -> LevelTokens:
    teacher, rows, problems, notes = [], [], Counter(), []
    silent_before = _silent_before(speech)
    for symbol, start, end in segments:
        if symbol == SILENCE:
            continue
        unit = units.phone_unit.get(symbol)
        if unit is None:
            problems["oov_tokens"] += 1
            notes.append(f"phone {symbol!r} not in the teacher's vocabulary")
            continue
        teacher.append(unit)
        if end <= start:
            problems["tokens_without_frames"] += 1
            continue
        _split_at_silence(unit, len(teacher) - 1, start, end, speech, silent_before, rows)
    return _level(teacher, rows, problems, notes)


def senone_tokens(senone_ali: np.ndarray, speech: np.ndarray, num_senones: int) -> LevelTokens:
    problems, notes = Counter(), []
    frames = np.flatnonzero(speech)
    values = senone_ali[frames].astype(np.int64)
    bad = (values < 0) | (values >= num_senones)
    if bad.any():
        problems["oov_tokens"] += int(np.count_nonzero(np.diff(np.flatnonzero(bad)) != 1) + 1)
        notes.append(f"senone ids outside the teacher's 0..{num_senones - 1}: "
                     f"{sorted(set(values[bad].tolist()))[:5]}")
        frames, values = frames[~bad], values[~bad]
    if len(frames) == 0:
        return _level([], [], problems, notes)
    new_token = np.concatenate([[True], np.diff(values) != 0])
    position = np.cumsum(new_token) - 1
    new_row = new_token | np.concatenate([[True], np.diff(frames) != 1])
    starts = np.flatnonzero(new_row)
    ends = np.concatenate([starts[1:], [len(frames)]])
    rows = [(int(values[s]), int(frames[s]), int(frames[e - 1]) + 1, int(position[s]))
            for s, e in zip(starts, ends)]
    return _level(values[new_token].tolist(), rows, problems, notes)


def piece_boundaries(letters: Sequence[int], start: int, end: int,
                     phone_bounds: Sequence[int] = ()) -> list[int]:
    """Frame boundaries [start, b1, ..., end] sharing [start, end) among pieces in
    proportion to their letters, each piece at least one frame, inner boundaries snapped
    to the nearest phone boundary that keeps that. Fewer frames than pieces: pieces get
    floor-spread frames and some get none."""
    m, n = len(letters), end - start
    if n < m:
        return [start + (j * n) // m for j in range(m)] + [end]
    cum = np.cumsum(np.maximum(1, np.asarray(letters, dtype=float)))
    extra = n - m
    bounds = [start]
    candidates = sorted(b for b in phone_bounds if start < b < end)
    for j in range(m - 1):
        target = start + (j + 1) + extra * cum[j] / cum[-1]
        low, high = bounds[-1] + 1, end - (m - 1 - j)
        fitting = [b for b in candidates if low <= b <= high]
        if fitting:
            bounds.append(min(fitting, key=lambda b: (abs(b - target), b)))
        else:
            bounds.append(int(min(max(round(target), low), high)))
    return bounds + [end]


def word_piece_tokens(words: list[tuple[str, int, int]], pieces: list[list[int]],
                      letters: list[list[int]], phone_bounds: list[int], speech: np.ndarray,
                      what: str = "pieces") -> LevelTokens:
    """Rows of a piece level: word w's pieces[w] (with their letters[w]) share its aligned
    frames by piece_boundaries; the teacher's input is all pieces in order."""
    teacher, rows, problems, notes = [], [], Counter(), []
    silent_before = _silent_before(speech)
    for (word, start, end), word_pieces, word_letters in zip(words, pieces, letters):
        if not word_pieces:
            problems[f"words_without_{what}"] += 1
            notes.append(f"word {word} has no {what}")
            continue
        first = len(teacher)
        teacher += word_pieces
        if end <= start:
            problems["words_without_frames"] += 1
            notes.append(f"word {word} has no frames")
            continue
        bounds = piece_boundaries(word_letters, start, end, phone_bounds)
        for j, piece in enumerate(word_pieces):
            if bounds[j + 1] <= bounds[j]:
                problems["pieces_without_frames"] += 1
                continue
            _split_at_silence(piece, first + j, bounds[j], bounds[j + 1], speech, silent_before, rows)
    return _level(teacher, rows, problems, notes)


def subword_tokens(words: list[tuple[str, int, int]], phone_bounds: list[int], speech: np.ndarray,
                   sp) -> LevelTokens:
    words = [w for w in words if w[0] not in NOT_WORDS]
    pieces = [sp.encode(word, out_type=int) for word, _, _ in words]
    letters = [[len(sp.id_to_piece(p).replace("\u2581", "")) for p in ps] for ps in pieces]
    return word_piece_tokens(words, pieces, letters, phone_bounds, speech)


def plm_tokens(words: list[tuple[str, int, int]], phone_bounds: list[int], speech: np.ndarray,
               teacher: PretrainedTeacher) -> LevelTokens:
    """The pre-trained model's pieces of the aligned words (normalised and tokenised as one
    transcript, steps.kd.plm_text), each word's frames shared among its pieces as for the
    subword level."""
    words = [w for w in words if w[0] not in NOT_WORDS]
    encoded = teacher.encode_words([w for w, _, _ in words])
    pieces: list[list[int]] = [[] for _ in words]
    letters: list[list[int]] = [[] for _ in words]
    for piece, index, count in zip(encoded.ids, encoded.word, encoded.letters):
        pieces[index].append(piece)
        letters[index].append(count)
    tokens = word_piece_tokens(words, pieces, letters, phone_bounds, speech, what="model_pieces")
    if encoded.unknown:
        tokens.problems["unknown_pieces"] += encoded.unknown
    return tokens


class NoAlignment(Exception):
    pass


def cut_tokens(cut, units: UnitMaps, num_units: dict[str, int]) -> dict[str, LevelTokens]:
    """Every level's tokens of one cut (levels as in num_units: level -> teacher vocabulary
    size). Raises NoAlignment when the cut lacks what the levels need."""
    if not cut.supervisions:
        raise NoAlignment("no supervision")
    alignment = cut.supervisions[0].alignment or {}
    if "ali_phone" not in alignment:
        raise NoAlignment("no ali_phone alignment")
    if not cut.has_custom("senone_ali"):
        raise NoAlignment("no senone_ali")
    senone_ali = np.asarray(cut.load_custom("senone_ali")).reshape(-1)
    num_frames = len(senone_ali)
    phones = [(item.symbol, *item_frames(item, cut.start, num_frames)) for item in alignment["ali_phone"]]
    covered = np.zeros(num_frames, dtype=bool)
    speech = np.zeros(num_frames, dtype=bool)
    for symbol, start, end in phones:
        covered[start:end] = True
        if symbol != SILENCE:
            speech[start:end] = True
    result: dict[str, LevelTokens] = {}
    uncovered = int(num_frames - covered.sum())
    if "phone" in num_units:
        result["phone"] = phone_tokens(phones, speech, units)
    if "senone" in num_units:
        result["senone"] = senone_tokens(senone_ali, speech, num_units["senone"])
        if units.expected_senones is not None:
            ids = [units.lang.phone_id[s] for s, _, _ in phones
                   if s != SILENCE and s in units.lang.phone_id]
            if list(units.expected_senones(ids)) != result["senone"].teacher_tokens:
                result["senone"].problems["mismatch_with_phones_to_senones"] += 1
                result["senone"].notes.append("senone runs differ from phones_to_senones of the "
                                              "aligned phones (the alignment's runs are used)")
    word_levels = [level for level in ("subword", "plm") if level in num_units]
    if word_levels:
        if "ali_word" not in alignment:
            raise NoAlignment("no ali_word alignment")
        words = [(item.symbol, *item_frames(item, cut.start, num_frames)) for item in alignment["ali_word"]]
        bounds = sorted({s for _, s, _ in phones} | {e for _, _, e in phones})
        if "subword" in num_units:
            result["subword"] = subword_tokens(words, bounds, speech, units.sp)
        if "plm" in num_units:
            result["plm"] = plm_tokens(words, bounds, speech, units.plm)
        text = (cut.supervisions[0].text or "").split()
        aligned = [w for w, _, _ in words if w not in NOT_WORDS]
        if text and text != aligned:
            for level in word_levels:
                result[level].problems["words_differ_from_text"] += 1
                result[level].notes.append("ali_word differs from the transcript (ali_word used)")
    for level, tokens in result.items():
        if uncovered:
            tokens.problems["frames_without_phone_segment"] += uncovered
        tokens.problems["frames"] += num_frames
        tokens.problems["speech_frames"] += int(speech.sum())
    return result
