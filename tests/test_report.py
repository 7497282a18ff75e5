"""steps.report: the ablation table from decode directories."""

from __future__ import annotations

import json
import math

import pytest

from steps import report
from steps.scoring.wer import WerCounts


def _write_wer(path, errors: int, words: int = 200) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "wer").write_text(WerCounts(errors, words, 0, 0, errors).kaldi_lines())


def test_mean_std_and_relative_change(tmp_path):
    exp = tmp_path / "exp"
    # baseline: 10% and 12% on dev, 11% and 13% on test; hier: 8% and 10%, 9% and 9%
    for seed, (dev, test) in {1: (20, 22), 2: (24, 26)}.items():
        _write_wer(exp / f"am_baseline_s{seed}" / "decode_dev", dev)
        _write_wer(exp / f"am_baseline_s{seed}" / "decode_test", test)
    for seed, (dev, test) in {1: (16, 18), 2: (20, 18)}.items():
        _write_wer(exp / f"am_hier_s{seed}" / "decode_dev", dev)
        _write_wer(exp / f"am_hier_s{seed}" / "decode_test", test)
    (exp / "am_hier_s1" / "decode_dev" / "best_lm_weight").write_text("12\n")
    conf = tmp_path / "tiny.conf"
    conf.write_text("seeds=\"1 2\"\n")
    out = tmp_path / "RESULTS.md"
    assert report.main(["--exp-dir", str(exp), "--systems", "baseline", "hier", "--seeds", "1", "2",
                        "--config-files", str(conf), "--out", str(out)]) == 0

    figures = json.loads(out.with_suffix(".json").read_text())["systems"]
    assert figures["baseline"]["dev"]["mean"] == pytest.approx(11.0)
    assert figures["baseline"]["dev"]["std"] == pytest.approx(2 ** 0.5)  # sample std of 10, 12
    assert figures["hier"]["test"]["mean"] == pytest.approx(9.0)
    assert figures["hier"]["test"]["std"] == pytest.approx(0.0)
    table = out.read_text()
    assert "| baseline | 11.00 ± 1.41 | 12.00 ± 1.41 | +0.0% | +0.0% | n/a |" in table
    # hier test: (9 - 12) / 12 = -25%; dev: (9 - 11) / 11 = -18.2%
    assert "| hier | 9.00 ± 1.41 | 9.00 ± 0.00 | -18.2% | -25.0% | 12 |" in table
    assert 'seeds="1 2"' in table and "Missing decodes" not in table


def test_missing_decodes_are_listed_not_dropped(tmp_path):
    exp = tmp_path / "exp"
    _write_wer(exp / "am_baseline_s1" / "decode_dev", 20)
    out = tmp_path / "RESULTS.md"
    report.main(["--exp-dir", str(exp), "--systems", "baseline", "--seeds", "1", "--out", str(out)])
    table = out.read_text()
    assert "| baseline | 10.00 ± 0.00 | n/a |" in table
    assert "Missing decodes (1)" in table and "am_baseline_s1/decode_test/wer" in table


def test_search_errors_and_rescored_wer_are_carried_into_the_table(tmp_path):
    exp = tmp_path / "exp"
    for seed, (no_final, errors) in {1: (1, 3), 2: (0, 5)}.items():
        for part in ("dev", "test"):
            run = exp / f"am_baseline_s{seed}" / f"decode_{part}"
            _write_wer(run, 20)
            info = {"no_final_state": no_final if part == "dev" else 2, "search_errors": None,
                    "rescore": {"failed": 1 if part == "test" else 0}}
            if part == "dev":
                info["search_errors"] = {"errors": errors, "scored": 100, "share": errors / 100}
            (run / "decode_info.json").write_text(json.dumps(info))
            _write_wer(run / "rescore", 18 if seed == 1 else 16)
    out = tmp_path / "RESULTS.md"
    report.main(["--exp-dir", str(exp), "--systems", "baseline", "--seeds", "1", "2", "--out", str(out)])
    # 1 + 0 dev and 2 + 2 test decodes without a final state; 8 of 200 dev search errors;
    # rescored WER 9% and 8%
    # one test cut of each seed kept its first pass: rescoring failed for it
    assert "| baseline | 1 / 4 | 8 / 200 (4.0%) | 8.50 ± 0.71 | 8.50 ± 0.71 (2 kept) |" in out.read_text()
    figures = json.loads(out.with_suffix(".json").read_text())["systems"]["baseline"]
    assert figures["dev"]["search_errors"] == [[3, 100], [5, 100]] and figures["test"]["no_final_state"] == [2, 2]


