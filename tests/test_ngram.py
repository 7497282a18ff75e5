"""The word n-gram LM: Kneser-Ney numbers by hand, normalisation, ARPA and G round trips,
pruning, and steps.make_lm end to end."""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from steps import make_lm
from steps.lm.kneser_ney import KneserNey, estimate_kneser_ney, kn_discounts
from steps.lm.ngram import BOS, EOS, UNK, BackoffLM, lm_vocabulary, parse_min_counts, perplexity

# The toy corpus of the hand computation.
TOY = ["A B C", "A B", "B C"]
TOY_VOCAB = ["A", "B", "C", "D"]  # D never occurs in the text


def p(lm: BackoffLM, context: str, word: str) -> float:
    return 10 ** lm.log10_prob(context.split(), word)


def predicted(lm: BackoffLM) -> list[str]:
    return [t for t in lm.tokens if t != BOS]


def histories(lm: BackoffLM) -> list[list[str]]:
    """The empty history and every entry of orders 1..N-1 that can be a history."""
    result = [[]]
    for n in range(1, lm.order):
        for row in lm.ngram_tokens(n):
            words = [lm.tokens[i] for i in row]
            if EOS not in words:
                result.append(words)
    return result


def test_toy_trigram_by_hand():
    """Streams: <s> A B C </s> | <s> A B </s> | <s> B C </s>.

    Trigram raw counts (= adjusted at the top order): <s>AB 2, ABC 1, AB</s> 1, BC</s> 2,
    <s>BC 1 -> counts-of-counts n1=3 n2=2 n3=0: D3+ undefined -> fallback D = .5, 1, 1.5.
    Bigram adjusted counts (distinct left words; raw for <s>..): <s>A 2, <s>B 1, AB 1
    (<s>), BC 2 (A, <s>), C</s> 1 (B), B</s> 1 (A) -> n1=4 n2=2 n3=0 -> fallback too.
    Unigram adjusted (distinct left words): A 1, B 2, C 1, </s> 2, D 0, <UNK> 0 -> fallback.

    Unigrams: S = 6, held mass = .5 + 1 + .5 + 1 = 3, gamma() = 3/6; uniform over the
    |V| = 6 predicted symbols A B C D <UNK> </s>:
        p(A) = (1-.5)/6 + .5/6 = 1/6     p(B) = (2-1)/6 + .5/6 = 1/4     p(C) = 1/6
        p(</s>) = 1/4                    p(D) = p(<UNK>) = .5/6 = 1/12   (unseen word)
    Bigrams, history B: a(BC)=2 (D=1), a(B</s>)=1 (D=.5), S=3, gamma(B) = 1.5/3 = 1/2
        p(C|B) = (2-1)/3 + 1/2 * 1/6 = 5/12     p(</s>|B) = .5/3 + 1/2 * 1/4 = 7/24
    history A: a(AB)=1, S=1, gamma(A) = 1/2:    p(B|A) = .5 + 1/2 * 1/4 = 5/8
    history <s>: a(<s>A)=2, a(<s>B)=1, S=3, gamma(<s>) = 1/2:  p(A|<s>) = 5/12
    Trigrams, history A B: a(ABC)=1, a(AB</s>)=1, S=2, gamma(A B) = 1/2
        p(C|A B)    = .5/2 + 1/2 * 5/12 = 11/24                 (seen trigram)
        p(</s>|A B) = .5/2 + 1/2 * 7/24 = 19/48
        p(A|A B)    = gamma(A B) gamma(B) p(A) = 1/2 * 1/2 * 1/6 = 1/24   (backed off twice)
        p(D|A B)    = 1/2 * 1/2 * 1/12 = 1/48                  (unseen word)
    history <s> A: a(<s>AB)=2, S=2, gamma = 1/2:  p(B|<s> A) = (2-1)/2 + 1/2 * 5/8 = 13/16
    """
    lm, stats = estimate_kneser_ney(TOY, TOY_VOCAB, order=3)
    assert stats.discounts == [(0.5, 1.0, 1.5)] * 3
    assert stats.distinct[1:] == [6, 5]
    expected = {
        ("", "A"): 1 / 6, ("", "B"): 1 / 4, ("", "C"): 1 / 6, ("", EOS): 1 / 4,
        ("", "D"): 1 / 12, ("", UNK): 1 / 12,
        ("B", "C"): 5 / 12, ("B", EOS): 7 / 24, ("A", "B"): 5 / 8, (BOS, "A"): 5 / 12,
        ("A B", "C"): 11 / 24, ("A B", EOS): 19 / 48, ("A B", "A"): 1 / 24,
        ("A B", "D"): 1 / 48, (f"{BOS} A", "B"): 13 / 16,
        ("B A", "C"): 1 / 2 * 1 / 6,  # unseen history B A: no weight, p(C|A) = 1/2 p(C)
    }
    for (context, word), value in expected.items():
        assert p(lm, context, word) == pytest.approx(value, rel=1e-9), (context, word)
    # the back-off weights the ARPA file holds for these histories
    bow = {" ".join(lm.tokens[i] for i in row): lm.tables[n - 1].backoff[k]
           for n in (1, 2) for k, row in enumerate(lm.ngram_tokens(n))}
    for history in ("A B", "<s> A", "B", "<s>"):
        assert 10 ** bow[history] == pytest.approx(0.5)


