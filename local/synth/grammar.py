"""The synth corpus' sentence grammar: its file format, a parser and a weighted random
generator.

The grammar (grammar/*.grammar beside this module, with the word lists
grammar/lists/*.txt) covers a dozen domains: home control, calendar, travel, weather,
numbers, dates and times, music, shopping, cooking, messages and calls, navigation,
restaurants, general questions and everyday statements. Numbers are spelled out.
grammar/optional/<rule>.grammar holds rules a data config adds to the start rule
(text.extra_start_rules): optional/discourse.grammar has dependencies longer than a
trigram sees: a name, city, food or device mentioned again later in the sentence ($x
bindings), number agreement across a relative clause, a request whose slot comes after
words any request takes, two requests of one domain.

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
    $x= item                        binds what the next item (a word, rule, list, group or
                                    optional) makes in this sentence to the variable x
    $x                              those words again (coreference, repetition): the
                                    dependencies beyond a few words that an n-gram cannot see
Past text.max_depth nested rules, the generator only takes the alternatives that end
soonest, so recursion always terminates.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

WORD_RE = re.compile(r"^[a-z][a-z']*$")
TOKEN_RE = re.compile(r"\s*(<[a-z0-9_]+>|@[a-z0-9_]+|\$[a-z0-9_]+=?|/[0-9.]+/|[()\[\]|;=]|[0-9]*\.?[0-9]+"
                      r"|[a-z][a-z']*)")
# The grammar the corpus is made from (text.grammar_dir overrides it).
GRAMMAR_DIR = Path(__file__).resolve().with_name("grammar")


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
class Bind:
    name: str
    item: object  # Word, Ref, Alt (a list or group) or Optional_


@dataclass
class Use:
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
    """Rules by name (each an Alt), with the minimal expansion height of every rule.
    extra_start: rule -> weight, alternatives added to the start rule."""

    def __init__(self, rules: dict[str, Alt], start: str = "sentence",
                 extra_start: dict[str, float] | None = None):
        if extra_start:
            if start not in rules:
                raise GrammarError(f"no start rule <{start}>")
            base = rules[start]
            rules = {**rules, start: Alt(base.weights + list(extra_start.values()),
                                         base.options + [[Ref(name)] for name in extra_start])}
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
            if isinstance(item, Bind):
                yield from visit(item.item)
            elif isinstance(item, Optional_):
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
            if isinstance(item, Bind):
                item = item.item
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
        self._expand_ref(self.start, rng, 0, max_depth, out, {})
        return out

    def _expand_ref(self, name, rng, depth, max_depth, out, bound):
        self._expand_alt(self.rules[name], rng, depth + 1, max_depth, out, bound)

    def _expand_alt(self, alt: Alt, rng, depth, max_depth, out, bound: dict[str, list[str]]):
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
            self._expand_item(item, rng, depth, max_depth, out, bound)

    def _expand_item(self, item, rng, depth, max_depth, out, bound):
        if isinstance(item, Word):
            out.append(item.text)
        elif isinstance(item, Ref):
            self._expand_ref(item.name, rng, depth, max_depth, out, bound)
        elif isinstance(item, Alt):
            self._expand_alt(item, rng, depth, max_depth, out, bound)
        elif isinstance(item, Optional_):
            # Draw even past the depth limit so that the random stream stays aligned.
            take = rng.random() < item.prob
            if take and depth <= max_depth:
                self._expand_alt(item.body, rng, depth, max_depth, out, bound)
        elif isinstance(item, Bind):
            start = len(out)
            self._expand_item(item.item, rng, depth, max_depth, out, bound)
            bound[item.name] = out[start:]
        elif isinstance(item, Use):
            if item.name not in bound:
                raise GrammarError(f"${item.name} is used before anything is bound to it")
            out.extend(bound[item.name])


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
            if not self.peek().startswith("$"):
                items.append(self.sequence_item())
                continue
            token = self.take()
            if not token.endswith("="):
                items.append(Use(token[1:]))
                continue
            if self.peek() is None or self.peek() in stop:
                raise GrammarError(f"{self.source}: {token} binds nothing")
            items.append(Bind(token[1:-1], self.sequence_item()))
        if not items:
            raise GrammarError(f"{self.source}: empty alternative near "
                               f"{' '.join(self.tokens[max(0, self.pos - 8):self.pos + 1])!r}")
        return items

    def sequence_item(self):
        """One item: a group, an optional, a rule, a list or a word."""
        token = self.take()
        if token == "(":
            group = self.alternatives(stop={")"})
            self.take(")")
            return group
        if token == "[":
            prob = 0.5
            if re.fullmatch(r"[0-9]*\.?[0-9]+", self.peek() or ""):
                prob = float(self.take())
            body = self.alternatives(stop={"]"})
            self.take("]")
            return Optional_(prob, body)
        if token.startswith("<"):
            return Ref(token[1:-1])
        if token.startswith("@"):
            name = token[1:]
            if name not in self.lists:
                raise GrammarError(f"{self.source}: no word list lists/{name}.txt")
            return self.lists[name]
        if WORD_RE.match(token):
            return Word(token)
        raise GrammarError(f"{self.source}: unexpected {token!r}")


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


def load_grammar(directory: str | Path, extra_start: dict[str, float] | None = None) -> Grammar:
    """All *.grammar files of directory (one rule namespace) and its lists/*.txt; extra_start:
    rule -> weight, each rule read from optional/<rule>.grammar and added to the start rule
    (its words join the vocabulary only then)."""
    directory = Path(directory)
    lists = {p.stem: _read_list(p) for p in sorted((directory / "lists").glob("*.txt"))}
    rules: dict[str, Alt] = {}
    files = sorted(directory.glob("*.grammar"))
    if not files:
        raise GrammarError(f"{directory}: no *.grammar files")
    for name in extra_start or {}:
        path = directory / "optional" / f"{name}.grammar"
        if not path.is_file():
            raise GrammarError(f"extra start rule <{name}>: no {path}")
        files.append(path)
    for path in files:
        parsed = _Parser(_tokenize(path.read_text(), str(path)), str(path), lists).rules()
        for name in parsed:
            if name in rules:
                raise GrammarError(f"{path}: rule <{name}> already defined in another file")
        rules.update(parsed)
    return Grammar(rules, extra_start=extra_start)