def _write_decode(path, utterances: int, wrong_words, sub: str = "") -> None:
    """`utterances` utterances of 10 words, the first `wrong_words` of each substituted
    (one count for all, or one per utterance)."""
    (path / sub).mkdir(parents=True, exist_ok=True)
    words = [f"W{i}" for i in range(10)]
    wrong = [wrong_words] * utterances if isinstance(wrong_words, int) else list(wrong_words)
    (path / "text").write_text("".join(f"u{i} {' '.join(words)}\n" for i in range(utterances)))
    (path / sub / "hyp.txt").write_text("".join(f"u{i} {' '.join(['X'] * w + words[w:])}\n"
                                                for i, w in enumerate(wrong)))


def _seed_errors(wrong: int, seed: int, utterances: int = 50) -> list[int]:
    """`wrong` of 10 words in every utterance; even seeds one more in the first 10: +2% WER."""
    return [wrong + (seed % 2 == 0 and i < 10) for i in range(utterances)]


def test_intervals_and_tests_count_seeds_and_utterances_with_an_aa_row_and_holm(tmp_path):
    exp = tmp_path / "exp"
    # per seed: baseline and li 20% / 22%, hier 10% / 12%; the baseline's A/A seeds 3 and 4: 20% / 22%
    for system, wrong, seeds in (("baseline", 2, (1, 2, 3, 4)), ("hier", 1, (1, 2)), ("li", 2, (1, 2))):
        for seed in seeds:
            run = exp / f"am_{system}_s{seed}" / "decode_test"
            _write_decode(run, 50, _seed_errors(wrong, seed))
            _write_wer(run, 10 * wrong, 500)
            _write_decode(run, 50, _seed_errors(max(0, wrong - 1), seed), "rescore")
    out = tmp_path / "RESULTS.md"
    report.main(["--exp-dir", str(exp), "--systems", "baseline", "hier", "li", "--seeds", "1", "2",
                 "--aa-seeds", "3", "4", "--out", str(out)])
    figures = json.loads(out.with_suffix(".json").read_text())
    test = figures["significance"]["first pass"]["test"]
    # per-seed WERs (points): baseline 20 22 20 22 (its A/A seeds pooled in), hier 10 12, li 20 22:
    # squares about the means 4 + 2 + 2 over df 3 + 1 + 1
    assert test["seed_variance"]["df"] == 5
    assert test["seed_variance"]["std"] == pytest.approx((8 / 5) ** 0.5)
    hier, li = test["systems"]["hier"], test["systems"]["li"]
    assert hier["difference"][0] == pytest.approx(-10.0) and hier["difference"][2] < 0 and hier["p_value"] < 0.01
    assert li["difference"][0] == 0.0 and li["difference"][1] == pytest.approx(-li["difference"][2])
    assert li["p_value"] == pytest.approx(1.0)
    assert li["seeds"] == [2, 2] and li["paired"] == 50 and li["unpaired"] == 0
    aa = test["aa"]
    assert aa["a_seeds"] == [1, 2] and aa["b_seeds"] == [3, 4] and aa["difference"][0] == pytest.approx(0.0)
    table = out.read_text()
    assert "| A/A: baseline seeds 3 4 vs 1 2 | - | +0.00 [" in table
    holm = figures["holm"]
    assert holm["pass"] == "rescored" and holm["part"] == "test"
    assert [t["test"] for t in holm["tests"]] == ["hier vs baseline", "li vs baseline"]
    raw = [t["p_value"] for t in holm["tests"]]
    assert [t["p_holm"] for t in holm["tests"]] == pytest.approx([min(1, 2 * min(raw)), max(raw)])
    assert "Holm's correction over the family: the 2 tests on test, rescored" in table
    assert "0.000 " not in table and "| 0.000 |" not in table


