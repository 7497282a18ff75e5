"""Pre-trained LMs as teachers (the plm level): tiny random GPT-2 and BERT checkpoints with
real tokenizers are written with save_pretrained and go through the real path: load,
normalise, tokenise, pieces to words and frames, dump, one AM epoch; fine-tuning; bad
model directories; the teacher/dump/AM modules import without k2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from lhotse import CutSet, Features, LilcomChunkyWriter
from lhotse.utils import fastcopy

from steps import dump_soft_labels as dump
from steps import prepare_plm_teacher, train_am
from steps.kd import alignment_tokens
from steps.kd import soft_labels as sl
from steps.kd.plm_text import Normalisation, choose_normalisation
from steps.kd.pretrained_teacher import PlmError, PretrainedTeacher, load_model_dir
from steps.kd.random_models import write_bert, write_gpt2
from steps.kd.teachers import Teacher
from steps.toy.alignments import ToyWorld

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "egs" / "synth" / "s5" / "conf"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> ToyWorld:
    return ToyWorld.build(tmp_path_factory.mktemp("plm_world"), num_words=80, num_sentences=300,
                          tree_depth=1, bpe_vocab=100, seed=7, max_words=8)


def _text(world):
    return world.sentences + [s.lower() for s in world.sentences] + [s.capitalize() for s in world.sentences]


@pytest.fixture(scope="module")
def models(world, tmp_path_factory):
    root = tmp_path_factory.mktemp("plm_models")
    # contexts shorter than the longest transcripts' pieces: windows get used
    return {"causal": write_gpt2(root / "gpt2", _text(world), vocab_size=300, context=12, seed=1),
            "masked": write_bert(root / "bert", _text(world), vocab_size=300, context=12, seed=2)}


# ------------------------------------------------------------------ text


def test_normalisation_rules():
    sentence = Normalisation("sentence", "'")
    assert sentence.sentence(["I'M", "NOT", "SURE", "I", "DON'T"]) == ["I'm", "not", "sure", "I", "don't"]
    assert sentence.sentence(["THE", "CAT"]) == ["The", "cat"]
    assert Normalisation("lower", "\u2019").sentence(["DON'T"]) == ["don\u2019t"]
    assert Normalisation("lower", "").sentence(["DON'T"]) == ["dont"]


def test_tokenizers_pieces_map_back_to_words(models, world):
    causal = PretrainedTeacher.load(models["causal"])
    masked = PretrainedTeacher.load(models["masked"])
    assert causal.kind == "causal" and masked.kind == "masked"
    # BERT's WordPiece lowercases itself; the byte-level BPE saw cased text
    assert masked.normalisation.case == "lower" and causal.normalisation.case == "sentence"
    for teacher in (causal, masked):
        for text in world.sentences[:30]:
            words = text.split()
            pieces = teacher.encode_words(words)
            assert pieces.empty_words == [] and pieces.unknown == 0
            assert pieces.word == sorted(pieces.word) and set(pieces.word) == set(range(len(words)))
            # the pieces are the tokenisation of the normalised transcript, in order
            normalised = " ".join(teacher.normalisation.sentence(words))
            assert pieces.ids == teacher.tokenizer(normalised, add_special_tokens=False)["input_ids"]
            # a word's pieces cover its letters (byte-level BPE and WordPiece both)
            for w, word in enumerate(words):
                assert sum(n for n, i in zip(pieces.letters, pieces.word) if i == w) == len(word)


def test_top_k_is_the_model_softmax_and_windows_cover_long_transcripts(models):
    for kind, directory in models.items():
        teacher = PretrainedTeacher.load(directory)
        ids = teacher.encode_words("THE CAT SAT".split()).ids[:5]
        long = (ids * 8)[:30]  # longer than the context of 12
        assert teacher.fits(len(ids)) and not teacher.fits(len(long))
        (top_ids, top_probs), (long_ids, long_probs), (empty_ids, _) = teacher.top_k([ids, long, []], 4, 2.0)
        assert empty_ids.shape == (0, 4) and long_ids.shape == (30, 4)
        np.testing.assert_allclose(long_probs.sum(1), 1.0, atol=1e-5)  # every position scored
        with torch.no_grad():
            if kind == "causal":
                logits = teacher.model(torch.tensor([teacher.prefix + ids])).logits[0, :len(ids)]
            else:
                rows = []
                for i in range(len(ids)):
                    x = teacher.prefix + ids + teacher.suffix
                    x[i + 1] = teacher.tokenizer.mask_token_id
                    rows.append(teacher.model(torch.tensor([x])).logits[0, i + 1])
                logits = torch.stack(rows)
        expected = torch.softmax(logits / 2.0, dim=-1)
        values, order = expected.topk(4, dim=-1)
        np.testing.assert_array_equal(top_ids, order.numpy())
        np.testing.assert_allclose(top_probs, (values / values.sum(-1, keepdim=True)).numpy(), atol=1e-5)
        if kind == "causal":  # the first window of the long transcript starts the same way
            np.testing.assert_array_equal(long_ids[:len(ids)], top_ids)


# ------------------------------------------------------------------ bad input


def test_bad_model_directories_say_what_is_wrong(tmp_path, models):
    with pytest.raises(PlmError, match="no such directory"):
        load_model_dir(tmp_path / "absent")
    (tmp_path / "file").write_text("x")
    with pytest.raises(PlmError, match="not a directory"):
        load_model_dir(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PlmError, match="no config.json"):
        load_model_dir(tmp_path / "empty")
    bad = tmp_path / "bad_json"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    with pytest.raises(PlmError, match="not a usable transformers config"):
        load_model_dir(bad)
    vision = tmp_path / "vit"
    vision.mkdir()
    (vision / "config.json").write_text(json.dumps({"model_type": "vit"}))
    with pytest.raises(PlmError, match="neither a causal nor a masked LM"):
        load_model_dir(vision)
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    for name in os.listdir(models["causal"]):
        if not name.endswith(".safetensors"):
            (no_weights / name).write_bytes((models["causal"] / name).read_bytes())
    with pytest.raises(PlmError, match="the causal model does not load"):
        load_model_dir(no_weights)
    with pytest.raises(PlmError, match="no masked LM class"):
        load_model_dir(models["causal"], kind="masked")
    # the programs turn these into one line, not a traceback
    assert prepare_plm_teacher.main(["--model", str(tmp_path / "absent"), "--lm-text", str(tmp_path / "file"),
                                     "--out-dir", str(tmp_path / "out")]) == 1
    with pytest.raises(SystemExit, match="plm teacher: .*no config.json"):
        Teacher.load(_with_teacher_json(tmp_path / "empty"))


def _with_teacher_json(directory: Path) -> Path:
    (directory / "teacher.json").write_text(json.dumps(
        {"model_dir": ".", "kind": "causal", "normalisation": {"case": "lower", "apostrophe": "'"}}))
    return directory


# ------------------------------------------------------------------ the real path


def _with_features(cuts, path: Path, seed: int = 0):
    """The cuts with fbank-like features whose mean depends on the aligned senone."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 1.0, (64, 20)).astype(np.float32)
    out = []
    with LilcomChunkyWriter(path) as writer:
        for cut in cuts:
            senones = np.asarray(cut.load_custom("senone_ali")).reshape(-1)
            feats = means[senones % 64] + rng.normal(0.0, 0.5, (len(senones), 20)).astype(np.float32)
            key = writer.write(cut.id, feats)
            features = Features(type="synthetic", num_frames=len(senones), num_features=20, frame_shift=0.01,
                                sampling_rate=16000, start=0.0, duration=len(senones) * 0.01,
                                storage_type=writer.name, storage_path=str(writer.storage_path),
                                storage_key=key)
            out.append(fastcopy(cut, features=features, duration=len(senones) * 0.01))
    return CutSet.from_cuts(out)


