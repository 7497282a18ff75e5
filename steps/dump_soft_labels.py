"""Dump the teachers' soft labels for every training cut, at every unit level, to disk.

Reads the aligned cuts (exp/tri_ali: custom field `senone_ali`, supervision alignments
`ali_phone` and `ali_word`), the lang dir, the sentencepiece model and the teachers
(exp/lm_<level>/final.pt from steps.train_lm; each names its level). Writes to --out-dir:

    <corpus>_cuts_<part>.jsonl.gz     the input cuts plus, per level L, the custom fields
                                      kd_L_{tokens,spans,ids,probs} and `kd_info`
                                      (see steps.kd.soft_labels for the arrays)
    <corpus>_<part>_<level>.<job>.h5  the arrays, one file per level and job
    <corpus>_<part>_bad_items.txt     `cut_id <TAB> level <TAB> reason` for everything left out
    <corpus>_<part>_dump_stats.json   counts (tokens, frames, every kind of problem)
    jobs/                             per-job cuts and stats (a finished job is not redone)
    .<corpus>_<part>/.done            written last, with the fingerprint of the inputs (cuts,
                                      lang, tree, topology, sentencepiece model, teachers)
                                      and options: a second run with the same ones is
                                      skipped (--force redoes every job)

Tokens come from the ALIGNMENT, one reference per cut and level:
- phone: the aligned phone segments (ali_phone) except SIL, with their frame spans.
- senone: the runs of equal senone ids in senone_ali over the non-silence frames, i.e.
  the de-duplicated senone sequence with silence removed. A run that continues across a
  silence (same senone on both sides) is one token for the teacher, as the text-derived
  sequence (steps.units.phones_to_senones, silence-transparent contexts) has it, and is
  stored as one row per frame segment, all rows with the same soft label. With --tree (and
  the topology next to it) the sequence is checked against phones_to_senones of the aligned phones;
  mismatching cuts are counted and listed (the alignment's sequence is used).
- subword: each aligned word (ali_word) split into its sentencepiece pieces; the word's
  frames are shared among its pieces in proportion to their letters (at least one frame
  each), each inner boundary then snapped to the nearest phone boundary of the alignment
  inside the word (still one frame per piece at least), so that e.g. WALK|ING splits at
  the K|IH boundary. A word with fewer frames than pieces leaves some pieces without
  frames (counted); a word with no frames gives its pieces no rows (counted). Pieces stay
  in the teacher's input either way.
- plm (a pre-trained transformers model, steps.kd.pretrained_teacher; --teachers exp/lm_plm
  from steps.prepare_plm_teacher, or the model directory itself): the aligned words,
  normalised and tokenised by the model's tokenizer as one transcript (steps.kd.plm_text),
  each word's frames shared among its pieces by the subword rule. Words the tokenizer maps
  to nothing are counted (words_without_model_pieces) and listed; pieces that are the
  tokenizer's unknown token are counted (unknown_pieces).
Silence = frames of SIL segments in ali_phone (and frames no phone segment covers, counted):
they get no row at any level, so spans cover exactly the non-silence frames.

Teacher distributions: causal teachers give p(u_i | u_<i), masked ones p(u_i | u_!=i) with
position i masked; logits over the units only, divided by --temperature, top --top-k kept
and renormalised. References longer than a teacher's context are scored with windows
(steps.lm.model) and counted, never truncated. Tokens outside a teacher's vocabulary are
left out of its input and get no row (counted). Cuts without an alignment are left out of
the output (listed with the reason).

    python -m steps.dump_soft_labels --cuts exp/tri_ali/cuts_train.jsonl.gz \\
        --lang-dir data/lang --tree exp/tree \\
        --bpe-model data/lang_bpe_500/bpe.model \\
        --teachers exp/lm_senone exp/lm_phone exp/lm_subword [exp/lm_plm] \\
        --top-k 8 --temperature 1.0 --out-dir data/kd --corpus synth --nj 2
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from steps.core import atomic
from steps.core import checkpoint as ckpt_io
from steps.kd import soft_labels as sl
from steps.data.ali_times import item_frames
from steps.core.atomic import atomic_path, write_text
from steps.lang.lexicon import SILENCE, Lang
from steps.kd.pretrained_teacher import TEACHER_FILE, PlmError, PretrainedTeacher
from steps.lm.model import TransformerLM, model_from_checkpoint, unit_logits, unit_top_k
from steps.core.log import progress

log = logging.getLogger(__name__)

NOT_WORDS = {"!SIL", "<eps>", SILENCE, "<s>", "</s>"}


# ------------------------------------------------------------------ teachers


@dataclass
class Teacher:
    level: str
    model: TransformerLM
    path: Path
    batch_tokens: int = 8192

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu"):
        """A steps.train_lm teacher, or a pre-trained one (steps.kd.pretrained_teacher) for a
        directory with teacher.json or a transformers config.json."""
        path = Path(directory)
        if path.is_dir() and ((path / TEACHER_FILE).is_file() or (path / "config.json").is_file()):
            try:
                return PretrainedTeacher.load(path, device)
            except PlmError as e:
                raise SystemExit(f"plm teacher: {e}") from None
        path = path / "final.pt" if path.is_dir() else path
        checkpoint = ckpt_io.load(path, map_location=device)
        return cls(checkpoint["level"], model_from_checkpoint(checkpoint, device), path)

    @property
    def num_units(self) -> int:
        return self.model.num_units

    def fits(self, length: int) -> bool:
        """Whether a reference of `length` units fits in one window."""
        extra = 1 if self.model.causal else 2
        return length + extra <= self.model.config.max_context

    def unit_logits(self, sentences: Sequence[Sequence[int]]) -> list[torch.Tensor]:
        return unit_logits(self.model, sentences, self.batch_tokens)

    def top_k(self, sentences: Sequence[Sequence[int]], k: int, temperature: float
              ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per sentence (ids [n, k], probs [n, k]): the soft label of every position."""
        return unit_top_k(self.model, sentences, k, temperature, self.batch_tokens)