def test_toy_count_cutoff_by_hand():
    """3gram:2 keeps <s>AB and BC</s> (raw count 2) and drops ABC, AB</s>, <s>BC. History
    A B loses all its trigrams, so bow(A B) = 1 and p(C|A B) = p(C|B) = 5/12; history
    <s> A keeps its only trigram: p(B|<s> A) = 13/16 as before."""
    lm, stats = estimate_kneser_ney(TOY, TOY_VOCAB, order=3, min_counts={3: 2})
    assert lm.counts() == [7, 6, 2]
    assert p(lm, "A B", "C") == pytest.approx(5 / 12)
    assert p(lm, "A B", EOS) == pytest.approx(7 / 24)
    assert p(lm, f"{BOS} A", "B") == pytest.approx(13 / 16)


def test_discounts_from_counts_of_counts():
    # n1..n4 = 10, 4, 2, 1: Y = 10/18, D1 = 1 - 2Y 4/10 = 5/9, D2 = 2 - 3Y 2/4 = 7/6,
    # D3+ = 3 - 4Y 1/2 = 17/9
    adjusted = np.array([1] * 10 + [2] * 4 + [3] * 2 + [4] + [9] * 5)
    assert kn_discounts(adjusted, 2) == pytest.approx((5 / 9, 7 / 6, 17 / 9))
    assert kn_discounts(np.array([1, 1, 2]), 2) == (0.5, 1.0, 1.5)  # n3 = 0: fallback


def random_corpus(seed: int, sentences: int, vocab: list[str]) -> list[str]:
    rng = random.Random(seed)
    weights = [1 / (i + 1) for i in range(len(vocab))]
    lines = []
    for _ in range(sentences):
        words = rng.choices(vocab, weights, k=rng.randint(0, 7))
        if words and rng.random() < 0.5:  # some repeated structure
            words = words[:1] + ["A", "B"] + words[1:]
        lines.append(" ".join(words))
    return lines


