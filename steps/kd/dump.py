"""Dumping teacher soft labels: every cut's tokens scored by the teachers, top-k kept, stored per token as lhotse arrays attached to the cut."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
from lhotse import CutSet, NumpyHdf5Writer
from lhotse.utils import fastcopy

from steps.core.atomic import atomic_path, write_text
from steps.core.log import progress
from steps.data.hdf5_readers import close_now_and_then
from steps.data.output_frames import tokens_without_output
from steps.kd import soft_labels as sl
from steps.kd.alignment_tokens import LevelTokens, NoAlignment, UnitMaps, cut_tokens
from steps.kd.teachers import Teacher


def soft_labels_for(tokens: LevelTokens, ids: np.ndarray, probs: np.ndarray) -> sl.SoftLabels:
    """The rows' soft labels from the teacher's top-k at every reference position
    (ids, probs [len(teacher_tokens), k])."""
    return sl.SoftLabels(tokens.tokens, tokens.spans, ids[tokens.positions], probs[tokens.positions])


def dump_cuts(cuts, teachers: dict[str, Teacher], units: UnitMaps, out_dir: Path, corpus: str,
              job: int, top_k: int, temperature: float, part: str = "train",
              batch_cuts: int = 32, subsampling: int = 3) -> dict:
    """Soft labels of all levels for the cuts; writes the job's .h5 files and
    jobs/<corpus>_cuts_<part>.<job>.jsonl.gz (and returns the job's counts, among them
    the tokens with frames that no output frame of an AM at this subsampling reads:
    tokens_without_output_frame)."""
    # Length: one pass over the cuts with every level's writers and counters open

    out_dir.mkdir(parents=True, exist_ok=True)
    levels = [level for level in sl.LEVELS if level in teachers]
    num_units = {level: teachers[level].num_units for level in levels}
    info = {"top_k": top_k, "temperature": temperature, "levels": levels,
            "teachers": {level: str(teachers[level].path) for level in levels}}
    stats = {"cuts_in": 0, "cuts_out": 0, "frames": 0, "speech_frames": 0,
             "cuts_failed": Counter(), "tokens": Counter(), "rows": Counter(),
             "windowed": Counter(), "problems": {level: Counter() for level in levels},
             "subsampling": subsampling, "tokens_with_frames": Counter(),
             "tokens_without_output_frame": Counter()}
    bad: list[str] = []
    writers = {level: NumpyHdf5Writer(out_dir / f"{corpus}_{part}_{level}.{job}.h5", mode="w")
               for level in levels}
    jobs_dir = out_dir / "jobs"
    jobs_dir.mkdir(exist_ok=True)
    # the cuts are written as they are done: memory stays flat however many the job has
    with atomic_path(jobs_dir / f"{corpus}_cuts_{part}.{job}.jsonl.gz") as tmp, CutSet.open_writer(tmp) as written:
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
                    stats["tokens_with_frames"][level] += len(np.unique(level_tokens.positions))
                    stats["tokens_without_output_frame"][level] += tokens_without_output(
                        level_tokens.spans, level_tokens.positions,
                        level_tokens.problems["frames"], subsampling)
                    if not teachers[level].fits(len(level_tokens.teacher_tokens)):
                        stats["windowed"][level] += 1
                    problems = stats["problems"][level]
                    problems.update(level_tokens.problems)
                    for note in level_tokens.notes:
                        bad.append(f"{cut.id}\t{level}\t{note}")
                written.write(fastcopy(cut, custom=dict(cut.custom, **{sl.INFO_FIELD: info})))
                stats["cuts_out"] += 1
                stats["frames"] += tokens[levels[0]].problems["frames"]
                stats["speech_frames"] += tokens[levels[0]].problems["speech_frames"]
            batch.clear()

        try:
            for cut in progress(cuts, desc=f"dump job {job}", mininterval=5):
                stats["cuts_in"] += 1
                close_now_and_then(stats["cuts_in"])
                batch.append(cut)
                if len(batch) >= batch_cuts:
                    flush()
            flush()
        finally:
            for writer in writers.values():
                writer.close()
    for problems in stats["problems"].values():
        problems.pop("frames", None)
        problems.pop("speech_frames", None)
    write_text(jobs_dir / f"{corpus}_{part}_bad_items.{job}.txt", "".join(b + "\n" for b in bad))
    stats = json.loads(json.dumps(stats))  # Counters -> plain dicts
    return stats


SETTINGS = ("subsampling",)  # the same in every job's stats: copied, not summed


def merge_stats(all_stats: list[dict]) -> dict:
    merged: dict = {}
    for stats in all_stats:
        for key, value in stats.items():
            if key in SETTINGS:
                merged[key] = value
                continue
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