def test_training_table_from_train_stats(tmp_path):
    exp = tmp_path / "exp"
    runs = {("baseline", 1): (3, 3, {"acc_main": 0.50, "main_ce": 1.8}),
            ("baseline", 2): (3, 3, {"acc_main": 0.54, "main_ce": 1.7}),
            ("aux_phone", 1): (4, 6, {"acc_main": 0.60, "acc_phone": 0.80, "kd_phone": 1.20}),
            ("aux_phone", 2): (5, 5, {"acc_main": 0.62, "acc_phone": 0.70, "kd_phone": 1.00})}
    for (system, seed), (chosen, run, dev) in runs.items():
        for part in ("dev", "test"):
            _write_wer(exp / f"am_{system}_s{seed}" / f"decode_{part}", 20)
        (exp / f"am_{system}_s{seed}" / "train_stats.json").write_text(json.dumps(
            {"epochs": [{}] * run, "chosen_epoch": chosen, "epochs_run": run, "final_dev": dev}))
    out = tmp_path / "RESULTS.md"
    report.main(["--exp-dir", str(exp), "--systems", "baseline", "aux_phone", "--seeds", "1", "2",
                 "--out", str(out)])
    table = out.read_text()
    assert "| system | epochs chosen / run | dev frame acc | phone KL / acc |" in table
    assert "| baseline | 3/3 3/3 | 52.0% | n/a / n/a |" in table
    assert "| aux_phone | 4/6 5/5 | 61.0% | 1.100 / 75.0% |" in table
    figures = json.loads(out.with_suffix(".json").read_text())["systems"]["aux_phone"]["training"]
    assert figures["phone"] == pytest.approx({"kd": 1.1, "acc": 0.75})
    assert figures["chosen_epochs"] == [4, 5] and figures["epochs_run"] == [6, 5]
    # without any distillation head, no level columns
    report.main(["--exp-dir", str(exp), "--systems", "baseline", "--seeds", "1", "2", "--out", str(out)])
    assert "| system | epochs chosen / run | dev frame acc |\n|---|---|---|\n| baseline | 3/3 3/3 | 52.0% |\n" \
        in out.read_text()


def test_lm_perplexity_table_is_copied_in(tmp_path):
    exp = tmp_path / "exp"
    for part in ("dev", "test"):
        _write_wer(exp / "am_baseline_s1" / f"decode_{part}", 20)
    table = tmp_path / "lm_perplexity.txt"
    table.write_text("model  per-word ppl\nlm_3gram.arpa  12.07  5.063 (4.454 to 5.780, p < 0.001)\n")
    out = tmp_path / "RESULTS.md"
    args = ["--exp-dir", str(exp), "--systems", "baseline", "--seeds", "1", "--out", str(out)]
    assert report.main(args + ["--lm-perplexity", str(table)]) == 0
    assert "lm_3gram.arpa  12.07  5.063 (4.454 to 5.780, p < 0.001)\n```" in out.read_text()
    with pytest.raises(SystemExit, match="no such file"):
        report.main(args + ["--lm-perplexity", str(tmp_path / "missing.txt")])