@pytest.mark.parametrize("kind", ["causal", "masked"])
def test_prepare_dump_and_train_one_epoch(kind, world, models, tmp_path):
    lm_plm = tmp_path / "exp" / "lm_plm"
    words = world.root / "lang" / "words.txt"
    args = ["--model", str(models[kind]), "--lm-text", str(world.root / "lm_text.txt"), "--words", str(words),
            "--out-dir", str(lm_plm), "--max-valid-lines", "20"]
    assert prepare_plm_teacher.main(args) == 0
    info = json.loads((lm_plm / "teacher.json").read_text())
    teacher = PretrainedTeacher.load(lm_plm)
    assert info["kind"] == kind and teacher.num_units == len((lm_plm / "tokens.txt").read_text().splitlines())
    assert "case: " in (lm_plm / "normalisation.txt").read_text()
    table = [line.split("\t") for line in (lm_plm / "word_pieces.txt").read_text().splitlines()]
    assert len(table) == len([w for w in world.lang.words if w not in prepare_plm_teacher.NOT_WORDS])
    assert all(row[2] != "(nothing)" for row in table)
    for word, normalised, pieces in table[:20]:
        assert normalised == teacher.normalisation.word(word, first=True)
        assert pieces.split() == teacher.tokenizer.tokenize(normalised)
    ppl = dict(line.split(" ", 1) for line in (lm_plm / "ppl").read_text().splitlines() if " " in line)
    # an untrained model is close to uniform over its pieces
    assert 0.3 * teacher.num_units < float(ppl["teacher_ppl"]) < 3 * teacher.num_units

    # cuts: one with a word the tokenizer maps to nothing (apostrophes removed), one unaligned
    cuts = list(world.cuts(world.sentences[:16], tmp_path / "ali.h5", sil_prob=0.5))
    sup = cuts[2].supervisions[0]
    ali_words = list(sup.alignment["ali_word"])
    ali_words[1] = ali_words[1]._replace(symbol="'")
    cuts[2] = fastcopy(cuts[2], supervisions=[fastcopy(sup, alignment={**sup.alignment, "ali_word": ali_words})])
    cuts[5] = fastcopy(cuts[5], supervisions=[fastcopy(cuts[5].supervisions[0], alignment={})])
    cuts = _with_features(cuts, tmp_path / "feats")
    cuts.to_file(tmp_path / "cuts.jsonl.gz")
    info["normalisation"]["apostrophe"] = ""
    (lm_plm / "teacher.json").write_text(json.dumps(info))
    out = tmp_path / "kd"
    assert dump.main(["--cuts", str(tmp_path / "cuts.jsonl.gz"), "--lang-dir", str(world.root / "lang"),
                      "--teachers", str(lm_plm), "--top-k", "4", "--temperature", "1.5",
                      "--out-dir", str(out), "--corpus", "toy"]) == 0
    stats = json.loads((out / "toy_train_dump_stats.json").read_text())
    assert stats["cuts_in"] == 16 and stats["cuts_out"] == 15
    assert stats["cuts_failed"] == {"no ali_phone alignment": 1}
    assert stats["problems"]["plm"]["words_without_model_pieces"] == 1
    assert stats["problems"]["plm"]["words_differ_from_text"] == 1
    assert stats["windowed"]["plm"] > 0  # context 12: some transcripts are longer
    assert f"{cuts[2].id}\tplm\tword ' has no model_pieces" in (out / "toy_train_bad_items.txt").read_text()

    teacher = PretrainedTeacher.load(lm_plm)
    units = alignment_tokens.UnitMaps(world.lang, None, [], None, teacher)
    kd = list(CutSet.from_file(out / "toy_cuts_train.jsonl.gz"))
    for cut in kd:
        labels = sl.load_soft_labels(cut, "plm")
        labels.check(len(cut.load_custom("senone_ali")))
        tokens = alignment_tokens.cut_tokens(cut, units, {"plm": teacher.num_units})["plm"]
        words = [w.symbol for w in cut.supervisions[0].alignment["ali_word"] if w.symbol not in alignment_tokens.NOT_WORDS]
        assert tokens.teacher_tokens == [p for p in teacher.encode_words(words).ids]
        # spans cover exactly the speech frames (as for the other levels)
        mono = cut.load_custom("mono_ali")
        speech = world.topology.state_phone[mono] != world.lang.phone_id["SIL"]
        covered = np.zeros(len(mono), dtype=bool)
        for start, end in labels.spans:
            covered[start:end] = True
        if cut.id != cuts[2].id:
            np.testing.assert_array_equal(covered, speech)
        ids, probs = teacher.top_k([tokens.teacher_tokens], 4, 1.5)[0]
        np.testing.assert_array_equal(labels.ids, ids[tokens.positions])
        np.testing.assert_allclose(labels.probs.astype(np.float32), probs[tokens.positions], atol=2e-3)

    # one AM epoch with the plm head (top-k-restricted logits)
    override = tmp_path / "one_epoch.yaml"
    override.write_text("train:\n  num_epochs: 1\n")
    exp = tmp_path / "exp" / "am_aux_plm_s1"
    assert train_am.main(["--config", str(CONF / "am_aux_plm.yaml"), "--override", str(CONF / "am_tiny.yaml"),
                          "--override", str(override), "--cuts", str(out / "toy_cuts_train.jsonl.gz"),
                          "--dev-cuts", str(out / "toy_cuts_train.jsonl.gz"), "--exp-dir", str(exp),
                          "--lm-dir", str(tmp_path / "exp"), "--senone-counts", str(tmp_path / "none.txt"),
                          "--seed", "1", "--num-threads", "1"]) == 0
    stats = json.loads((exp / "train_stats.json").read_text())
    assert stats["aux_units"] == {"plm": teacher.num_units}
    assert (exp / "final.pt").is_file()


