"""Forced alignment of a part's cuts with a trained alignment model, kept on the cuts: per-frame state ids as a lhotse array (custom field), phone and word segments as supervision alignment items."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch
from lhotse import CutSet, NumpyHdf5Writer
from lhotse.utils import fastcopy

from steps.core import atomic, checkpoint
from steps.data.ali_times import FRAME_SHIFT, frame_items
from steps.data.utterances import load_utterances
from steps.hmm.align_model import model_from_checkpoint
from steps.hmm.forced_align import Alignment
from steps.hmm.mono_training import align_utterances
from steps.hmm.topology import Topology
from steps.hmm.training_graph import TrainingGraphCompiler
from steps.hmm.units import word_prons
from steps.lang.lexicon import Lang


def attach_alignment(cut, alignment: Alignment, lang: Lang, writer: NumpyHdf5Writer,
                     field_name: str = "mono_ali"):
    """The cut with its per-frame ids stored and its phone/word segments attached."""
    array = writer.store_array(cut.id, alignment.states, frame_shift=FRAME_SHIFT, temporal_dim=0,
                               start=cut.start)
    supervision = cut.supervisions[0]
    supervision = supervision.with_alignment(
        "ali_phone", frame_items(alignment.phones, lambda p: lang.phones[p], cut.start))
    supervision = supervision.with_alignment("ali_word", frame_items(alignment.words, str, cut.start))
    cut = fastcopy(cut, supervisions=[supervision, *cut.supervisions[1:]])
    cut.custom = dict(cut.custom or {}, **{field_name: array})
    return cut


def align_part(cuts: CutSet, model_path: Path, lang: Lang, topology: Topology, sil_probs: tuple[float, float],
               output_beam: float, out_dir: Path, part: str, suffix: str, device: torch.device):
    """Aligns cuts; writes cuts_<part><suffix>.jsonl.gz, the arrays, and the reports."""
    ckpt = checkpoint.load(model_path)
    model = model_from_checkpoint(ckpt).to(device)
    utterances, skipped = load_utterances(cuts, f"loading {part}{suffix}")
    compiler = TrainingGraphCompiler(lang, topology, *sil_probs)
    graphs = [compiler.compile(u.words) for u in utterances]
    prior_scale = ckpt.get("train_config", {}).get("training", {}).get("prior_scale", 0.0)
    results = align_utterances(model, utterances, graphs, 20000, output_beam, device, f"aligning {part}{suffix}",
                               ckpt.get("log_priors"), prior_scale)
    by_id = {u.cut_id: r for u, r in zip(utterances, results)}
    array_dir = out_dir / f"ali_{part}"
    array_dir.mkdir(parents=True, exist_ok=True)
    aligned, prons = [], Counter()
    with NumpyHdf5Writer(array_dir / f"mono_ali{suffix}.h5", mode="w") as writer:
        for cut in cuts:
            result = by_id.get(cut.id)
            if result is None:
                continue  # already in `skipped`
            if isinstance(result, str):
                skipped.append((cut.id, result))
                continue
            aligned.append(attach_alignment(cut, result, lang, writer))
            prons.update(word_prons(result.words, result.phones, lang))
    with atomic.atomic_path(out_dir / f"cuts_{part}{suffix}.jsonl.gz") as tmp:
        CutSet.from_cuts(aligned).to_file(tmp)
    atomic.write_text(out_dir / f"unaligned_{part}{suffix}.txt",
                      "".join(f"{cut_id} {reason}\n" for cut_id, reason in skipped))
    atomic.write_text(out_dir / f"pron_counts_{part}{suffix}.txt",
                      "".join(f"{w} {c} {' '.join(p)}\n" for (w, p), c in sorted(prons.items())))
    return len(aligned), skipped