def test_the_papers_claims_are_tested_pair_by_pair(tmp_path):
    exp = tmp_path / "exp"
    # li 3 of 10 words wrong, aux_phone 1, its hard-label control 2; 40 utterances x 2 seeds,
    # the second seed 2.5 points worse. aux_senone has no control and hier is absent: only the
    # pairs with both systems appear.
    wrong = {"baseline": 3, "li": 3, "aux_phone": 1, "aux_phone_hard": 2, "aux_senone": 3}
    for system, w in wrong.items():
        for seed in (1, 2):
            run = exp / f"am_{system}_s{seed}" / "decode_test"
            _write_decode(run, 40, _seed_errors(w, seed, 40))
            _write_wer(run, 10 * w, 400)
            if system == "aux_phone":  # rescored alone: the claims stay on the pass every system has
                _write_decode(run, 40, 0, "rescore")
    out = tmp_path / "RESULTS.md"
    report.main(["--exp-dir", str(exp), "--systems", *wrong, "--seeds", "1", "2", "--out", str(out)])
    table = out.read_text()
    assert "The paper's claims, first pass" in table
    claims = json.loads(out.with_suffix(".json").read_text())["claims"]
    assert claims["pass"] == "first pass" and [p["b"] for p in claims["pairs"]] == ["li", "li", "aux_phone_hard"]
    by_pair = {(p["a"], p["b"]): p["test"] for p in claims["pairs"]}
    assert by_pair[("aux_phone", "li")]["difference"][0] == pytest.approx(-20.0)
    assert by_pair[("aux_phone", "li")]["p_value"] < 0.01 and by_pair[("aux_phone", "li")]["paired"] == 40
    assert by_pair[("aux_senone", "li")]["difference"][0] == 0.0
    assert by_pair[("aux_senone", "li")]["p_value"] == pytest.approx(1.0)
    soft = by_pair[("aux_phone", "aux_phone_hard")]
    assert soft["difference"][0] == pytest.approx(-10.0) and soft["seeds"] == [2, 2]
    # the MDE is relative to B, aux_phone_hard's 21.25% (20% and 22.5%)
    assert soft["mde_relative"] == pytest.approx(soft["mde"] / 21.25)
    assert "| AUX beats LI | aux_senone | li | +0.00 [" in table and "| 1.000 |" in table
    assert "aux_senone_hard" not in table and "HIER" not in table


def test_the_table_by_decoder_lm_with_system_weights_trend_and_its_family(tmp_path):
    exp = tmp_path / "exp"
    # baseline 40% / 20% / 10% (1-gram, 2-gram, 3-gram first pass), aux 30% / 18% / 10%: a
    # gain of -25%, -10%, 0% relative; 3 seeds, odd ones +2 points on the first 10 utterances
    wrong = {"baseline": {"_1gram": 4, "_2gram": 2, "": 1}, "aux": {"_1gram": 3, "_2gram": 2, "": 1}}
    for system, by_suffix in wrong.items():
        for seed in (1, 2, 3):
            for suffix, w in by_suffix.items():
                errors = _seed_errors(w, seed, 50)
                if system == "aux" and suffix == "_2gram":  # 18%: one word less in 10 of 50
                    errors = [e - (i >= 40) for i, e in enumerate(errors)]
                _write_decode(exp / f"am_{system}_s{seed}" / f"decode_test{suffix}", 50, errors)
                dev = exp / f"am_{system}_s{seed}" / f"decode_dev{suffix}"
                _write_decode(dev, 50, 0)  # dev: the seed's own choice has no error, weight 11 has 2 per cut
                (dev / "hyp_11.txt").write_text("".join(f"u{i} X X W2 W3 W4 W5 W6 W7 W8 W9\n" for i in range(50)))
                (dev / "best_lm_weight").write_text("9\n")
            _write_wer(exp / f"am_{system}_s{seed}" / "decode_test", 10, 500)
            _write_wer(exp / f"am_{system}_s{seed}" / "decode_dev", 0, 500)
        for suffix in ("_1gram", "_2gram", ""):
            (exp / "lm_weights" / system / f"decode_dev{suffix}").mkdir(parents=True)
            (exp / "lm_weights" / system / f"decode_dev{suffix}" / "best_lm_weight").write_text("11\n")
    out = tmp_path / "RESULTS.md"
    report.main(["--exp-dir", str(exp), "--systems", "baseline", "aux", "--seeds", "1", "2", "3",
                 "--strength-orders", "1", "2", "--lm-order", "3", "--out", str(out)])
    figures = json.loads(out.with_suffix(".json").read_text())
    # dev read at the system's weight 11 (20%), not at each seed's own 9 (0%)
    assert figures["systems"]["baseline"]["dev"]["per_seed"] == pytest.approx([20.0] * 3)
    assert figures["lm_weights"]["aux"] == {"system": "11", "seeds_own": ["9", "9", "9"]}
    table = out.read_text()
    assert "| aux | 20.00 ± 0.00 |" in table and "| 11 (9 9 9) |" in table
    strengths = figures["by_strength"]
    assert strengths["strengths"] == ["1-gram", "2-gram", "first pass"]
    assert strengths["labels"]["first pass"] == "3-gram"
    one = strengths["by_strength"]["1-gram"]["systems"]["aux"]
    assert one["difference"][0] == pytest.approx(-10.0)
    trend = strengths["trend"]["systems"]["aux"]
    # seed means in errors of 500 words: seed 2 has 10 more, 10 / 3 on average; the slope's
    # weights over three strengths are -1/2, 0, +1/2
    base = [4 * 50 + 10 / 3, 2 * 50 + 10 / 3, 50 + 10 / 3]
    aux = [3 * 50 + 10 / 3, 2 * 50 - 10 + 10 / 3, 50 + 10 / 3]
    slope = 100 * (-math.log(aux[0] / base[0]) + math.log(aux[2] / base[2])) / 2
    assert trend["slope"] == pytest.approx(slope) and trend["slope"] > 0
    assert trend["p_value"] < 0.05 and trend["interval"][0] > 0
    assert "| system | 1-gram | 2-gram | 3-gram | trend |" in table
    assert "| A/A: baseline seeds 2 3 vs 1 |" in table
    family = figures["strength_holm"]
    assert [t["test"] for t in family["tests"]] == ["aux vs baseline, 1-gram", "aux vs baseline, 2-gram",
                                                    "aux vs baseline, 3-gram", "aux: trend over the strengths (%/step)"]
    # the claims' family keeps the claims alone (none here): no second test of aux vs baseline
    assert not figures["holm"].get("tests")


