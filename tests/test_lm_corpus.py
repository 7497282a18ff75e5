"""Token corpora on disk (steps.lm.corpus): the text a sentence at a time, the memmapped
index made beside it or from it, and the bigram anchor counted a chunk at a time."""

import os

import numpy as np
import pytest

from steps.lm import corpus as corpus_module
from steps.lm.bigram import Bigram
from steps.lm.corpus import CorpusWriter, TokenCorpus, corpus_files
from steps.lm.tokens import read_corpus

SENTENCES = [[3, 1, 4], [1, 5], [9, 2, 6, 5, 3], [5], [8, 9, 7, 9]]


def write(path, sentences):
    with CorpusWriter(path) as writer:
        for s in sentences:
            writer.add(s)
    return writer


def test_written_corpus_reads_back_as_the_text_does(tmp_path):
    path = tmp_path / "train.txt"
    writer = write(path, SENTENCES)
    assert (writer.sentences, writer.tokens, writer.max_length) == (5, 15, 5)
    assert path.read_text() == "3 1 4\n1 5\n9 2 6 5 3\n5\n8 9 7 9\n"
    corpus = TokenCorpus.open(path)
    assert len(corpus) == 5 and corpus.num_tokens == 15
    assert [c.tolist() for c in corpus] == SENTENCES == [s.tolist() for s in read_corpus(path)]
    assert corpus[2].dtype == np.int64
    assert corpus.lengths.tolist() == [3, 2, 5, 1, 4]
    assert (corpus.info["min_id"], corpus.info["max_id"], corpus.info["max_length"]) == (1, 9, 5)


def test_index_is_made_from_a_text_and_remade_when_it_changes(tmp_path):
    path = tmp_path / "valid.txt"
    path.write_text("7 7\n\n2  4 6\n")  # an empty line and a double space: as read_corpus reads them
    assert [c.tolist() for c in TokenCorpus.open(path)] == [[7, 7], [2, 4, 6]]
    path.write_text("1\n2 3\n4 5 6\n")
    os.utime(path, ns=(1, 1))  # a new mtime, whatever the clock's resolution
    assert [c.tolist() for c in TokenCorpus.open(path)] == [[1], [2, 3], [4, 5, 6]]


def test_a_line_that_is_not_ids_is_a_clear_error(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("1 2\nTHE CAT\n")
    with pytest.raises(ValueError, match="not a token corpus"):
        TokenCorpus.open(path)


def test_an_interrupted_writer_leaves_no_corpus(tmp_path):
    path = tmp_path / "train.txt"
    with pytest.raises(RuntimeError):
        with CorpusWriter(path) as writer:
            writer.add([1, 2])
            raise RuntimeError("interrupted")
    assert not any(p.exists() for p in corpus_files(path))
    assert not list(tmp_path.iterdir())


def test_ids_outside_the_vocabulary_are_found_by_line(tmp_path):
    path = tmp_path / "train.txt"
    write(path, [[1, 2], [0, 3], [2, 7, 1], [4], [9, 9]])
    assert TokenCorpus.open(path).sentences_outside(5) == (2, 3)
    assert TokenCorpus.open(path).sentences_outside(10) == (0, None)


def test_bigram_counted_in_chunks_equals_the_one_counted_at_once(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    sentences = [rng.integers(0, 6, rng.integers(1, 9)).tolist() for _ in range(200)]
    path = tmp_path / "train.txt"
    write(path, sentences)
    at_once = Bigram.train(sentences, 6)
    monkeypatch.setattr(corpus_module, "CHUNK_TOKENS", 7)  # dozens of chunks
    corpus = TokenCorpus.open(path)
    assert len(list(corpus.chunks())) > 50
    chunked = Bigram.train(corpus, 6)
    assert chunked.counts == at_once.counts
    assert chunked.discount == at_once.discount
    np.testing.assert_array_equal(chunked.context_totals, at_once.context_totals)
    np.testing.assert_array_equal(chunked.continuation, at_once.continuation)
    valid = sentences[:20]
    assert chunked.log_likelihood(valid, True) == at_once.log_likelihood(valid, True)
