"""Pre-trained LMs as teachers (the plm level): tiny random GPT-2 and BERT checkpoints with
real tokenizers are written with save_pretrained and go through the real path: load,
normalise, tokenise, pieces to words and frames, dump, one AM epoch; fine-tuning; bad
model directories; the teacher/dump/AM modules import without k2. Expected distributions
are recomputed from the checkpoint with transformers alone (direct_probs): the masked
model's with whole words masked.

Length: every test here runs on the same module-scoped toy world and pair of checkpoints
(built once, a few seconds); one module keeps them built once."""

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
from tokenizers import Tokenizer, pre_tokenizers, trainers
from tokenizers import models as tok_models
from transformers import (AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer,
                          PreTrainedTokenizerFast)

from steps import dump_soft_labels as dump
from steps import prepare_plm_teacher, train_am
from steps.kd import alignment_tokens
from steps.kd import soft_labels as sl
from steps.kd.plm_text import Normalisation, WordPieces, choose_normalisation, encode_words, word_marks
from steps.kd.pretrained_teacher import MASKING, PlmError, PretrainedTeacher, load_model_dir
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
    return {"causal": _sharpened(write_gpt2(root / "gpt2", _text(world), vocab_size=300, context=12, seed=1),
                                 AutoModelForCausalLM, 1),
            "masked": _sharpened(write_bert(root / "bert", _text(world), vocab_size=300, context=12, seed=2),
                                 AutoModelForMaskedLM, 2)}


def _sharpened(directory: Path, cls, seed: int) -> Path:
    """The checkpoint redrawn at 5x the usual initial weight scale (0.02): at that scale a tiny
    random model's output hardly depends on its input (a piece's probabilities move by 1e-4
    when the rest of its word is masked too), so a wrong context would go unseen."""
    config = AutoConfig.from_pretrained(directory)
    config.initializer_range = 0.1
    torch.manual_seed(seed)
    cls.from_config(config).save_pretrained(directory)
    return directory