def naive_kneser_ney(lines, vocab, order):
    """Textbook interpolated modified Kneser-Ney with dicts, for comparison."""
    vocab = [UNK, *vocab] if UNK not in vocab else list(vocab)
    known = set(vocab)
    raw = [Counter() for _ in range(order)]
    for line in lines:
        tokens = [BOS] + [w if w in known else UNK for w in line.split()] + [EOS]
        for n in range(1, order + 1):
            for i in range(len(tokens) - n + 1):
                raw[n - 1][tuple(tokens[i:i + n])] += 1
    adjusted = [Counter() for _ in range(order)]
    adjusted[-1] = Counter(raw[-1])
    for n in range(order - 1, 0, -1):
        for gram in raw[n]:
            adjusted[n - 1][gram[1:]] += 1
        for gram, c in raw[n - 1].items():
            if gram[0] == BOS:
                adjusted[n - 1][gram] = c
    del adjusted[0][(BOS,)]
    discounts = []
    for n in range(order):
        cc = Counter(adjusted[n].values())
        try:
            y = cc[1] / (cc[1] + 2 * cc[2])
            d = [k - (k + 1) * y * cc[k + 1] / cc[k] for k in (1, 2, 3)]
            assert all(0 < dk <= k for k, dk in zip((1, 2, 3), d))
        except (ZeroDivisionError, AssertionError):
            d = [0.5, 1.0, 1.5]
        discounts.append(d)

    def disc(n, a):
        return 0 if a == 0 else discounts[n - 1][min(a, 3) - 1]

    events = [*vocab, EOS]

    def prob(history, word):
        n = len(history) + 1
        children = {g[-1]: a for g, a in adjusted[n - 1].items() if g[:-1] == history}
        if n == 1:
            total = sum(children.values())
            held = sum(disc(1, a) for a in children.values())
            return (children.get(word, 0) - disc(1, children.get(word, 0))) / total \
                + held / total / len(events)
        total = sum(children.values())
        if total == 0:
            return prob(history[1:], word)
        held = sum(disc(n, a) for a in children.values())
        a = children.get(word, 0)
        return (a - disc(n, a)) / total + held / total * prob(history[1:], word)

    return prob, events


@pytest.mark.parametrize("order", [1, 2, 3, 4])  # 1 and 2: the LM strengths of stage 9
def test_matches_textbook_implementation(order):
    vocab = ["A", "B", "C", "D", "E", "F", "G", "H"]
    lines = random_corpus(order, 300, vocab[:-1]) + ["A Z Z B"]  # Z is out of vocabulary
    lm, stats = estimate_kneser_ney(lines, vocab, order=order)
    assert stats.oov == 2
    prob, events = naive_kneser_ney(lines, vocab, order)
    assert sorted(events) == sorted(predicted(lm))
    contexts = histories(lm) + [["H", "H", "H"][:order - 1]]  # and an unseen one
    checked = 0
    for history in contexts:
        for word in events:
            want = prob(tuple(history[-(order - 1):]) if order > 1 else (), word)
            assert p(lm, " ".join(history), word) == pytest.approx(want, rel=1e-9)
            checked += 1
    assert checked > (100 if order > 1 else len(events))  # a unigram has one history
    if order >= 3:  # real (not fallback) discounts at the top order of this corpus
        assert stats.discounts[-1] != (0.5, 1.0, 1.5)


@pytest.mark.parametrize("order,min_counts,threshold", [
    (1, {}, 0.0), (2, {}, 0.0), (3, {}, 0.0), (4, {}, 0.0), (3, {3: 2}, 0.0), (4, {2: 2, 3: 3, 4: 3}, 0.0),
    (3, {}, 1e-3), (4, {3: 2}, 1e-4),
])
def test_every_history_sums_to_one(tmp_path, order, min_counts, threshold):
    lines = random_corpus(7, 200, ["A", "B", "C", "D", "E", "F"])
    lm, _ = estimate_kneser_ney(lines, ["A", "B", "C", "D", "E", "F", "G"], order,
                                min_counts, threshold)
    lm.write_arpa(tmp_path / "lm.arpa")
    back = BackoffLM.read_arpa(tmp_path / "lm.arpa")
    for model in (lm, back):
        for history in histories(lm):
            total = sum(p(model, " ".join(history), w) for w in predicted(lm))
            assert total == pytest.approx(1.0, abs=1e-6), history


