"""Train the alignment model on senone targets and realign once (Kaldi's train_deltas.sh
followed by align_si.sh, in one pass).

The converted alignments (steps.convert_ali) carry the monophone model's boundaries. Here
the monophone alignment model's encoder gets a senone output layer, is trained on the
converted senone alignments (frame cross-entropy), and every part is aligned again with
it: the numerator graph keeps the pronunciation each word was aligned with and optional
silence between words, and its labels are the senones of each HMM state in context (the
tree, with steps.hmm.context's rule). A cut the new model cannot align keeps its converted
alignment and is listed. When the cuts carry the true word boundaries (synthetic corpus),
the boundary quality before and after is measured and written.

Reads:  --cuts-dir (exp/senone_conv: cuts_<part>.jsonl.gz with senone_ali, ali_phone, ali_word,
        senone_counts*.txt, pron_counts*.txt, and the tree.txt and topology.json that
        steps.convert_ali copies there), --init-model (exp/mono/final.pt), --lang-dir,
        --config (conf/realign.yaml); --tree and --topology override the copies
Writes: <model-dir>/final.pt (an align_model checkpoint over senones), <model-dir>/log/,
        <model-dir>/run_env.json (torch threads, CPU, library versions: steps.core.run_env)
        <out-dir>/cuts_<part>.jsonl.gz  the cuts with the new senone_ali and mono_ali, ali_phone,
                                        ali_word
        <out-dir>/ali_<part>/{senone_ali,mono_ali}.h5
        <out-dir>/senone_counts[_<part>].txt, pron_counts[_<part>].txt (as steps.convert_ali)
        <out-dir>/kept_converted_<part>.txt  `cut_id reason` for cuts not realigned
        <out-dir>/quality.json           word-boundary quality before and after, per part
        <out-dir>/tree.txt, topology.json  copies (the alignments' context)

Example:
  python -m steps.realign_senones --config conf/realign.yaml --cuts-dir exp/senone_conv \\
      --parts train dev test --init-model exp/mono/final.pt --tree exp/tree \\
      --lang-dir data/lang --model-dir exp/aligner \\
      --out-dir exp/senone_ali
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from lhotse import CutSet, NumpyHdf5Writer
from lhotse.utils import fastcopy

from steps.core import atomic, checkpoint, run_env
from steps.core.config import load_config, require, to_dict
from steps.core.log import setup_logging
from steps.data.ali_times import FRAME_SHIFT
from steps.data.utterances import load_utterances
from steps.hmm.align_model import checkpoint_dict, model_from_checkpoint
from steps.hmm.context import phone_contexts
from steps.hmm.cut_alignment import attach_alignment
from steps.hmm.forced_align import Alignment
from steps.hmm.mono_training import align_utterances, epoch_loop, log_priors_from, train_viterbi_epoch
from steps.hmm.topology import Topology
from steps.hmm.training_graph import TrainingGraphCompiler, UtteranceGraph
from steps.hmm.units import item_word_prons
from steps.lang.lexicon import Lang
from steps.scoring.boundaries import score_cuts
from steps.tree.decision_tree import Tree

log = logging.getLogger(__name__)


@dataclass
class RealignConfig:
    epochs: int = 2
    learning_rate: float = 1e-3
    lr_decay_per_epoch: float = 0.8
    max_frames_per_batch: int = 20000
    grad_clip: float = 5.0
    output_beam: float = 20.0
    prior_scale: float = 1.0  # alignment scores: log p(senone | x) - prior_scale * log p(senone)
    sil_prob: float = 0.5  # optional silence between words
    edge_sil_prob: float = 0.5  # and at the utterance ends
    seed: int = 1

    def __post_init__(self):
        require(self.epochs >= 1, "epochs", "must be at least 1")
        require(self.learning_rate > 0, "learning_rate", "must be positive")
        require(0 < self.lr_decay_per_epoch <= 1, "lr_decay_per_epoch", "must be in (0, 1]")
        require(self.max_frames_per_batch > 0, "max_frames_per_batch", "must be positive")
        require(0.0 <= self.prior_scale <= 1.0, "prior_scale", "must be in [0, 1]")
        require(0.0 <= self.sil_prob < 1.0, "sil_prob", "must be in [0, 1)")
        require(0.0 <= self.edge_sil_prob < 1.0, "edge_sil_prob", "must be in [0, 1)")


def senone_graph(graph: UtteranceGraph, topology: Topology, tree: Tree, silence: int) -> UtteranceGraph:
    """The graph with senone labels (+1); each arc keeps its monophone state as `mono_state`.

    The graph must have one pronunciation per word, so that every phone instance has one
    context whatever silences the path takes (silence is transparent to context)."""
    contexts = phone_contexts(graph.instance_phone.tolist(), silence)
    fsa = graph.fsa
    labels = fsa.labels.clone()
    instances = fsa.phone_instance.numpy()
    for arc in np.flatnonzero(labels.numpy() > 0):
        instance = int(instances[arc])
        phone = int(graph.instance_phone[instance])
        state_index = int(labels[arc]) - 1 - topology.state_id(phone, 0)
        left, right = contexts[instance]
        labels[arc] = tree.senone(left, phone, right, state_index) + 1
    relabelled = fsa.clone()
    relabelled.labels = labels
    relabelled.mono_state = fsa.labels.clone()
    return UtteranceGraph(relabelled, graph.instance_phone, graph.instance_word, graph.words, graph.min_frames)


def aligned_words(cut, lang: Lang, num_frames: int) -> tuple[list[str], list[tuple[str, ...]]] | None:
    """The words and the pronunciations the earlier alignment chose, or None."""
    alignment = (cut.supervisions[0].alignment or {}) if cut.supervisions else {}
    pairs = item_word_prons(alignment, lang, num_frames, cut.start)
    if not pairs:
        return None
    return [w for w, _ in pairs], [p for _, p in pairs]


def train_model(utterances, targets, init: dict, num_senones: int, config: RealignConfig,
                device: torch.device):
    model = model_from_checkpoint(init)
    model.replace_output(num_senones)
    model.to(device)
    loop = epoch_loop(model, config)
    rng = np.random.default_rng(config.seed)
    for epoch in range(config.epochs):
        stats = train_viterbi_epoch(loop, model, utterances, targets, config, rng, device)
        log.info("senone epoch %d: loss/frame %.4f, frame accuracy %.3f", epoch,
                 stats["loss_per_frame"], stats["frame_accuracy"])
    return model.cpu().eval()


def realign_utterances(cuts: CutSet, model, log_priors, config: RealignConfig, lang: Lang, topology: Topology,
                       tree: Tree, part: str, device: torch.device) -> tuple[dict[str, Alignment], dict[str, str]]:
    """The new alignment of each cut that has one, and why the others keep theirs."""
    utterances, load_failed = load_utterances(cuts, f"loading {part}")
    compiler = TrainingGraphCompiler(lang, topology, config.sil_prob, config.edge_sil_prob)
    silence = lang.phone_id[lang.optional_silence]
    by_id = {cut.id: cut for cut in cuts}
    todo, graphs, kept = [], [], dict(load_failed)
    for u in utterances:
        chosen = aligned_words(by_id[u.cut_id], lang, u.num_frames)
        if chosen is None:
            kept[u.cut_id] = "no aligned words to realign"
            continue
        words, prons = chosen
        graphs.append(senone_graph(compiler.compile(words, prons), topology, tree, silence))
        todo.append(u)
    results = align_utterances(model.to(device), todo, graphs, config.max_frames_per_batch,
                               config.output_beam, device, f"realigning {part}", log_priors,
                               config.prior_scale)
    realigned: dict[str, Alignment] = {}
    for u, result in zip(todo, results):
        if isinstance(result, str):
            kept[u.cut_id] = result
        else:
            realigned[u.cut_id] = result
    return realigned, kept


def realign_part(cuts: CutSet, model, log_priors, config: RealignConfig, lang: Lang, topology: Topology,
                 tree: Tree, out_dir: Path, part: str, device: torch.device) -> dict:
    realigned, kept = realign_utterances(cuts, model, log_priors, config, lang, topology, tree, part, device)
    by_id = {cut.id: cut for cut in cuts}
    array_dir = out_dir / f"ali_{part}"
    shutil.rmtree(array_dir, ignore_errors=True)
    array_dir.mkdir(parents=True)
    out_cuts, counts, prons = [], np.zeros(tree.num_senones, dtype=np.int64), Counter()
    with NumpyHdf5Writer(array_dir / "senone_ali.h5", mode="w") as senone_writer, \
            NumpyHdf5Writer(array_dir / "mono_ali.h5", mode="w") as mono_writer:
        for cut in cuts:
            result = realigned.get(cut.id)
            if result is None:
                out_cuts.append(cut)  # the converted alignment stays (listed in kept_converted)
                senones = np.asarray(cut.load_custom("senone_ali")).reshape(-1)
            else:
                mono = Alignment(result.mono_states, result.phones, result.words, result.score)
                cut = attach_alignment(cut, mono, lang, mono_writer, "mono_ali")
                senones = result.states
                array = senone_writer.store_array(cut.id, senones, frame_shift=FRAME_SHIFT, temporal_dim=0,
                                                  start=cut.start)
                cut = fastcopy(cut, custom=dict(cut.custom, senone_ali=array))
                out_cuts.append(cut)
            counts += np.bincount(senones, minlength=tree.num_senones)
            alignment = cut.supervisions[0].alignment or {}
            prons.update(item_word_prons(alignment, lang, len(senones), cut.start))
    with atomic.atomic_path(out_dir / f"cuts_{part}.jsonl.gz") as tmp:
        CutSet.from_cuts(out_cuts).to_file(tmp)
    atomic.write_text(out_dir / f"kept_converted_{part}.txt",
                      "".join(f"{cut_id} {reason}\n" for cut_id, reason in sorted(kept.items())))
    atomic.write_text(out_dir / f"senone_counts_{part}.txt",
                      "".join(f"{i} {c}\n" for i, c in enumerate(counts.tolist())))
    atomic.write_text(out_dir / f"pron_counts_{part}.txt",
                      "".join(f"{w} {c} {' '.join(p)}\n" for (w, p), c in sorted(prons.items())))
    changed = sum(
        int(np.sum(np.asarray(by_id[cut_id].load_custom("senone_ali")).reshape(-1) != r.states))
        for cut_id, r in realigned.items())
    frames = sum(len(r.states) for r in realigned.values())
    return {"cuts": len(out_cuts), "realigned": len(realigned), "kept_converted": len(kept),
            "frames_changed": changed / frames if frames else 0.0}


def boundary_quality(cuts: CutSet) -> dict | None:
    try:
        quality, _ = score_cuts(cuts)
    except ValueError:  # no true boundaries (a real corpus)
        return None
    return asdict(quality)


def senone_model(train_cuts: CutSet, train_part: str, args, config: RealignConfig, tree: Tree,
                 device: torch.device):
    """The senone alignment model trained on the converted alignments (model-dir/final.pt),
    and the log-priors of those alignments."""
    utterances, skipped = load_utterances(train_cuts, f"loading {train_part}")
    by_id = {cut.id: cut for cut in train_cuts}
    targets = [np.asarray(by_id[u.cut_id].load_custom("senone_ali")).reshape(-1).astype(np.int64)
               for u in utterances]
    if skipped:
        log.warning("%d training cuts left out of senone training: %s", len(skipped),
                    "; ".join(f"{c}: {r}" for c, r in skipped[:5]))
    init = checkpoint.load(args.init_model)
    log.info("Training the senone alignment model (%d senones) on %d utterances, %d frames, %d epochs",
             tree.num_senones, len(utterances), sum(len(t) for t in targets), config.epochs)
    model = train_model(utterances, targets, init, tree.num_senones, config, device)
    log_priors = log_priors_from(targets, tree.num_senones)
    args.model_dir.mkdir(parents=True, exist_ok=True)
    checkpoint.save(checkpoint_dict(model, utterances[0].feats.shape[1], log_priors,
                                    {"train_config": {"training": {"prior_scale": config.prior_scale}},
                                     "realign_config": to_dict(config)}),
                    args.model_dir / "final.pt")
    return model, log_priors


def realign_parts(train_cuts: CutSet, model, log_priors, args, config: RealignConfig, lang: Lang,
                  topology: Topology, tree: Tree, device: torch.device) -> tuple[dict, dict]:
    """Every part realigned with the senone model; each part's summary and its word
    boundaries' quality before and after (where the corpus has true boundaries)."""
    quality, summaries = {}, {}
    for part in args.parts:
        cuts = train_cuts if part == args.parts[0] else CutSet.from_file(args.cuts_dir / f"cuts_{part}.jsonl.gz")
        summaries[part] = realign_part(cuts, model, log_priors, config, lang, topology, tree, args.out_dir,
                                       part, device)
        after = CutSet.from_file(args.out_dir / f"cuts_{part}.jsonl.gz")
        quality[part] = {"before": boundary_quality(cuts), "after": boundary_quality(after)}
        q = quality[part]
        if q["before"] is not None:
            log.info("%s word boundaries within 20/50 ms: %.1f%%/%.1f%% converted -> %.1f%%/%.1f%% realigned",
                     part, 100 * q["before"]["within_20ms"], 100 * q["before"]["within_50ms"],
                     100 * q["after"]["within_20ms"], 100 * q["after"]["within_50ms"])
        log.info("%s: %d cuts, %d realigned, %d kept converted (see %s), %.1f%% of frames changed senone",
                 part, summaries[part]["cuts"], summaries[part]["realigned"], summaries[part]["kept_converted"],
                 args.out_dir / f"kept_converted_{part}.txt", 100 * summaries[part]["frames_changed"])
    return summaries, quality


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--cuts-dir", type=Path, required=True, help="steps.convert_ali's output (exp/senone_conv)")
    parser.add_argument("--parts", nargs="+", default=["train", "dev", "test"],
                        help="the first is the training part")
    parser.add_argument("--init-model", required=True, help="the monophone alignment model (exp/mono/final.pt)")
    parser.add_argument("--tree", default=None, help="default: <cuts-dir>/tree.txt")
    parser.add_argument("--lang-dir", required=True)
    parser.add_argument("--topology", default=None, help="default: topology.json next to the tree")
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num-threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--force", action="store_true", help="redo even if the outputs are complete")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    if args.tree is None:
        args.tree = str(args.cuts_dir / "tree.txt")
    tree_file = Path(args.tree) / "tree.txt" if Path(args.tree).is_dir() else Path(args.tree)
    if args.topology is None:
        args.topology = str(tree_file.parent / "topology.json")
    setup_logging(log_file=args.model_dir / "log" / "realign_senones.log")
    config = load_config(args.config, RealignConfig)
    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)

    part_cuts = [args.cuts_dir / f"cuts_{p}.jsonl.gz" for p in args.parts]
    missing = [str(p) for p in [*part_cuts, Path(args.init_model), Path(args.tree)] if not p.exists()]
    if missing:
        raise SystemExit(f"missing inputs: {', '.join(missing)}")
    fingerprint = atomic.inputs_fingerprint([*part_cuts, args.init_model, args.tree, args.lang_dir, args.topology],
                                            config=to_dict(config), parts=args.parts)
    carried = [args.out_dir / "tree.txt", args.out_dir / "topology.json"]
    outputs = [args.out_dir / f"cuts_{p}.jsonl.gz" for p in args.parts] + [args.model_dir / "final.pt", *carried]
    if atomic.up_to_date(args.out_dir, fingerprint, args.force, outputs, what=f"{args.out_dir} realignment"):
        return
    # From clean: old cuts would point at the arrays about to be rewritten.
    atomic.clear_done(args.out_dir)
    atomic.remove(*[p for p in outputs if p not in carried])  # a copy may be an input (out-dir = cuts-dir)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    run_env.write(args.model_dir, args.device)  # threads, CPU and versions: what the floats depend on
    device = torch.device(args.device)
    torch.manual_seed(config.seed)
    lang = Lang.load(args.lang_dir)
    topology = Topology.from_dict(json.loads(Path(args.topology).read_text()))
    tree = Tree.load(args.tree)
    start = time.time()

    train_part = args.parts[0]
    train_cuts = CutSet.from_file(args.cuts_dir / f"cuts_{train_part}.jsonl.gz")
    model, log_priors = senone_model(train_cuts, train_part, args, config, tree, device)
    summaries, quality = realign_parts(train_cuts, model, log_priors, args, config, lang, topology, tree, device)
    for name in ("senone_counts", "pron_counts"):
        atomic.write_text(args.out_dir / f"{name}.txt", (args.out_dir / f"{name}_{train_part}.txt").read_text())
    atomic.write_text(args.out_dir / "quality.json", json.dumps(quality, indent=1) + "\n")
    atomic.copy_file(tree_file, carried[0])
    atomic.copy_file(args.topology, carried[1])
    atomic.mark_done(args.out_dir, {"parts": summaries, "seconds": round(time.time() - start, 1)}, fingerprint)
    log.info("Realigned in %.1f s; wrote %s", time.time() - start, args.out_dir)


if __name__ == "__main__":
    main()
