"""Building HCLG from a lang dir, an LM dir (G.fst), the tree and the topology, with its stats and an input fingerprint (Kaldi's mkgraph.sh)."""

from __future__ import annotations

import json
import logging
import resource
import shutil
import time
from pathlib import Path

from steps.core import atomic
from steps.graph.fst_arrays import kaldifst_from_text
from steps.graph.hclg import GraphOptions, build_hclg
from steps.graph.k2_graph import FORMAT as K2_FORMAT
from steps.graph.k2_graph import load_k2_graph
from steps.hmm.topology import Topology
from steps.lang.lexicon import Lang
from steps.tree.decision_tree import Tree

log = logging.getLogger(__name__)


def input_files(lang_dir: Path, lm_dir: Path, tree: Path, topology: Path) -> list[Path]:
    tree_file = tree / "tree.txt" if tree.is_dir() else tree
    files = [lang_dir / n for n in ("phones.txt", "words.txt", "lexicon.txt", "lexicon_disambig.txt")]
    return [f for f in files if f.exists()] + [lm_dir / "G.fst.txt", tree_file, topology]


def load_tree(path: Path):

    return Tree.load(path)


def load_topology(path: Path) -> Topology:
    return Topology.from_dict(json.loads(path.read_text()))


def load_g(path: Path):

    return kaldifst_from_text(path.read_text())


def stats_text(stats: list[tuple[str, int, int, float]], total_seconds: float, size_bytes: int,
               peak_rss_mb: float) -> str:
    lines = ["# stage states arcs seconds"]
    lines += [f"{name} {states} {arcs} {seconds:.2f}" for name, states, arcs, seconds in stats]
    hclg = stats[-1]
    lines += [f"HCLG_states {hclg[1]}", f"HCLG_arcs {hclg[2]}", f"HCLG_bytes {size_bytes}",
              f"HCLG_MiB {size_bytes / 2**20:.1f}", f"build_seconds {total_seconds:.1f}",
              f"peak_rss_MiB {peak_rss_mb:.0f}"]
    return "\n".join(lines) + "\n"


def make_graph(lang_dir: Path, lm_dir: Path, tree_path: Path, topology_path: Path, out_dir: Path,
               options: GraphOptions, force: bool = False, tree=None) -> dict:
    """Builds and writes the graph dir; skipped when its .done records the same inputs and
    options. `tree`: a tree object to use instead of loading tree_path (tests, benchmark)."""
    options_dict = dict(vars(options))
    inputs = input_files(lang_dir, lm_dir, tree_path, topology_path)
    for path in inputs:
        if not path.exists():
            raise FileNotFoundError(f"missing input {path}")
    digest = atomic.inputs_fingerprint(inputs, **options_dict, k2_format=K2_FORMAT)  # a new conversion: decode again
    if atomic.up_to_date(out_dir, digest, force, [out_dir / "HCLG.fst", out_dir / "graph.json"],
                         what=f"{out_dir} graph"):
        return json.loads((out_dir / "graph.json").read_text())
    atomic.clear_done(out_dir)
    atomic.remove(out_dir / "HCLG.fst")  # nothing may decode with the old graph while this one is built
    out_dir.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    lang = Lang.load(lang_dir)
    tree = load_tree(tree_path) if tree is None else tree
    topology = load_topology(topology_path)
    g_fst = load_g(lm_dir / "G.fst.txt")
    build = build_hclg(lang, lang_dir, g_fst, topology, tree, options)
    del g_fst
    with atomic.atomic_path(out_dir / "HCLG.fst") as tmp:
        build.hclg.write(tmp, "const")  # read-only and compact, as Kaldi's mkgraph.sh leaves it
    seconds = time.perf_counter() - t0
    size = (out_dir / "HCLG.fst").stat().st_size
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    atomic.write_text(out_dir / "units.txt", build.inventory.unit_table(lang.phones))
    with atomic.atomic_path(out_dir / "words.txt") as tmp:
        shutil.copyfile(lang_dir / "words.txt", tmp)
    atomic.write_text(out_dir / "stats.txt", stats_text(build.stats, seconds, size, peak_mb))
    info = {
        "options": options_dict,
        "num_senones": int(tree.num_senones),
        "num_units": build.inventory.num_units,
        "num_tied_hmms": build.inventory.num_hmms,
        "states": build.hclg.num_states,
        "arcs": build.hclg.num_arcs,
        "bytes": size,
        "build_seconds": round(seconds, 2),
        "inputs": [str(p) for p in inputs],
    }
    atomic.write_text(out_dir / "graph.json", json.dumps(info, indent=2) + "\n")
    load_k2_graph(out_dir)
    atomic.mark_done(out_dir, fingerprint=digest)
    log.info("HCLG: %d states, %d arcs, %.1f MiB, built in %.1f s (peak RSS %.0f MiB) -> %s",
             build.hclg.num_states, build.hclg.num_arcs, size / 2**20, seconds, peak_mb, out_dir)
    return info