def test_arpa_round_trip_and_lookups(tmp_path):
    lm, _ = estimate_kneser_ney(TOY, TOY_VOCAB, order=3)
    arpa = tmp_path / "lm.arpa"
    lm.write_arpa(arpa)
    text = arpa.read_text()
    assert "\\data\\\nngram 1=7\nngram 2=6\nngram 3=5\n" in text
    section = text.split("\\2-grams:\n")[1].split("\n\n")[0].splitlines()
    assert [line.split("\t")[1] for line in section] == [
        "<s> A", "<s> B", "A B", "B </s>", "B C", "C </s>"]  # sorted, C locale
    assert section[0].split("\t") == [f"{math.log10(5 / 12):.7f}", "<s> A", f"{math.log10(0.5):.7f}"]
    assert section[5].split("\t") == [f"{math.log10(5 / 8):.7f}", "C </s>"]  # not a history
    unigrams = text.split("\\1-grams:\n")[1].split("\n\n")[0].splitlines()
    assert [line.split("\t")[1] for line in unigrams] == [
        "</s>", "<UNK>", "<s>", "A", "B", "C", "D"]
    assert unigrams[2].split("\t") == ["-99.0000000", "<s>", f"{math.log10(0.5):.7f}"]
    assert unigrams[6].split("\t") == [f"{math.log10(1 / 12):.7f}", "D"]  # never a history
    back = BackoffLM.read_arpa(arpa)
    assert back.counts() == lm.counts() == [7, 6, 5]
    for history in histories(lm) + [["A", "A"], ["D"]]:
        for w in predicted(lm):
            context = " ".join(history)
            assert back.log10_prob(history, w) == pytest.approx(lm.log10_prob(history, w),
                                                                abs=1e-6), (context, w)


def test_vectorised_scoring_and_perplexity():
    lm, _ = estimate_kneser_ney(TOY, TOY_VOCAB, order=3)
    # <s> A B D </s>: p(A|<s>) p(B|<s> A) p(D|A B) p(</s>|B D) = 5/12 * 13/16 * 1/48 * ...
    # p(</s>|B D): no B D, no D </s>: gamma(D) is none (D never a history) -> p(</s>) = 1/4
    want = [5 / 12, 13 / 16, 1 / 48, 1 / 4]
    text = lm.encode(["A B D", "A X"])  # X is out of vocabulary: <UNK>
    logp = lm.log10_probs(text.stream)
    assert np.isnan(logp[0]) and np.isnan(logp[5])
    assert 10 ** logp[1:5] == pytest.approx(want)
    # second sentence: p(A|<s>) p(<UNK>|<s> A) p(</s>|A <UNK>)
    #   p(<UNK>|<s> A) = 1/2 * p(<UNK>|A) = 1/2 * 1/2 * 1/12;  p(</s>|A <UNK>) = p(</s>) = 1/4
    assert 10 ** logp[6:9] == pytest.approx([5 / 12, 1 / 48, 1 / 4])
    result = perplexity(lm, ["A B D", "A X"])
    assert result["oov"] == 1 and result["words"] == 5 and result["sentences"] == 2
    total = sum(math.log10(x) for x in want + [5 / 12, 1 / 48, 1 / 4])
    assert result["ppl"] == pytest.approx(10 ** (-total / 7))


