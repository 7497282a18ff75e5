"""Forced alignment of a part's cuts with a trained alignment model, kept on the cuts: per-frame state ids as a lhotse array (custom field), phone and word segments as supervision alignment items."""

from __future__ import annotations

from collections import Counter
from itertools import islice
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


# Cuts aligned at a time: a chunk's features, graphs and paths are held, so memory stays flat
# however large the part (2000 cuts: about 7 h of LibriSpeech, 0.8 GB of features).
CHUNK_CUTS = 2000


def in_chunks(cuts, size: int):
    """The cuts, `size` at a time, in their order."""
    iterator = iter(cuts)
    while chunk := list(islice(iterator, size)):
        yield chunk


def align_part(cuts: CutSet, model_path: Path, lang: Lang, topology: Topology, sil_probs: tuple[float, float],
               output_beam: float, out_dir: Path, part: str, suffix: str, device: torch.device):
    """Aligns cuts, CHUNK_CUTS at a time; writes cuts_<part><suffix>.jsonl.gz (a cut at a
    time), the arrays, and the reports. Returns (cuts aligned, (cut id, reason) left out)."""
    ckpt = checkpoint.load(model_path)
    model = model_from_checkpoint(ckpt).to(device)
    compiler = TrainingGraphCompiler(lang, topology, *sil_probs)
    prior_scale = ckpt.get("train_config", {}).get("training", {}).get("prior_scale", 0.0)
    array_dir = out_dir / f"ali_{part}"
    array_dir.mkdir(parents=True, exist_ok=True)
    num_aligned, skipped, prons = 0, [], Counter()
    # the arrays are closed before the cuts that point at them are renamed into place
    with atomic.atomic_path(out_dir / f"cuts_{part}{suffix}.jsonl.gz") as tmp, \
            NumpyHdf5Writer(array_dir / f"mono_ali{suffix}.h5", mode="w") as writer, CutSet.open_writer(tmp) as out:
        for n, chunk in enumerate(in_chunks(cuts, CHUNK_CUTS)):
            what = f"{part}{suffix}" + (f", chunk {n + 1}" if n else "")
            utterances, left_out = load_utterances(CutSet.from_cuts(chunk), f"loading {what}")
            skipped += left_out
            graphs = [compiler.compile(u.words) for u in utterances]
            results = align_utterances(model, utterances, graphs, 20000, output_beam, device, f"aligning {what}",
                                       ckpt.get("log_priors"), prior_scale)
            by_id = {u.cut_id: r for u, r in zip(utterances, results)}
            for cut in chunk:
                result = by_id.get(cut.id)
                if result is None:
                    continue  # already in `skipped`
                if isinstance(result, str):
                    skipped.append((cut.id, result))
                    continue
                out.write(attach_alignment(cut, result, lang, writer))
                num_aligned += 1
                prons.update(word_prons(result.words, result.phones, lang))
    atomic.write_text(out_dir / f"unaligned_{part}{suffix}.txt",
                      "".join(f"{cut_id} {reason}\n" for cut_id, reason in skipped))
    atomic.write_text(out_dir / f"pron_counts_{part}{suffix}.txt",
                      "".join(f"{w} {c} {' '.join(p)}\n" for (w, p), c in sorted(prons.items())))
    return num_aligned, skipped