# ------------------------------------------------------------------ tokens from alignments


@dataclass
class UnitMaps:
    """What turns an alignment into each level's units."""

    lang: Lang
    sp: object  # sentencepiece.SentencePieceProcessor
    phones: list[str]  # the phone level's units (steps.lm_tokens.phone_units)
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


# ------------------------------------------------------------------ dumping


def soft_labels_for(tokens: LevelTokens, ids: np.ndarray, probs: np.ndarray) -> sl.SoftLabels:
    """The rows' soft labels from the teacher's top-k at every reference position
    (ids, probs [len(teacher_tokens), k])."""
    return sl.SoftLabels(tokens.tokens, tokens.spans, ids[tokens.positions], probs[tokens.positions])


def dump_cuts(cuts, teachers: dict[str, Teacher], units: UnitMaps, out_dir: Path, corpus: str,
              job: int, top_k: int, temperature: float, part: str = "train",
              batch_cuts: int = 32) -> dict:
    """Soft labels of all levels for the cuts; writes the job's .h5 files and
    jobs/<corpus>_cuts_<part>.<job>.jsonl.gz (and returns the job's counts)."""
    from lhotse import CutSet, NumpyHdf5Writer
    from lhotse.utils import fastcopy

    out_dir.mkdir(parents=True, exist_ok=True)
    levels = [level for level in sl.LEVELS if level in teachers]
    num_units = {level: teachers[level].num_units for level in levels}
    info = {"top_k": top_k, "temperature": temperature, "levels": levels,
            "teachers": {level: str(teachers[level].path) for level in levels}}
    stats = {"cuts_in": 0, "cuts_out": 0, "frames": 0, "speech_frames": 0,
             "cuts_failed": Counter(), "tokens": Counter(), "rows": Counter(),
             "windowed": Counter(), "problems": {level: Counter() for level in levels}}
    bad: list[str] = []
    writers = {level: NumpyHdf5Writer(out_dir / f"{corpus}_{part}_{level}.{job}.h5", mode="w")
               for level in levels}
    written = []
    try:
        batch: list = []

        def flush():
            per_cut = []
            for cut in batch:
                try:
                    per_cut.append((cut, cut_tokens(cut, units, num_units)))
                except NoAlignment as e:
                    stats["cuts_failed"][str(e)] += 1
                    bad.append(f"{cut.id}\t-\tleft out: {e}")
            labels = {level: [t[level] for _, t in per_cut] for level in levels}
            top = {}
            for level in levels:
                sequences = [t.teacher_tokens for t in labels[level]]
                top[level] = teachers[level].top_k(sequences, top_k, temperature)
            for index, (cut, tokens) in enumerate(per_cut):
                for level in levels:
                    level_tokens = tokens[level]
                    labels_ = soft_labels_for(level_tokens, *top[level][index])
                    labels_.check(level_tokens.problems["frames"])
                    cut = sl.store_soft_labels(cut, level, labels_, writers[level])
                    stats["tokens"][level] += len(level_tokens.teacher_tokens)
                    stats["rows"][level] += len(labels_)
                    if not teachers[level].fits(len(level_tokens.teacher_tokens)):
                        stats["windowed"][level] += 1
                    problems = stats["problems"][level]
                    problems.update(level_tokens.problems)
                    for note in level_tokens.notes:
                        bad.append(f"{cut.id}\t{level}\t{note}")
                cut = fastcopy(cut, custom=dict(cut.custom, **{sl.INFO_FIELD: info}))
                written.append(cut)
                stats["frames"] += tokens[levels[0]].problems["frames"]
                stats["speech_frames"] += tokens[levels[0]].problems["speech_frames"]
            batch.clear()

        for cut in progress(cuts, desc=f"dump job {job}", mininterval=5):
            stats["cuts_in"] += 1
            batch.append(cut)
            if len(batch) >= batch_cuts:
                flush()
        flush()
    finally:
        for writer in writers.values():
            writer.close()
    stats["cuts_out"] = len(written)
    for problems in stats["problems"].values():
        problems.pop("frames", None)
        problems.pop("speech_frames", None)
    jobs_dir = out_dir / "jobs"
    jobs_dir.mkdir(exist_ok=True)
    write_text(jobs_dir / f"{corpus}_{part}_bad_items.{job}.txt", "".join(b + "\n" for b in bad))
    with atomic_path(jobs_dir / f"{corpus}_cuts_{part}.{job}.jsonl.gz") as tmp:
        CutSet.from_cuts(written).to_file(tmp)
    stats = json.loads(json.dumps(stats))  # Counters -> plain dicts
    return stats