def test_relative_entropy_deltas_match_brute_force():
    """The entropy rise that relative-entropy pruning computes for each candidate trigram
    equals P(h) sum_w p(w|h) log10 p(w|h)/p'(w|h) with p' the model without that trigram."""
    lines = random_corpus(3, 60, ["A", "B", "C", "D"])
    kn = KneserNey.estimate(lines, ["A", "B", "C", "D"], order=3)
    keep = kn.cutoff({})
    full = kn.backoff_model(keep)
    candidates, deltas = kn.entropy_deltas(keep, 3)
    assert len(candidates) > 20
    history_logp = kn.history_log10_probs()[1]
    B = kn.num_tokens
    events = predicted(full)
    for j, delta in list(zip(candidates, deltas))[:25]:
        reduced = [k.copy() for k in keep]
        reduced[2][j] = False
        model = kn.backoff_model(reduced)
        h = int(kn.counts[2].keys[j] // B)
        hist = [kn.tokens[i] for i in (kn.counts[1].keys[h] // B, kn.counts[1].keys[h] % B)]
        kl = sum(10 ** full.log10_prob(hist, w)
                 * (full.log10_prob(hist, w) - model.log10_prob(hist, w)) for w in events)
        assert delta == pytest.approx(10 ** history_logp[h] * kl, rel=1e-6, abs=1e-12)


def test_pruning_shrinks_model_and_keeps_closure():
    lines = random_corpus(5, 400, ["A", "B", "C", "D", "E", "F", "G"])
    full, _ = estimate_kneser_ney(lines, None, 3)
    cut, _ = estimate_kneser_ney(lines, None, 3, min_counts={2: 2, 3: 3})
    pruned, _ = estimate_kneser_ney(lines, None, 3, prune_threshold=1e-4)
    assert cut.counts()[2] < full.counts()[2] and pruned.counts()[2] < full.counts()[2]
    for lm in (cut, pruned):
        entries = {n: {tuple(r) for r in lm.ngram_tokens(n)} for n in (1, 2, 3)}
        for n in (2, 3):
            for gram in entries[n]:
                assert gram[:-1] in entries[n - 1] and gram[1:] in entries[n - 1]
    # training-set perplexity gets worse as the model shrinks, but not by much here
    ppl = [perplexity(lm, lines)["ppl"] for lm in (full, pruned)]
    assert ppl[0] < ppl[1] < 1.2 * ppl[0]


def test_vocabulary_and_options():
    words = ["<eps>", "!SIL", "<UNK>", "A", "B", "#0", "<s>", "</s>", "#1"]
    assert lm_vocabulary(words) == ["<UNK>", "A", "B"]
    assert parse_min_counts(["3gram:2,4gram:3", "2:1"]) == {3: 2, 4: 3, 2: 1}
    with pytest.raises(ValueError):
        parse_min_counts(["1gram:2"])


def g_sentence_cost(g_text: str, words: dict[str, int], sentence: list[str]) -> float:
    """Cost (-ln p) of a sentence through G by the back-off walk: take the word's arc if the
    state has one, else the #0 arc; at the end the final weight, else #0."""
    arcs: dict[int, dict[int, tuple[int, float]]] = {}
    final: dict[int, float] = {}
    start = None
    for line in g_text.splitlines():
        f = line.split()
        if start is None:
            start = int(f[0])
        if len(f) >= 4:
            assert f[2] == f[3] or f[2] == str(words["#0"]) and f[3] == "0"
            arcs.setdefault(int(f[0]), {})[int(f[2])] = (int(f[1]), float(f[4]) if len(f) > 4 else 0.0)
        else:
            final[int(f[0])] = float(f[1]) if len(f) > 1 else 0.0
    state, cost, backoff = start, 0.0, words["#0"]
    for word in sentence:
        while words[word] not in arcs.get(state, {}):
            state, weight = arcs[state][backoff]
            cost += weight
        state, weight = arcs[state][words[word]]
        cost += weight
    while state not in final:
        state, weight = arcs[state][backoff]
        cost += weight
    return cost + final[state]


def write_lang(lang: Path, vocab: list[str]) -> None:
    lang.mkdir(parents=True)
    symbols = ["<eps>", "!SIL", "<UNK>", *sorted(vocab), "#0", "<s>", "</s>"]
    (lang / "words.txt").write_text("".join(f"{s} {i}\n" for i, s in enumerate(symbols)))
    (lang / "phones.txt").write_text("<eps> 0\nSIL 1\nSPN 2\nAH 3\n#0 4\n")
    (lang / "lexicon.txt").write_text("!SIL SIL\n<UNK> SPN\n" + "".join(f"{w} AH\n" for w in vocab))


def test_make_lm_end_to_end(tmp_path):
    vocab = ["A", "B", "C", "D", "E", "F", "G"]
    lines = random_corpus(11, 300, vocab[:-1])
    write_lang(tmp_path / "lang", vocab)
    (tmp_path / "text.txt").write_text("\n".join(lines[:250]) + "\n\nA Q B\n")  # blank, OOV
    (tmp_path / "valid.txt").write_text("\n".join(lines[250:]) + "\n")
    out = tmp_path / "lang_test"
    argv = ["--text", str(tmp_path / "text.txt"), "--lang-dir", str(tmp_path / "lang"),
            "--order", "3", "--out-dir", str(out), "--valid-text", str(tmp_path / "valid.txt")]
    assert make_lm.main(argv) == 0
    for name in ("lm_3gram.arpa", "G.fst", "G.fst.txt", "words.txt", "phones.txt",
                 "lexicon.txt", ".done", "log/make_lm.log"):
        assert (out / name).is_file(), name
    info = json.loads((out / ".done").read_text())
    lm = BackoffLM.read_arpa(out / "lm_3gram.arpa")
    assert info["ngram_counts"] == lm.counts() and info["oov_tokens"] == 1
    valid = [line for line in lines[250:] if line]  # blank lines are skipped
    assert info["valid"]["ppl"] == pytest.approx(perplexity(lm, valid)["ppl"], rel=1e-5)
    assert "!SIL" not in lm.token_id and "<UNK>" in lm.token_id
    assert "held-out perplexity" in (out / "log/make_lm.log").read_text()

    # G: word ids of words.txt, and the same sentence probabilities as the ARPA model
    words = {s: int(i) for s, i in (l.split() for l in (out / "words.txt").read_text().splitlines())}
    g_text = (out / "G.fst.txt").read_text()
    assert max(int(l.split()[2]) for l in g_text.splitlines() if len(l.split()) >= 4) \
        <= words["#0"]
    for sentence in ["A B C", "G G A", "", "F E D C B A"]:
        logp = lm.log10_probs(lm.encode([sentence]).stream)
        want = -math.log(10) * float(np.nansum(logp))
        assert g_sentence_cost(g_text, words, sentence.split()) == pytest.approx(want, abs=1e-3)
    import kaldifst
    assert kaldifst.StdVectorFst.read(str(out / "G.fst")).num_states == info["G"]["states"]

    # done: skipped; changed options: rebuilt
    stamp = (out / "lm_3gram.arpa").stat().st_mtime_ns
    assert make_lm.main(argv) == 0
    assert (out / "lm_3gram.arpa").stat().st_mtime_ns == stamp
    assert make_lm.main(argv + ["--min-count", "3gram:2"]) == 0
    pruned = BackoffLM.read_arpa(out / "lm_3gram.arpa")
    assert pruned.counts()[2] < lm.counts()[2]
    assert json.loads((out / ".done").read_text())["settings"]["min_counts"] == {"3": 2}


@pytest.mark.parametrize("order", [1, 2])
def test_make_lm_low_orders_of_the_lm_strengths(tmp_path, order):
    """Stage 9's LM strengths, unpruned: a unigram (its G one state with a loop per word and
    </s> as the final weight, no back-off arc) and a bigram, each with the ARPA's sentence
    costs through G."""
    vocab = ["A", "B", "C", "D", "E", "F", "G"]
    write_lang(tmp_path / "lang", vocab)
    (tmp_path / "text.txt").write_text("\n".join(random_corpus(5, 200, vocab[:-1])) + "\n")
    out = tmp_path / f"lang_test_{order}gram"
    argv = ["--text", str(tmp_path / "text.txt"), "--lang-dir", str(tmp_path / "lang"),
            "--order", str(order), "--out-dir", str(out)]
    assert make_lm.main(argv) == 0
    arpa = out / f"lm_{order}gram.arpa"
    lm = BackoffLM.read_arpa(arpa)
    assert lm.order == order and lm.counts()[0] == len(vocab) + 3  # the words, <UNK>, <s>, </s>
    top = arpa.read_text().split(f"\\{order}-grams:\n")[1].split("\n\n")[0].splitlines()
    assert all(len(line.split("\t")) == 2 for line in top)  # the top order has no back-off weights
    words = {s: int(i) for s, i in (l.split() for l in (out / "words.txt").read_text().splitlines())}
    g_text = (out / "G.fst.txt").read_text()
    backoff = [l for l in g_text.splitlines() if len(l.split()) >= 4 and l.split()[2] == str(words["#0"])]
    info = json.loads((out / ".done").read_text())
    if order == 1:
        assert info["G"] == {"states": 1, "arcs": len(vocab) + 1, "final_states": 1} and not backoff
    else:
        assert len(backoff) == info["G"]["states"] - 1  # every state but the unigram one backs off
    for sentence in ["A B C", "G G A", "", "F E D C B A"]:
        want = -math.log(10) * float(np.nansum(lm.log10_probs(lm.encode([sentence]).stream)))
        assert g_sentence_cost(g_text, words, sentence.split()) == pytest.approx(want, abs=1e-3)
    stamp = arpa.stat().st_mtime_ns
    assert make_lm.main(argv) == 0 and arpa.stat().st_mtime_ns == stamp  # up to date: skipped
