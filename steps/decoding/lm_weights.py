"""The LM-weight sweep: weights named as Kaldi names them, the dev-chosen weight carried to test, hypothesis files and scoring per weight, search-error and lattice-beam-loss counts."""

from __future__ import annotations

import logging
from pathlib import Path

from steps.core import atomic
from steps.scoring.wer import score, write_scoring

log = logging.getLogger(__name__)


# A reference path better than the found one by more than this (log-score) is a search
# error; below it, float32 sums of equal paths may differ.
SEARCH_ERROR_MARGIN = 1e-2


def format_weight(weight: float) -> str:
    return f"{weight:g}"


def parse_weights(text: str) -> list[float]:
    weights = [float(x) for x in text.replace(",", " ").split()]
    if not weights or any(w <= 0 for w in weights):
        raise ValueError(f"--lm-weights must be positive numbers, got {text!r}")
    return sorted(set(weights))


def weight_from_dir(directory: str | Path) -> float:
    path = Path(directory) / "best_lm_weight"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: decode the dev set with an LM-weight sweep first")
    return float(path.read_text().split()[0])


def kaldi_text(texts: dict[str, list[str]]) -> str:
    """`utt-id WORD ...` lines; an empty transcript is the id alone."""
    return "".join(" ".join([utt, *words]) + "\n" for utt, words in texts.items())


def choose_lm_weight(refs: dict[str, list[str]], hyps: dict[float, dict[str, list[str]]]):
    """The weight with the fewest word errors against refs (ties: the smallest weight), and
    the steps.score result of every weight."""

    results = {w: score(refs, hyps[w]) for w in sorted(hyps)}
    best = min(results, key=lambda w: (results[w].counts.errors, w))
    return best, results


def write_hyps(out: Path, refs: dict[str, list[str]], hyps: dict[float, dict[str, list[str]]], choose: bool,
               what: str) -> tuple[float, dict]:
    """hyp_<w>.txt of a sweep, its scoring and best_lm_weight (choose), hyp.txt, lm_weight and
    the scoring of hyp.txt, in `out`; returns the weight of hyp.txt and a summary."""
    weights = sorted(hyps)
    summary: dict = {"weights": {}}
    if len(weights) > 1:
        for w in weights:
            atomic.write_text(out / f"hyp_{format_weight(w)}.txt", kaldi_text(hyps[w]))
    if choose:
        if not any(refs.values()):
            raise SystemExit("an LM-weight sweep needs reference texts in the cuts' supervisions")

        chosen, results = choose_lm_weight(refs, hyps)
        for w, result in results.items():
            write_scoring(out, result, f"_{format_weight(w)}")
            counts = result.counts
            summary["weights"][format_weight(w)] = {"wer": counts.wer, "errors": counts.errors,
                                                    "words": counts.words}
            log.info("%s LM weight %-5s %s", what, format_weight(w), counts.kaldi_lines().splitlines()[0])
        atomic.write_text(out / "best_lm_weight", format_weight(chosen) + "\n")
        log.info("%s: best LM weight %s", what, format_weight(chosen))
    else:
        chosen = weights[0]
    atomic.write_text(out / "lm_weight", format_weight(chosen) + "\n")
    atomic.write_text(out / "hyp.txt", kaldi_text(hyps[chosen]))
    if any(refs.values()):

        # wer, recogs, errs of hyp.txt: the figure of this set at the weight it was decoded with.
        result = score(refs, hyps[chosen])
        write_scoring(out, result)
        summary["wer"] = result.counts.wer
        log.info("%s at LM weight %s: %s", what, format_weight(chosen), result.counts.kaldi_lines().splitlines()[0])
    return chosen, summary


def _total(scores: list[float] | None, weight: float) -> float | None:
    return None if scores is None else scores[1] + weight * scores[0]


def _beaten(ref: float, found: float | None) -> bool:
    """The reference path outscores the found one (no path found: it does)."""
    return found is None or ref > found + SEARCH_ERROR_MARGIN


def _forced(records: list[dict]) -> bool:
    """Whether the decoder scored (or tried to score) the references."""
    return any("ref_score" in r or "reference" in r.get("failed", {}) for r in records)


def search_errors(records: list[dict], search_weight: float) -> dict | None:
    """Kaldi's search-error count, at the LM weight the search ran at (1 / acoustic scale):
    of the utterances whose reference has a path through the graph, those whose best found
    path scores worse than it (a decode with no final state counts as one). At another
    weight the lattice's best can lose to the reference only because the lattice beam left
    it out (lattice_beam_losses). None without forced scores (old decoders, no references)."""
    if not _forced(records):
        return None
    failures = {r["id"]: r["failed"]["reference"] for r in records if "reference" in r.get("failed", {})}
    scored = [r for r in records if r.get("ref_score") is not None]
    errors = [r["id"] for r in scored
              if _beaten(_total(r["ref_score"], search_weight), _total(r.get("search_score"), search_weight))]
    not_in_graph = sum(1 for r in records if "ref_score" in r and r["ref_score"] is None)
    return {"lm_weight": search_weight, "errors": len(errors), "scored": len(scored),
            "share": round(len(errors) / len(scored), 4) if scored else None,
            "reference_without_path": not_in_graph, "reference_failed": len(failures),
            "reference_failures": failures, "utterances": errors}


def lattice_beam_losses(records: list[dict], weight: float, search_weight: float) -> dict | None:
    """The utterances whose reference outscores the lattice's best path at this LM weight
    though the search's own best beat it (no search error): the reference fell outside the
    lattice, pruned at the search's weight. None where search_errors is."""
    if not _forced(records):
        return None
    scored = [r for r in records if r.get("ref_score") is not None]
    key = format_weight(weight)
    lost = [r["id"] for r in scored
            if not _beaten(_total(r["ref_score"], search_weight), _total(r.get("search_score"), search_weight))
            and _beaten(_total(r["ref_score"], weight), _total(r.get("scores", {}).get(key), weight))]
    return {"lm_weight": weight, "errors": len(lost), "scored": len(scored),
            "share": round(len(lost) / len(scored), 4) if scored else None, "utterances": lost}


def sweep_counts(info: dict) -> dict[float, tuple[int, int]]:
    """weight -> (word errors, reference words) of a sweep's decode_info.json section."""
    return {float(w): (int(v["errors"]), int(v["words"])) for w, v in (info.get("weights") or {}).items()}


def pooled_weight(sweeps: list[dict[float, tuple[int, int]]]) -> tuple[float, dict[float, float]]:
    """The weight with the fewest word errors summed over several models' sweeps of the same
    set (ties: the smallest weight), and the pooled WER (%) of every weight they all share:
    one LM weight per system, chosen on all its seeds' dev decodes, so that a seed's test
    figure does not carry that seed's own tuning noise."""
    if not sweeps or not all(sweeps):
        raise ValueError("every model needs an LM-weight sweep (decode dev with --lm-weights)")
    shared = sorted(set.intersection(*(set(s) for s in sweeps)))
    if not shared:
        raise ValueError("the sweeps share no LM weight")
    errors = {w: sum(s[w][0] for s in sweeps) for w in shared}
    words = {w: sum(s[w][1] for s in sweeps) for w in shared}
    best = min(shared, key=lambda w: (errors[w], w))
    return best, {w: round(100 * errors[w] / max(words[w], 1), 4) for w in shared}