def test_averaging_line_pools_the_seed_spread_within_systems(tmp_path):
    exp = tmp_path / "exp"
    # per seed: (chosen epoch's dev acc, final.pt's dev acc); losses 2 - acc
    runs = {("baseline", 1): (0.50, 0.56), ("baseline", 2): (0.54, 0.56),
            ("aux", 1): (0.60, 0.61), ("aux", 2): (0.64, 0.63)}
    for (system, seed), (single, averaged) in runs.items():
        for part in ("dev", "test"):
            _write_wer(exp / f"am_{system}_s{seed}" / f"decode_{part}", 20)
        epoch = {"dev": {"acc_main": single, "main_ce": 2 - single}}
        (exp / f"am_{system}_s{seed}" / "train_stats.json").write_text(json.dumps(
            {"epochs": [{}, epoch], "chosen_epoch": 2, "epochs_run": 2, "averaged_epochs": [1, 2],
             "final_dev": {"acc_main": averaged, "main_ce": 2 - averaged}}))
    out = tmp_path / "RESULTS.md"
    report.main(["--exp-dir", str(exp), "--systems", "baseline", "aux", "--seeds", "1", "2", "--out", str(out)])
    figures = json.loads(out.with_suffix(".json").read_text())["averaging"]
    # within systems: single (0.02^2 * 2) * 2 / df 2 -> std 0.02 * sqrt(2); averaged 0 and 0.01^2 * 2 -> 0.01
    assert figures["acc_main_single"]["seed_std"] == pytest.approx(0.02 * 2 ** 0.5)
    assert figures["acc_main_averaged"]["seed_std"] == pytest.approx(0.01)
    assert figures["main_ce_averaged"]["mean"] == pytest.approx(2 - 0.59)
    assert figures["runs"] == 4 and figures["acc_main_single"]["df"] == 2
    assert "dev frame accuracy 57.00% → 59.00%, its std between seeds (within systems, df 2) 2.828 → 1.000" \
        in out.read_text()