def direct_probs(model, tokenizer, kind: str, pieces: WordPieces, temperature: float = 1.0,
                 context: int = 10 ** 6) -> np.ndarray:
    """[m, len(tokenizer)]: p(piece i | context) straight from the checkpoint: causal after
    BOS, for the pieces of the first window (m = min(pieces, context - 1)), which see all
    pieces before them; masked (m = pieces) with every piece of i's transcript word masked,
    inside [CLS] ... [SEP], in the window of `context` positions centred on i."""
    ids, n = pieces.ids, len(pieces.ids)
    with torch.no_grad():
        if kind == "causal":
            m = min(n, context - 1)
            logits = model(torch.tensor([[tokenizer.bos_token_id] + ids[:m]])).logits[0, :m]
        else:
            rows, at = [], []
            for i in range(n):
                full = ([tokenizer.cls_token_id]
                        + [tokenizer.mask_token_id if w == pieces.word[i] else p for p, w in zip(ids, pieces.word)]
                        + [tokenizer.sep_token_id])
                start = min(max(0, i + 1 - context // 2), len(full) - context) if len(full) > context else 0
                rows.append(full[start:start + context])
                at.append(i + 1 - start)
            logits = model(torch.tensor(rows)).logits[torch.arange(n), torch.tensor(at)]
    return torch.softmax(logits[:, :len(tokenizer)] / temperature, dim=-1).numpy()


def load_direct(directory: Path, kind: str):
    cls = AutoModelForCausalLM if kind == "causal" else AutoModelForMaskedLM
    return cls.from_pretrained(directory).eval(), AutoTokenizer.from_pretrained(directory)


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
        pieces = teacher.encode_words("THE CAT SAT".split())
        pieces = WordPieces(pieces.ids[:5], pieces.word[:5], pieces.letters[:5])
        ids = pieces.ids
        long = (ids * 8)[:30]  # longer than the context of 12
        assert teacher.fits(len(ids)) and not teacher.fits(len(long))
        (top_ids, top_probs), (long_ids, long_probs), (empty_ids, _) = teacher.top_k([ids, long, []], 4, 2.0)
        assert empty_ids.shape == (0, 4) and long_ids.shape == (30, 4)
        np.testing.assert_allclose(long_probs.sum(1), 1.0, atol=1e-5)  # every position scored
        expected = torch.from_numpy(direct_probs(teacher.model, teacher.tokenizer, kind, pieces, 2.0))
        values, order = expected.topk(4, dim=-1)
        np.testing.assert_array_equal(top_ids, order.numpy())
        np.testing.assert_allclose(top_probs, (values / values.sum(-1, keepdim=True)).numpy(), atol=1e-5)
        if kind == "causal":  # the first window of the long transcript starts the same way
            np.testing.assert_array_equal(long_ids[:len(ids)], top_ids)


def test_masked_teacher_masks_every_piece_of_the_predicted_word(models, world):
    teacher = PretrainedTeacher.load(models["masked"])
    mask = teacher.tokenizer.mask_token_id
    # a transcript that fits the context and has words of several pieces
    for text in world.sentences + ["THE CAT SAT"]:
        pieces = teacher.encode_words(text.split())
        if teacher.fits(len(pieces.ids)) and len(set(pieces.word)) < len(pieces.ids):
            break
    ids, word = pieces.ids, pieces.word
    assert teacher.word_marks.words(ids) == word
    fed = []
    hook = teacher.model.get_input_embeddings().register_forward_pre_hook(
        lambda module, args: fed.extend(args[0].tolist()))
    try:
        top_ids, top_probs = teacher.top_k([ids], teacher.num_units, 1.0)[0]
        total, count = teacher.log_likelihood([ids])
    finally:
        hook.remove()
    # what the model is fed: one copy per word with all its pieces masked, nothing else
    full = teacher.prefix + ids + teacher.suffix
    expected = {tuple(mask if 0 < j <= len(ids) and word[j - 1] == w else x for j, x in enumerate(full))
                for w in set(word)}
    assert {tuple(row) for row in fed} == expected
    # the soft labels are the model's distribution with the whole word masked
    direct = direct_probs(teacher.model, teacher.tokenizer, "masked", pieces)
    got = np.zeros_like(direct)
    np.put_along_axis(got, top_ids.astype(np.int64), top_probs, axis=1)
    np.testing.assert_allclose(got, direct, atol=1e-5)
    inner = [i for i in range(1, len(ids)) if word[i] == word[i - 1]]  # non-initial pieces
    assert inner and count == len(ids)
    assert total == pytest.approx(float(np.log(direct[np.arange(len(ids)), ids]).sum()), abs=1e-3)


def test_masked_windows_mask_the_words_pieces_inside_them(models):
    teacher = PretrainedTeacher.load(models["masked"])
    pieces = teacher.encode_words(("THE CAT SAT ON " * 4).split())
    ids, word, mask = pieces.ids, pieces.word, teacher.tokenizer.mask_token_id
    assert not teacher.fits(len(ids))
    rows = teacher._rows([ids])
    assert sorted(t for row in rows for t in row.targets) == list(range(len(ids)))
    for row in rows:
        assert len(row.inputs) == teacher.context
        predicted = {word[t] for t in row.targets}
        assert len(predicted) == 1  # one word per row
        # the masks are exactly that word's pieces inside the window, around the centre
        start = row.targets[0] + 1 - row.outputs[0]
        inside = [j for j in range(len(ids)) if start <= j + 1 < start + teacher.context]
        masked = [j for j in inside if row.inputs[j + 1 - start] == mask]
        assert masked == [j for j in inside if word[j] in predicted]


def test_word_marks_are_the_transcripts_words(models, world):
    text = _text(world)
    metaspace = Tokenizer(tok_models.BPE(unk_token="<unk>"))
    metaspace.pre_tokenizer = pre_tokenizers.Metaspace()
    metaspace.train_from_iterator(text, trainers.BpeTrainer(vocab_size=200, special_tokens=["<unk>"],
                                                            show_progress=False))
    suffix = Tokenizer(tok_models.BPE(unk_token="<unk>", end_of_word_suffix="</w>"))
    suffix.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    suffix.train_from_iterator(text, trainers.BpeTrainer(vocab_size=200, special_tokens=["<unk>"],
                                                         end_of_word_suffix="</w>", show_progress=False))
    tokenizers = {kind: PretrainedTeacher.load(directory).tokenizer for kind, directory in models.items()}
    tokenizers.update({name: PreTrainedTokenizerFast(tokenizer_object=t, unk_token="<unk>")
                       for name, t in (("metaspace", metaspace), ("suffix", suffix))})
    marks = {name: word_marks(t) for name, t in tokenizers.items()}
    assert "'##'" in marks["masked"].rule and "U+0120" in marks["causal"].rule
    assert "U+2581" in marks["metaspace"].rule and "'</w>'" in marks["suffix"].rule
    split = 0
    for name, tokenizer in tokenizers.items():
        norm = choose_normalisation(tokenizer)
        for sentence in world.sentences[:40]:
            pieces = encode_words(tokenizer, norm, sentence.split())
            assert marks[name].words(pieces.ids) == pieces.word, (name, sentence)
            split += len(pieces.ids) - len(set(pieces.word))
    assert split > 0  # words of several pieces were among them


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
    # a teacher directory made for a masking not done here (its labels would not match)
    odd = tmp_path / "odd_masking"
    odd.mkdir()
    (odd / "teacher.json").write_text(json.dumps(
        {"model_dir": str(models["masked"]), "kind": "masked", "masking": "piece",
         "normalisation": {"case": "lower", "apostrophe": ""}}))
    with pytest.raises(PlmError, match="masking 'piece' for a masked model; only 'whole_word'"):
        PretrainedTeacher.load(odd)


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
    masking = {"causal": "masking: none", "masked": f"masking: {MASKING}"}[kind]
    assert "case: " in (lm_plm / "normalisation.txt").read_text()
    assert masking in (lm_plm / "normalisation.txt").read_text()
    assert info["masking"] == {"causal": "none", "masked": MASKING}[kind]
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
    model, tokenizer = load_direct(models[kind], kind)
    checked = 0
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
        # the dumped labels against the checkpoint itself (transformers alone, whole words masked)
        direct = direct_probs(model, tokenizer, kind, teacher.encode_words(words), 1.5, teacher.context)
        rows = tokens.positions < len(direct)
        direct = direct[tokens.positions[rows]]
        dumped = np.take_along_axis(direct, labels.ids[rows].astype(np.int64), axis=1)
        fifth = np.sort(direct, axis=1)[:, -5]
        assert (dumped.min(1) >= fifth - 1e-6).all()  # the dumped ids are the top 4
        probs = labels.probs[rows].astype(np.float32)
        np.testing.assert_allclose(probs, dumped / dumped.sum(1, keepdims=True), atol=2e-3)
        assert (np.diff(probs, axis=1) <= 1e-6).all()  # sorted, most likely first
        checked += rows.sum()
    # causal: the first window's pieces (11 a transcript); masked: every row
    rows_dumped = sum(len(sl.load_soft_labels(cut, "plm")) for cut in kd)
    assert checked == rows_dumped if kind == "masked" else checked >= 0.3 * rows_dumped

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
