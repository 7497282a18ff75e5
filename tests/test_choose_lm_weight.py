"""One LM weight per system, chosen on all its seeds' dev sweeps (steps.choose_lm_weight)."""

import json

import pytest

from steps import choose_lm_weight
from steps.decoding.lm_weights import pooled_weight, weight_from_dir


def write_info(path, weights, rescore=None):
    path.mkdir(parents=True)
    info = {"weights": {f"{w:g}": {"errors": e, "words": 100, "wer": e} for w, e in weights.items()}}
    if rescore is not None:
        info["rescore"] = {"weights": {f"{w:g}": {"errors": e, "words": 100, "wer": e} for w, e in rescore.items()}}
    (path / "decode_info.json").write_text(json.dumps(info))


def test_the_pooled_weight_can_differ_from_every_seeds_own_and_ties_take_the_smaller():
    # seed 1 likes 8 (5 errors), seed 2 likes 12 (4): pooled, 10 has 6 + 6 = 12 < 13
    best, pooled = pooled_weight([{8: (5, 100), 10: (6, 100), 12: (9, 100)},
                                  {8: (8, 100), 10: (6, 100), 12: (4, 100)}])
    assert best == 10
    assert pooled == {8: 6.5, 10: 6.0, 12: 6.5}
    assert pooled_weight([{8: (3, 50), 9: (3, 50)}])[0] == 8


def test_the_program_writes_what_lm_weight_from_reads(tmp_path):
    dirs = [tmp_path / f"am_s{s}" / "decode_dev" for s in (1, 2)]
    write_info(dirs[0], {8: 5, 10: 6, 12: 9}, rescore={8: 4, 10: 7})
    write_info(dirs[1], {8: 8, 10: 6, 12: 4}, rescore={8: 4, 10: 2})
    out = tmp_path / "lm_weights" / "baseline" / "decode_dev"
    assert choose_lm_weight.main(["--dev-dirs", *map(str, dirs), "--out-dir", str(out)]) == 0
    assert weight_from_dir(out) == 10
    assert weight_from_dir(out / "rescore") == 8  # 4 + 4 = 8 < 7 + 2 = 9
    choice = json.loads((out / "choice.json").read_text())
    assert choice["first pass"]["own_best"] == ["8", "12"]
    assert choice["rescored"]["pooled_wer"] == {"8": 4.0, "10": 4.5}


def test_a_decode_without_a_sweep_or_mixed_rescoring_is_refused(tmp_path):
    dirs = [tmp_path / f"s{s}" for s in (1, 2)]
    write_info(dirs[0], {8: 5, 10: 6})
    dirs[1].mkdir()
    (dirs[1] / "decode_info.json").write_text(json.dumps({"weights": {}}))
    with pytest.raises(SystemExit, match="no LM-weight sweep"):
        choose_lm_weight.main(["--dev-dirs", *map(str, dirs), "--out-dir", str(tmp_path / "out")])
    (dirs[1] / "decode_info.json").unlink()
    dirs[1].rmdir()
    write_info(dirs[1], {8: 5, 10: 6}, rescore={8: 1})
    with pytest.raises(SystemExit, match="some dev decodes were rescored"):
        choose_lm_weight.main(["--dev-dirs", *map(str, dirs), "--out-dir", str(tmp_path / "out")])