def merge_stats(all_stats: list[dict]) -> dict:
    merged: dict = {}
    for stats in all_stats:
        for key, value in stats.items():
            if isinstance(value, dict):
                target = merged.setdefault(key, {})
                for k, v in value.items():
                    if isinstance(v, dict):
                        inner = target.setdefault(k, {})
                        for kk, vv in v.items():
                            inner[kk] = inner.get(kk, 0) + vv
                    else:
                        target[k] = target.get(k, 0) + v
            elif isinstance(value, (int, float)):
                merged[key] = merged.get(key, 0) + value
    return merged


# ------------------------------------------------------------------ program


def _phones_to_senones(phone_ids: list[int], topology, tree) -> list[int]:
    from steps.hmm.units import phones_to_senones

    return phones_to_senones(phone_ids, topology, tree)


def load_units(args, teachers: dict[str, Teacher]) -> UnitMaps:
    """The unit maps, after checking that each teacher's vocabulary is its level's."""
    from steps.lm_tokens import load_sentencepiece, phone_units, read_tokens

    lang = Lang.load(args.lang_dir)
    phones = phone_units(lang)
    if "subword" in teachers and not args.bpe_model:
        raise SystemExit("a subword teacher needs --bpe-model")
    sp = load_sentencepiece(args.bpe_model) if "subword" in teachers else None
    expected = {"phone": len(phones)}
    if sp is not None:
        expected["subword"] = sp.get_piece_size()
    check: Callable[[list[int]], list[int]] | None = None
    if args.tree and args.topology:
        from steps.hmm.topology import Topology
        from steps.tree.decision_tree import Tree

        tree = Tree.load(args.tree)
        topology = Topology.from_dict(json.loads(Path(args.topology).read_text()))
        expected["senone"] = tree.num_senones

        check = partial(_phones_to_senones, topology=topology, tree=tree)
    for level, teacher in teachers.items():
        if level in expected and expected[level] != teacher.num_units:
            raise SystemExit(f"{teacher.path}: the {level} teacher has {teacher.num_units} units, "
                             f"the {level} vocabulary here has {expected[level]}")
        if level == "phone":
            tokens_file = teacher.path.parent / "tokens.txt"
            if tokens_file.exists() and read_tokens(tokens_file) != phones:
                raise SystemExit(f"{tokens_file}: not the phone units of {args.lang_dir}")
    return UnitMaps(lang, sp, phones, check, teachers.get("plm"))