@pytest.mark.parametrize("kind", ["causal", "masked"])
def test_finetuning_lowers_held_out_loss(kind, world, models, tmp_path):
    out = tmp_path / "lm_plm"
    assert prepare_plm_teacher.main(["--model", str(models[kind]), "--lm-text", str(world.root / "lm_text.txt"),
                                     "--out-dir", str(out), "--finetune-epochs", "2", "--finetune-lr", "3e-3",
                                     "--valid-fraction", "0.1", "--max-valid-lines", "20"]) == 0
    stats = json.loads((out / "finetune.json").read_text())
    assert stats["steps"] > 0 and stats["valid_lines"] > 0
    assert stats["valid_nll_after"] < stats["valid_nll_before"] - 0.5
    assert json.loads((out / "teacher.json").read_text())["model_dir"] == "model"
    assert PretrainedTeacher.load(out).path == out / "teacher.json"
    # a second run with the same inputs is skipped
    stamp = (out / "model" / "model.safetensors").stat().st_mtime_ns
    assert prepare_plm_teacher.main(["--model", str(models[kind]), "--lm-text", str(world.root / "lm_text.txt"),
                                     "--out-dir", str(out), "--finetune-epochs", "2", "--finetune-lr", "3e-3",
                                     "--valid-fraction", "0.1", "--max-valid-lines", "20"]) == 0
    assert (out / "model" / "model.safetensors").stat().st_mtime_ns == stamp


