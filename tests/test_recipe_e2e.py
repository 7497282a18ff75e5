"""The whole recipe, end to end: egs/synth/s5/run.sh --config conf/tiny.conf, stages 1-10,
run once per test session in a temporary copy (tests/conftest.py: tiny_recipe), then its
artifacts are checked: manifests, features, alignments against the true word boundaries,
the tree, the teachers against their bigram anchors, the soft labels, the WER of every
system on dev and test, and RESULTS.md.

Measured on 2 cores (conf/tiny.conf: 150 / 20 / 20 utterances; see the figures next to
each threshold): the thresholds leave a margin for other seeds of the thread pools and
other machines, not for a broken stage.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import yaml
from lhotse import CutSet, RecordingSet, SupervisionSet
from lhotse.qa import validate_recordings_and_supervisions

from steps.kd import soft_labels as sl
from steps.scoring.boundaries import score_cuts
from steps.scoring.wer import read_wer
from steps.tree.decision_tree import Tree

PARTS = ("train", "dev", "test")
SYSTEMS = ("baseline", "li", "aux_senone", "aux_phone", "aux_subword", "hier")
LEVELS = ("senone", "phone", "subword")

# Thresholds: measured figures (in the comments, from runs on 2 shared cores) with a margin.
MIN_WITHIN_50MS = 0.85   # share of word boundaries within 50 ms of the truth; measured 0.95-0.96
MAX_MEDIAN_MS = 20.0     # median boundary error; measured 9-10 ms
MIN_SENONES = 120        # tree leaves (budget num_leaves=200 in tiny.conf); measured 158
# WER ceilings per system, (dev, test) on 150 and 141 words: the highest of the measured
# runs plus 10 points; an untrained model scores 92-100%.
MAX_WER = {                        # measured in three runs (lattice and k2 decoders)
    "baseline": (56.0, 41.0),      # 36.7-46.0 / 26.2-31.2
    "li": (52.0, 45.0),            # 37.3-42.0 / 33.3-34.8
    "aux_senone": (41.5, 33.0),    # 26.7-28.7 / 22.0-22.7 at beta 1; 31.3 / 21.3 at 0.3
    "aux_phone": (53.5, 40.0),     # 31.3-39.3 / 22.7-23.4 at beta 1; 43.3 / 29.8 at 0.3
    "aux_subword": (55.0, 41.0),   # 34.0-44.7 / 24.1-31.2
    "hier": (50.0, 46.0),          # 28.0-40.0 / 22.7-36.2
}
# A distillation loss falls over training: last epoch's mean at most this share of the
# first's (measured: senone 0.46-0.50, phone 0.74-0.75, subword 0.81-0.83).
MAX_KD_RATIO = 0.9


def settings(recipe: Path) -> dict:
    """The shell variables conf/tiny.conf sets."""
    text = (recipe / "conf" / "tiny.conf").read_text()
    return {k: v.strip('"') for k, v in re.findall(r"^(\w+)=(\S+)", text, re.M)}


@pytest.fixture
def recipe(tiny_recipe, monkeypatch) -> Path:
    monkeypatch.chdir(tiny_recipe.dir)  # the manifests' paths are relative to it
    return tiny_recipe.dir


def test_every_stage_ran_in_order(tiny_recipe):
    """Stages 1-10 started in order; their durations go to stage_seconds.json (and the
    test output) as the recipe's timing."""
    starts = []
    for line in tiny_recipe.log.read_text(errors="replace").splitlines():
        m = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \((?:run|stages)\.sh:\d+\) Stage (\d+):", line)
        if m:
            starts.append((int(m.group(2)), datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")))
    assert [s for s, _ in starts] == list(range(1, 11))
    end = datetime.fromtimestamp((tiny_recipe.dir / "RESULTS.md").stat().st_mtime)
    seconds = {str(s): round(((starts[i + 1][1] if i + 1 < len(starts) else end) - t).total_seconds())
               for i, (s, t) in enumerate(starts)}
    seconds["total"] = round(tiny_recipe.seconds)
    (tiny_recipe.dir / "stage_seconds.json").write_text(json.dumps(seconds, indent=1) + "\n")
    print(f"\nrun.sh --config conf/tiny.conf: {tiny_recipe.seconds:.0f} s; per stage: {seconds}")


def test_manifests_and_features(recipe):
    config = yaml.safe_load((recipe / settings(recipe)["data_config"]).read_text())
    manifests = recipe / "data" / "manifests"
    for part in PARTS:
        recordings = RecordingSet.from_file(manifests / f"synth_recordings_{part}.jsonl.gz")
        supervisions = SupervisionSet.from_file(manifests / f"synth_supervisions_{part}.jsonl.gz")
        validate_recordings_and_supervisions(recordings, supervisions)
        skipped = (manifests / f"synth_skipped_{part}.txt").read_text().splitlines()
        assert len(recordings) + len(skipped) == config["text"][f"num_{part}"], part
        assert len(recordings) >= 0.95 * config["text"][f"num_{part}"], skipped
        speakers = {s.speaker for s in supervisions}
        assert len(speakers) == config["speakers"][f"num_{part}"]
        for s in supervisions:  # the truth for the alignment check
            assert [a.symbol for a in s.alignment["word"]] == s.text.split()
        cuts = CutSet.from_file(recipe / "data" / "fbank" / f"synth_cuts_{part}.jsonl.gz")
        assert sorted(c.id for c in cuts) == sorted(r.id for r in recordings)
        cut = next(iter(cuts))
        assert cut.load_features().shape == (cut.num_frames, 80)


def test_alignments_match_the_true_word_boundaries(recipe):
    for part in ("dev", "test"):
        stored = json.loads((recipe / "exp" / "mono_ali" / f"quality_{part}.json").read_text())
        quality, mismatched = score_cuts(CutSet.from_file(recipe / "exp" / "mono_ali" / f"cuts_{part}.jsonl.gz"))
        assert stored["within_50ms"] == pytest.approx(quality.within_50ms)
        assert quality.cuts >= 0.9 * len(CutSet.from_file(recipe / "data" / "fbank" / f"synth_cuts_{part}.jsonl.gz"))
        assert quality.within_50ms >= MIN_WITHIN_50MS, (part, quality)
        assert quality.median_ms <= MAX_MEDIAN_MS, (part, quality)


def test_tree_and_senone_alignments(recipe):
    tree = Tree.load(recipe / "exp" / "tree")
    budget = int(settings(recipe)["num_leaves"])
    assert MIN_SENONES <= tree.num_senones <= budget
    # the senone teacher's vocabulary and the senone alignments use the same ids
    tokens = (recipe / "exp" / "lm_senone" / "tokens.txt").read_text().splitlines()
    assert len(tokens) == tree.num_senones
    counts = np.array([int(line.split()[1]) for line in
                       (recipe / "exp" / "senone_ali" / "senone_counts.txt").read_text().splitlines()])
    assert len(counts) == tree.num_senones and (counts > 0).mean() > 0.9
    for cut in list(CutSet.from_file(recipe / "exp" / "senone_ali" / "cuts_dev.jsonl.gz"))[:5]:
        ali = cut.load_custom("senone_ali")
        assert len(ali) == cut.num_frames and 0 <= ali.min() and ali.max() < tree.num_senones


def test_every_teacher_beats_its_bigram_anchor(recipe):
    for level in LEVELS:
        report = dict(line.split(" ", 1) for line in (recipe / "exp" / f"lm_{level}" / "ppl").read_text().splitlines())
        teacher, bigram = float(report["teacher_ppl"]), float(report["bigram_ppl"])
        assert teacher < bigram, (level, teacher, bigram)


# The teachers' top choice is the reference token this often at least (tiny teachers,
# measured on the tiny training cuts: senone 63.9%, phone 30.8%, subword 25.5%), against
# chance 1 / vocabulary (0.62%, 2.5%, 0.33%).
MIN_TOP1 = {"senone": 0.5, "phone": 0.2, "subword": 0.15}


def test_soft_labels_load(recipe):
    kd = list(CutSet.from_file(recipe / "data" / "kd" / "synth_cuts_train.jsonl.gz"))
    aligned = CutSet.from_file(recipe / "exp" / "senone_ali" / "cuts_train.jsonl.gz")
    assert len(kd) == len(aligned)
    hits = {level: [] for level in LEVELS}
    vocab = {level: 0 for level in LEVELS}
    for i, cut in enumerate(kd):
        for level in LEVELS:
            labels = sl.load_soft_labels(cut, level)
            hits[level].append(labels.ids[:, 0] == labels.tokens)
            vocab[level] = max(vocab[level], int(labels.ids.max()) + 1, int(labels.tokens.max()) + 1)
            if i < 10:
                assert cut.custom["kd_info"]["top_k"] == 8
                assert len(labels) > 0
                labels.check(cut.num_frames)
                np.testing.assert_allclose(labels.probs.astype(np.float32).sum(1), 1.0, atol=5e-3)
    for level in LEVELS:
        top1 = float(np.mean(np.concatenate(hits[level])))
        print(f"{level}: teacher top-1 = reference on {100 * top1:.1f}% of tokens "
              f"(chance {100 / vocab[level]:.2f}%)")
        assert top1 >= MIN_TOP1[level] and top1 >= 10.0 / vocab[level], level


def test_every_system_decodes_dev_and_test(recipe):
    seeds = settings(recipe)["seeds"].split()
    for system in SYSTEMS:
        for seed in seeds:
            run = recipe / "exp" / f"am_{system}_s{seed}"
            assert (run / ".done").is_file() and (run / "final.pt").is_file()
            for part in ("dev", "test"):
                wer = read_wer(run / f"decode_{part}" / "wer")
                ceiling = MAX_WER[system][PARTS.index(part) - 1]
                assert wer.words > 0 and wer.wer < ceiling, (system, seed, part, wer)
            # the test set is decoded at the LM weight chosen on dev
            assert (run / "decode_test" / "lm_weight").read_text() == \
                (run / "decode_dev" / "best_lm_weight").read_text()


def test_every_model_decodes_at_each_lm_strength(recipe):
    """Stage 9's LM strengths (tiny.conf: the 1-gram besides the 3-gram): every model decodes
    dev with their own LM-weight sweep (run.sh's strength_lm_weights) and test at the weight
    chosen there, without rescoring; stage 10's perplexity table lists their LM by order."""
    conf = settings(recipe)
    orders = conf["strength_lm_orders"].split()
    sweep = re.search(r'^strength_lm_weights="([^"]*)"', (recipe / "run.sh").read_text(), re.M).group(1)
    weights = [float(w) for w in sweep.split()]
    assert orders == ["1"] and min(weights) < 7  # below the main sweep's: weak LMs want lower weights
    for order in orders:
        assert (recipe / "data" / f"lang_test_{order}gram" / f"lm_{order}gram.arpa").is_file()
        assert (recipe / "exp" / f"graph_{order}gram" / "HCLG.k2.pt").is_file()
    for system in SYSTEMS:
        for seed in conf["seeds"].split() + (conf["aa_seeds"].split() if system == "baseline" else []):
            run = recipe / "exp" / f"am_{system}_s{seed}"
            for order in orders:
                dev, test = (run / f"decode_{part}_{order}gram" for part in ("dev", "test"))
                assert read_wer(dev / "wer").words > 0 and read_wer(test / "wer").words > 0, (system, seed)
                assert float((dev / "best_lm_weight").read_text()) in weights, (system, seed)
                assert (test / "lm_weight").read_text() == (dev / "best_lm_weight").read_text()
                assert not (dev / "rescore").exists() and not (test / "rescore").exists()
    names = [line.split()[0] for line in (recipe / "exp" / "lm_perplexity.txt").read_text().splitlines()[2:]]
    assert names[:3] == ["lm_1gram.arpa", "lm_3gram.arpa", "lm_4gram.arpa"], names


def test_distillation_losses_fall_and_models_differ_from_the_baseline(recipe):

    from steps.core import checkpoint

    seed = settings(recipe)["seeds"].split()[0]
    baseline = checkpoint.load(recipe / "exp" / f"am_baseline_s{seed}" / "final.pt")["state_dict"]
    for system in SYSTEMS[1:]:
        run = recipe / "exp" / f"am_{system}_s{seed}"
        epochs = json.loads((run / "train_stats.json").read_text())["epochs"]
        kd_terms = [k for k in epochs[0]["train"] if k.startswith("kd_")]
        assert bool(kd_terms) == (system != "li"), system  # li's teacher enters the main CE
        for term in kd_terms:
            first, last = epochs[0]["train"][term], epochs[-1]["train"][term]
            assert last <= MAX_KD_RATIO * first, (system, term, first, last)
        model = checkpoint.load(run / "final.pt")["state_dict"]
        shared = [k for k in baseline if k in model and baseline[k].shape == model[k].shape
                  and baseline[k].is_floating_point()]
        assert shared, system
        largest = max(float((model[k] - baseline[k]).abs().max()) for k in shared)
        assert largest > 1e-3, (system, largest)  # not the baseline's weights


def test_results_table(recipe):
    text = (recipe / "RESULTS.md").read_text()
    summary = json.loads((recipe / "RESULTS.json").read_text())
    for system in SYSTEMS:
        assert re.search(rf"^\| {system} \| \d+\.\d\d ± \d+\.\d\d \| \d+\.\d\d ± ", text, re.M), system
        entry = summary["systems"][system]
        assert not entry["missing"] and entry["dev"]["mean"] is not None and entry["test"]["mean"] is not None
    assert "Missing decodes" not in text


def test_results_carry_the_aa_check_detectable_effects_and_holm(recipe):
    """The baseline's A/A seeds (tiny.conf's aa_seeds) against its seeds, each system's minimal
    detectable effect, and Holm over the test-set family, computed by the program."""
    summary = json.loads((recipe / "RESULTS.json").read_text())
    conf = settings(recipe)
    seeds, aa_seeds = [int(s) for s in conf["seeds"].split()], [int(s) for s in conf["aa_seeds"].split()]
    assert summary["aa_seeds"] == aa_seeds
    for part in ("dev", "test"):
        figures = summary["significance"]["first pass"][part]
        aa = figures["aa"]
        assert aa["a_seeds"] == seeds and aa["b_seeds"] == aa_seeds and aa["seed_noise"]
        assert 0.0 <= aa["p_value"] <= 1.0 and aa["mde"] > 0
        # the baseline's seeds are the only ones with a spread: df = its seeds - 1
        assert figures["seed_variance"]["df"] == len(seeds) + len(aa_seeds) - 1
        for system in SYSTEMS[1:]:
            row = figures["systems"][system]
            low, high = row["difference"][1:]
            assert low < row["difference"][0] < high and row["mde"] > 0, system
    holm = summary["holm"]
    claims = [p for p in summary["claims"]["pairs"] if p.get(holm["part"])]
    # With LM strengths (tiny.conf's 1-gram) each system against the baseline is tested in the
    # family by decoder LM: at each strength, the first pass and the rescored one, and its trend.
    strengths = [f"{n}-gram" for n in conf["strength_lm_orders"].split()]
    assert len(holm["tests"]) == (0 if strengths else len(SYSTEMS) - 1) + len(claims)
    if strengths:
        assert summary["by_strength"]["strengths"] == [*strengths, "first pass", "rescored"]
        family = summary["strength_holm"]["tests"]
        assert len(family) == (len(SYSTEMS) - 1) * (len(strengths) + 3)
        assert all(t["p_holm"] >= t["p_value"] for t in family)
    assert all(t["p_holm"] >= t["p_value"] for t in holm["tests"])
    ordered = sorted(holm["tests"], key=lambda t: t["p_value"])
    assert ordered[0]["p_holm"] == pytest.approx(min(1.0, len(ordered) * ordered[0]["p_value"]))
    text = (recipe / "RESULTS.md").read_text()
    assert f"| A/A: baseline seeds {' '.join(map(str, aa_seeds))} vs {' '.join(map(str, seeds))} |" in text
    assert "Holm's correction over the family" in text and "| 0.000 |" not in text