def _job_files(args, job: int) -> tuple[Path, Path]:
    jobs_dir = Path(args.out_dir) / "jobs"
    return (jobs_dir / f"{args.corpus}_{args.part}_stats.{job}.json",
            jobs_dir / f"{args.corpus}_cuts_{args.part}.{job}.jsonl.gz")


def _teacher_file(path: Path) -> Path:
    """What stamps a teacher: final.pt, teacher.json (with its model dir) or the model dir."""
    if not path.is_dir():
        return path
    if (path / TEACHER_FILE).is_file():
        return path / TEACHER_FILE
    return path if (path / "config.json").is_file() else path / "final.pt"


def inputs_fingerprint(args) -> dict:
    """What the soft labels are made from: the inputs' stamps and the options."""
    teachers = [_teacher_file(Path(t)) for t in args.teachers]
    return atomic.inputs_fingerprint(
        [args.cuts, args.lang_dir, args.tree, args.topology, args.bpe_model, *teachers],
        top_k=args.top_k, temperature=args.temperature, corpus=args.corpus, part=args.part,
        batch_cuts=args.batch_cuts, batch_tokens=args.batch_tokens)


def _job_params(args, nj: int) -> dict:
    """What a finished job's outputs depend on; a job with other parameters is redone."""
    return {**inputs_fingerprint(args), "nj": nj}


def job_done(args, job: int, nj: int) -> bool:
    stats_file, cuts_file = _job_files(args, job)
    if not (stats_file.exists() and cuts_file.exists()):
        return False
    return json.loads(stats_file.read_text()).get("params") == _job_params(args, nj)


def run_job(args, job: int, nj: int) -> dict:
    from lhotse import CutSet

    out_dir = Path(args.out_dir)
    stats_file, cuts_file = _job_files(args, job)
    params = _job_params(args, nj)
    if job_done(args, job, nj):
        log.info("job %d of %d already done (%s)", job, nj, cuts_file)
        return json.loads(stats_file.read_text())["stats"]
    # The stats file marks a finished job: it goes before the job's arrays are rewritten.
    atomic.remove(stats_file, cuts_file)
    teachers = {}
    for directory in args.teachers:
        teacher = Teacher.load(directory, args.device)
        teacher.batch_tokens = args.batch_tokens
        if teacher.level in teachers:
            raise SystemExit(f"two teachers for level {teacher.level}: {directory}")
        teachers[teacher.level] = teacher
    units = load_units(args, teachers)
    cuts = CutSet.from_file(args.cuts)
    if nj > 1:
        cuts = cuts.split(nj)[job - 1]
    stats = dump_cuts(cuts, teachers, units, out_dir, args.corpus, job, args.top_k,
                      args.temperature, args.part, args.batch_cuts)
    write_text(stats_file, json.dumps({"params": params, "stats": stats}, indent=1) + "\n")
    return stats


def merge(args, nj: int) -> dict:
    out_dir = Path(args.out_dir)
    jobs_dir = out_dir / "jobs"
    missing = [str(f) for j in range(1, nj + 1) for f in _job_files(args, j) if not f.is_file()]
    if missing:
        raise SystemExit(f"dump_soft_labels: job outputs missing (a job did not finish): {', '.join(missing)}")
    stats = merge_stats([json.loads((jobs_dir / f"{args.corpus}_{args.part}_stats.{j}.json")
                                    .read_text())["stats"] for j in range(1, nj + 1)])
    write_text(out_dir / f"{args.corpus}_{args.part}_bad_items.txt", "".join(
        (jobs_dir / f"{args.corpus}_{args.part}_bad_items.{j}.txt").read_text()
        for j in range(1, nj + 1)))
    write_text(out_dir / f"{args.corpus}_{args.part}_dump_stats.json",
               json.dumps(stats, indent=1) + "\n")
    # the job manifests are concatenated line by line (no re-serialisation of the cuts)
    with atomic_path(out_dir / f"{args.corpus}_cuts_{args.part}.jsonl.gz") as tmp:
        with gzip.open(tmp, "wt", compresslevel=5) as merged:
            for j in range(1, nj + 1):
                with gzip.open(jobs_dir / f"{args.corpus}_cuts_{args.part}.{j}.jsonl.gz", "rt") as part:
                    shutil.copyfileobj(part, merged)
    return stats