def test_teacher_dump_and_am_modules_import_without_k2():
    code = ("import sys; sys.modules['k2'] = None\n"
            "import steps.kd.pretrained_teacher, steps.kd.plm_finetune, steps.kd.random_models\n"
            "import steps.prepare_plm_teacher, steps.dump_soft_labels, steps.am.model, steps.am.losses\n"
            "import steps.am.data, steps.am.training, steps.train_am\n"
            "assert sys.modules['k2'] is None\n"
            "print('ok')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


def test_choose_normalisation_falls_back_for_apostrophes(models):
    # the WordPiece vocabulary was trained on text without apostrophes: "'" is [UNK] there,
    # so apostrophes are removed; byte-level BPE encodes any character
    masked = PretrainedTeacher.load(models["masked"]).tokenizer
    assert masked("'", add_special_tokens=False)["input_ids"] == [masked.unk_token_id]
    assert choose_normalisation(masked).apostrophe == ""
    assert choose_normalisation(PretrainedTeacher.load(models["causal"]).tokenizer).apostrophe == "'"
    assert choose_normalisation(masked, "upper") == Normalisation("upper", "")


def test_topk_head_is_the_full_head_renormalised_over_the_teachers_ids(tmp_path):
    from steps.am.layers import Head, TopKHead
    from steps.am.losses import kd_sum
    from steps.core.config import ConfigError

    torch.manual_seed(0)
    full, restricted = Head(16, 8, 500), TopKHead(16, 8, 500)
    restricted.load_state_dict(full.state_dict())
    x = torch.randn(30, 16)
    ids = torch.randint(0, 500, (30, 4))
    probs = torch.softmax(torch.randn(30, 4), dim=-1)
    mask = torch.rand(30) < 0.7
    log_p = full(x)
    out = restricted(x)
    expected = log_p.gather(1, ids).log_softmax(dim=-1)  # renormalised over the k ids
    torch.testing.assert_close(out.over(ids), expected)
    assert torch.equal(out.argmax(dim=-1, chunk=7), log_p.argmax(dim=-1))
    s, c = kd_sum(out, ids, probs, mask)
    kl = (torch.xlogy(probs, probs) - probs * expected).sum(1)
    torch.testing.assert_close(s, (kl * mask).sum())
    assert int(c) == int(mask.sum())
    # config errors name the file and key
    bad = tmp_path / "bad.yaml"
    bad.write_text("loss:\n  kd:\n    plm: {alpha: 0.5}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: loss.kd.plm.alpha: must be 0 for a head with output: topk"):
        train_am.load_am_config(CONF / "am_aux_plm.yaml", [bad])