def main(argv: list[str] | None = None) -> int:
    from steps.core.jobs import JobsFailed, add_job_arguments, job_argv, run_jobs
    from steps.core.log import setup_logging

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cuts", required=True, help="aligned cuts (exp/tri_ali/cuts_train.jsonl.gz)")
    parser.add_argument("--lang-dir", required=True)
    parser.add_argument("--tree", help="exp/tree: check senone runs against phones_to_senones")
    parser.add_argument("--topology", help="with --tree (default: topology.json next to the tree)")
    parser.add_argument("--bpe-model", help="sentencepiece model (needed for a subword teacher)")
    parser.add_argument("--teachers", nargs="+", required=True, help="exp/lm_<level> dirs")
    parser.add_argument("--top-k", type=int, default=8)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--part", default="train")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-cuts", type=int, default=32, help="cuts scored together")
    parser.add_argument("--batch-tokens", type=int, default=8192, help="positions per teacher batch")
    parser.add_argument("--num-threads", type=int, default=0,
                        help="torch threads per job (0: cores / nj)")
    parser.add_argument("--force", action="store_true", help="redo every job even if done with the same inputs")
    add_job_arguments(parser)
    args = parser.parse_args(argv)
    if args.tree and args.topology is None:
        tree_file = Path(args.tree) / "tree.txt" if Path(args.tree).is_dir() else Path(args.tree)
        args.topology = str(tree_file.parent / "topology.json")
    out_dir = Path(args.out_dir)
    if args.top_k < 1 or args.temperature <= 0:
        parser.error("--top-k must be >= 1 and --temperature > 0")
    if args.job is not None:
        setup_logging()
        torch.set_num_threads(args.num_threads or max(1, (os.cpu_count() or 1) // args.nj))
        run_job(args, args.job, args.nj)
        return 0
    setup_logging(log_file=out_dir / "log" / "dump_soft_labels.log")
    marker_dir = out_dir / f".{args.corpus}_{args.part}"
    final = out_dir / f"{args.corpus}_cuts_{args.part}.jsonl.gz"
    fingerprint = inputs_fingerprint(args)
    if atomic.up_to_date(marker_dir, fingerprint, args.force, [final],
                         what=f"{out_dir} {args.corpus} {args.part} soft labels"):
        return 0
    atomic.clear_done(marker_dir)
    # The merged cuts point at the job arrays, which unfinished jobs are about to rewrite.
    atomic.remove(final)
    if args.force:  # every job is redone
        atomic.remove(*[f for job in range(1, args.nj + 1) for f in _job_files(args, job)])
    if all(job_done(args, job, args.nj) for job in range(1, args.nj + 1)):
        log.info("all %d jobs already done; merging (remove %s/jobs to redo)", args.nj, out_dir)
    elif args.nj > 1:
        try:
            run_jobs(args.cmd, args.nj, out_dir / "log" / "dump.JOB.log", "steps.dump_soft_labels",
                     [a for a in job_argv(argv) if a != "--force"])
        except JobsFailed as e:
            log.error("%s", e)
            return 1
    else:
        if args.num_threads:
            torch.set_num_threads(args.num_threads)
        run_job(args, 1, 1)
    stats = merge(args, args.nj)
    atomic.mark_done(marker_dir, {"cuts_in": stats["cuts_in"], "cuts_out": stats["cuts_out"], "num_jobs": args.nj},
                     fingerprint)
    log.info("%d cuts in, %d out (%s left out: %s); tokens %s; rows %s; %d frames, %d speech; "
             "windowed references %s; problems %s; details in %s", stats["cuts_in"],
             stats["cuts_out"], sum(stats.get("cuts_failed", {}).values()),
             stats.get("cuts_failed", {}), stats.get("tokens"), stats.get("rows"),
             stats["frames"], stats["speech_frames"], stats.get("windowed", {}),
             stats.get("problems"), out_dir / f"{args.corpus}_{args.part}_bad_items.txt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
