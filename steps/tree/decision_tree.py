"""The phonetic decision tree that ties triphone HMM states into senones (Kaldi's
ContextDependency / EventMap, written as a readable text file).

    tree = Tree.load("exp/tree")                 # the directory steps.build_tree wrote
    tree.num_senones                             # senone ids are 0 .. num_senones-1
    tree.senone(left, centre, right, state)      # one triphone state -> its senone
    tree.lookup(lefts, centres, rights, states)  # the same over numpy arrays

Phone ids are those of phones.txt, 0 (<eps>) is the utterance edge, `state` is the index
of the HMM state within its phone (0-based). Every (centre, state) belongs to exactly one
root; a root's subtree asks yes/no questions about the left context (key L), the right
context (key R), the state index (key S) or, in a root shared by several phones, the
centre phone (key C) until it reaches a leaf, which holds a senone id. Several leaves may
hold the same senone (post-merging joins leaves that are not siblings). Any triphone gets
an answer, seen in training or not: a context phone that no question names answers "no"
to every question. Roots that are not split (silence, spoken noise) never look at the
contexts, so those phones are context-independent.

Text form (tree.txt; ` #` starts a comment, indentation is for people only):

    lm2am-tree 1
    num-senones 5
    silence SIL                      # the phone that is transparent for contexts
    phone 0 <eps>                    # phone id -> symbol, ids 0..max
    phone 1 SIL
    ...
    question EDGE phone <eps>        # name kind values (phone symbols or state indices)
    question c3 phone AA AE AH
    question s0 state 0
    root AH states 0 1 2 node 4      # the phones and states a root covers, its top node
      node 4 S s0 yes 5 no 6         # node id, key, question, yes child, no child
        node 5 leaf 3                # node id, senone id
        node 6 L c3 yes 7 no 8
          ...

Length: the tree, its vectorised lookup and its text form (reader and writer) are one
file format and one data structure; kept together so the format is defined once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from steps.core.atomic import write_text

FORMAT_TAG = "lm2am-tree"
FORMAT_VERSION = 1
KEYS = ("L", "R", "S", "C")  # left context, right context, HMM-state index, centre phone
EDGE = 0  # phone id of the utterance edge (<eps>)


@dataclass(frozen=True)
class Question:
    """A set of values for one kind of key: phones (asked of L or R) or state indices (S)."""

    name: str
    kind: str  # "phone" | "state"
    values: tuple[int, ...]

    def __post_init__(self):
        if self.kind not in ("phone", "state"):
            raise ValueError(f"question {self.name}: kind must be phone or state, got {self.kind!r}")


@dataclass
class Root:
    """The (phone, state) pairs that share one subtree."""

    phones: tuple[int, ...]
    states: tuple[int, ...]
    node: int


@dataclass
class Node:
    """A split node (key in KEYS, question index, yes/no child ids) or a leaf (key None)."""

    key: str | None = None
    question: int = -1
    yes: int = -1
    no: int = -1
    senone: int = -1

    @property
    def is_leaf(self) -> bool:
        return self.key is None


@dataclass
class Tree:
    phones: list[str]  # symbol of each phone id 0..max (the real phones of phones.txt)
    silence: int  # the optional silence phone: transparent for contexts
    questions: list[Question]
    roots: list[Root]
    nodes: list[Node]
    num_senones: int
    _root_of: dict[tuple[int, int], int] = field(init=False, repr=False)
    _sets: list[frozenset[int]] = field(init=False, repr=False)
    _arrays: dict | None = field(init=False, repr=False, default=None)
    _memo: dict[tuple[int, int, int, int], int] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self):
        names = [q.name for q in self.questions]
        if len(set(names)) != len(names):
            raise ValueError(f"question names repeat: {sorted(n for n in set(names) if names.count(n) > 1)[:5]}")
        self._sets = [frozenset(q.values) for q in self.questions]
        self._root_of = {}
        for index, root in enumerate(self.roots):
            for phone in root.phones:
                for state in root.states:
                    if (phone, state) in self._root_of:
                        raise ValueError(f"phone {self._name(phone)} state {state} is in two roots")
                    self._root_of[(phone, state)] = index
        self._check()

    # ------------------------------------------------------------------ lookups

    def senone(self, left: int, centre: int, right: int, state: int) -> int:
        """The senone of HMM state `state` of phone `centre` between `left` and `right`."""
        key = (left, centre, right, state)
        found = self._memo.get(key)
        if found is None:
            node = self.nodes[self.roots[self.root_index(centre, state)].node]
            context = {"L": left, "R": right, "S": state, "C": centre}
            while node.key is not None:
                value = context[node.key]
                node = self.nodes[node.yes if value in self._sets[node.question] else node.no]
            found = self._memo[key] = node.senone
        return found

    def lookup(self, left, centre, right, state) -> np.ndarray:
        """senone() over arrays of equal shape (vectorised descent, one step per level)."""
        a = self._lookup_arrays()
        left, centre, right, state = (np.asarray(x, dtype=np.int64) for x in (left, centre, right, state))
        shape = np.broadcast_shapes(left.shape, centre.shape, right.shape, state.shape)
        left, centre, right, state = (np.broadcast_to(x, shape).ravel() for x in (left, centre, right, state))
        for name, values in (("left", left), ("centre", centre), ("right", right)):
            if values.size and (values.min() < 0 or values.max() >= len(self.phones)):
                raise ValueError(f"{name} phone id out of range 0..{len(self.phones) - 1}")
        if state.size and (state.min() < 0 or state.max() >= a["root_node"].shape[1]):
            bad = state[(state < 0) | (state >= a["root_node"].shape[1])][0]
            raise ValueError(f"no root for state index {bad}")
        node = a["root_node"][centre, state]
        if (node < 0).any():
            i = int(np.flatnonzero(node < 0)[0])
            raise ValueError(f"no root for phone {self._name(int(centre[i]))} state {int(state[i])}")
        context = np.stack([left, right, state, centre])
        while True:
            key = a["key"][node]
            inner = np.flatnonzero(key >= 0)
            if len(inner) == 0:
                break
            n = node[inner]
            answer = a["member"][a["question"][n], context[key[inner], inner]]
            node[inner] = np.where(answer, a["yes"][n], a["no"][n])
        return a["senone"][node].astype(np.int32).reshape(shape)

    def has_root(self, centre: int, state: int) -> bool:
        return (centre, state) in self._root_of

    def root_index(self, centre: int, state: int) -> int:
        try:
            return self._root_of[(centre, state)]
        except KeyError:
            raise KeyError(f"no root for phone {self._name(centre)} state {state}") from None

    def senones_of(self, phone: int, state: int) -> list[int]:
        """Every senone that (phone, state) can map to, in id order."""
        root = self.roots[self.root_index(phone, state)]
        found = set()
        for node_id in self._subtree(root.node):
            node = self.nodes[node_id]
            if node.is_leaf:
                found.add(node.senone)
        return sorted(found)

    # ------------------------------------------------------------------ descriptions

    def describe_senones(self) -> list[str]:
        """A readable description of every senone: `PHONE.sSTATES.{L:...,R:...}` for each
        leaf that holds it (several leaves joined by ` | `)."""
        parts: list[list[str]] = [[] for _ in range(self.num_senones)]
        for root in self.roots:
            for node_id, path in self._leaf_paths(root.node, []):
                parts[self.nodes[node_id].senone].append(self._describe_leaf(root, path))
        return [" | ".join(p) if p else "(unused)" for p in parts]

    def context_universe(self) -> tuple[int, ...]:
        """The values a context can take: the edge and every phone but the silence."""
        return tuple(p for p in range(len(self.phones)) if p != self.silence)

    def _describe_leaf(self, root: Root, path: list[tuple[int, bool]]) -> str:
        universe = {"L": set(self.context_universe()), "R": set(self.context_universe()),
                    "S": set(root.states), "C": set(root.phones)}
        allowed = {k: set(v) for k, v in universe.items()}
        names: dict[str, list[str]] = {"L": [], "R": [], "S": [], "C": []}
        for node_id, answer in path:
            node = self.nodes[node_id]
            q = self.questions[node.question]
            allowed[node.key] = allowed[node.key] & set(q.values) if answer else allowed[node.key] - set(q.values)
            names[node.key].append(q.name if answer else f"!{q.name}")
        phones = "+".join(self._name(p) for p in sorted(allowed["C"]))
        states = ",".join(str(s) for s in sorted(allowed["S"]))
        contexts = []
        for key in ("L", "R"):
            if allowed[key] == universe[key]:
                continue
            inside, outside = sorted(allowed[key]), sorted(universe[key] - allowed[key])
            if len(inside) <= 6:
                text = "{" + ",".join(self._name(p) for p in inside) + "}"
            elif len(outside) <= 6:
                text = "!{" + ",".join(self._name(p) for p in outside) + "}"
            else:
                text = "&".join(names[key])
            contexts.append(f"{key}:{text}")
        return f"{phones}.s{states}" + (".{" + ",".join(contexts) + "}" if contexts else "")

    def _name(self, phone: int) -> str:
        return self.phones[phone] if 0 <= phone < len(self.phones) else f"#{phone}"

    # ------------------------------------------------------------------ text form

    def to_text(self) -> str:
        lines = [
            "# lm2am decision tree: read it with steps.tree.decision_tree.Tree.load (format in steps/tree/decision_tree.py)",
            f"{FORMAT_TAG} {FORMAT_VERSION}",
            f"num-senones {self.num_senones}",
            f"silence {self.phones[self.silence]}",
        ]
        lines += [f"phone {i} {symbol}" for i, symbol in enumerate(self.phones)]
        for q in self.questions:
            values = [self.phones[v] for v in q.values] if q.kind == "phone" else [str(v) for v in q.values]
            lines.append(f"question {q.name} {q.kind} {' '.join(values)}")
        for root in self.roots:
            phones = " ".join(self.phones[p] for p in root.phones)
            states = " ".join(str(s) for s in root.states)
            lines.append(f"root {phones} states {states} node {root.node}")
            stack = [(root.node, 1)]
            while stack:
                node_id, depth = stack.pop()
                node = self.nodes[node_id]
                indent = "  " * depth
                if node.is_leaf:
                    lines.append(f"{indent}node {node_id} leaf {node.senone}")
                else:
                    q = self.questions[node.question]
                    line = f"{indent}node {node_id} {node.key} {q.name} yes {node.yes} no {node.no}"
                    if len(q.values) <= 8:  # a reminder for people; the reader drops comments
                        shown = [self.phones[v] if q.kind == "phone" else str(v) for v in q.values]
                        line += f"  # {node.key} in {{{','.join(shown)}}}?"
                    lines.append(line)
                    stack += [(node.no, depth + 1), (node.yes, depth + 1)]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_text(cls, text: str, source: str = "<text>") -> "Tree":
        # Length: one parser of the text format, section by section, each error with its line
        header: dict[str, str] = {}
        phone_table: dict[int, str] = {}
        question_lines, root_lines, node_lines = [], [], []
        for number, raw in enumerate(text.splitlines(), 1):
            line = [] if raw.lstrip().startswith("#") else raw.split(" #", 1)[0].split()
            if not line:
                continue
            where = f"{source}:{number}"
            word = line[0]
            if word in (FORMAT_TAG, "num-senones", "silence"):
                if len(line) != 2:
                    raise ValueError(f"{where}: expected '{word} VALUE'")
                header[word] = line[1]
            elif word == "phone":
                if len(line) != 3 or not line[1].isdigit():
                    raise ValueError(f"{where}: expected 'phone ID SYMBOL'")
                phone_table[int(line[1])] = line[2]
            elif word == "question":
                question_lines.append((where, line))
            elif word == "root":
                root_lines.append((where, line))
            elif word == "node":
                node_lines.append((where, line))
            else:
                raise ValueError(f"{where}: unknown line {raw.strip()!r}")
        if header.get(FORMAT_TAG) != str(FORMAT_VERSION):
            raise ValueError(f"{source}: not an {FORMAT_TAG} version {FORMAT_VERSION} file")
        for key in ("num-senones", "silence"):
            if key not in header:
                raise ValueError(f"{source}: missing '{key}' line")
        if sorted(phone_table) != list(range(len(phone_table))):
            raise ValueError(f"{source}: phone ids must be 0..n-1 without gaps")
        phones = [phone_table[i] for i in range(len(phone_table))]
        phone_id = {p: i for i, p in enumerate(phones)}

        def to_phone(symbol: str, where: str) -> int:
            if symbol not in phone_id:
                raise ValueError(f"{where}: unknown phone {symbol!r}")
            return phone_id[symbol]

        questions, question_id = [], {}
        for where, line in question_lines:
            if len(line) < 3:
                raise ValueError(f"{where}: expected 'question NAME KIND VALUES...'")
            name, kind, values = line[1], line[2], line[3:]
            if kind == "phone":
                ids = tuple(to_phone(v, where) for v in values)
            elif kind == "state":
                if not all(v.isdigit() for v in values):
                    raise ValueError(f"{where}: state values must be integers")
                ids = tuple(int(v) for v in values)
            else:
                raise ValueError(f"{where}: question kind must be phone or state, got {kind!r}")
            question_id[name] = len(questions)
            questions.append(Question(name, kind, ids))
        roots = []
        for where, line in root_lines:
            try:
                s, n = line.index("states"), line.index("node")
                roots.append(Root(tuple(to_phone(p, where) for p in line[1:s]),
                                  tuple(int(v) for v in line[s + 1:n]), int(line[n + 1])))
            except (ValueError, IndexError) as e:
                raise ValueError(f"{where}: expected 'root PHONES... states STATES... node ID' ({e})") from None
        nodes_by_id: dict[int, Node] = {}
        for where, line in node_lines:
            try:
                node_id = int(line[1])
                if line[2] == "leaf" and len(line) == 4:
                    node = Node(senone=int(line[3]))
                elif line[2] in KEYS and len(line) == 8 and line[4] == "yes" and line[6] == "no":
                    if line[3] not in question_id:
                        raise ValueError(f"unknown question {line[3]!r}")
                    node = Node(line[2], question_id[line[3]], int(line[5]), int(line[7]))
                else:
                    raise ValueError("bad node line")
            except (ValueError, IndexError) as e:
                raise ValueError(f"{where}: expected 'node ID leaf SENONE' or "
                                 f"'node ID KEY QUESTION yes ID no ID' ({e})") from None
            if node_id in nodes_by_id:
                raise ValueError(f"{where}: node {node_id} defined twice")
            nodes_by_id[node_id] = node
        if sorted(nodes_by_id) != list(range(len(nodes_by_id))):
            raise ValueError(f"{source}: node ids must be 0..n-1 without gaps")
        nodes = [nodes_by_id[i] for i in range(len(nodes_by_id))]
        return cls(phones, to_phone(header["silence"], source), questions, roots, nodes,
                   int(header["num-senones"]))

    def save(self, directory: str | Path) -> Path:
        """Writes <directory>/tree.txt (atomically); returns its path."""

        path = Path(directory) / "tree.txt"
        write_text(path, self.to_text())
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Tree":
        """From a directory written by steps.build_tree (its tree.txt) or a tree.txt file."""
        path = Path(path)
        if path.is_dir():
            path = path / "tree.txt"
        return cls.from_text(path.read_text(), str(path))

    # ------------------------------------------------------------------ internals

    def _lookup_arrays(self) -> dict:
        if self._arrays is not None:
            return self._arrays
        max_state = max((s for r in self.roots for s in r.states), default=0)
        width = max(len(self.phones), max_state + 1)
        member = np.zeros((max(1, len(self.questions)), width), dtype=bool)
        for i, q in enumerate(self.questions):
            member[i, [v for v in q.values if 0 <= v < width]] = True
        root_node = np.full((len(self.phones), max_state + 1), -1, dtype=np.int64)
        for root in self.roots:
            for phone in root.phones:
                root_node[phone, list(root.states)] = root.node
        arrays = dict(
            key=np.array([-1 if n.key is None else KEYS.index(n.key) for n in self.nodes], dtype=np.int64),
            question=np.array([max(n.question, 0) for n in self.nodes], dtype=np.int64),
            yes=np.array([n.yes for n in self.nodes], dtype=np.int64),
            no=np.array([n.no for n in self.nodes], dtype=np.int64),
            senone=np.array([n.senone for n in self.nodes], dtype=np.int64),
            member=member, root_node=root_node)
        self._arrays = arrays
        return arrays

    def _subtree(self, node_id: int) -> Iterator[int]:
        stack = [node_id]
        while stack:
            n = stack.pop()
            yield n
            node = self.nodes[n]
            if not node.is_leaf:
                stack += [node.no, node.yes]

    def _leaf_paths(self, node_id: int, path: list[tuple[int, bool]]
                    ) -> Iterator[tuple[int, list[tuple[int, bool]]]]:
        stack = [(node_id, path)]
        while stack:
            n, p = stack.pop()
            node = self.nodes[n]
            if node.is_leaf:
                yield n, p
            else:
                stack += [(node.no, p + [(n, False)]), (node.yes, p + [(n, True)])]

    def _check(self) -> None:
        """Structure: children exist, every node reachable from exactly one parent or root,
        keys fit question kinds, senones in range."""
        if not 0 <= self.silence < len(self.phones):
            raise ValueError(f"silence phone id {self.silence} out of range")
        parents = [0] * len(self.nodes)
        for root in self.roots:
            if not 0 <= root.node < len(self.nodes):
                raise ValueError(f"root of {[self._name(p) for p in root.phones]}: no node {root.node}")
            parents[root.node] += 1
        for i, node in enumerate(self.nodes):
            if node.is_leaf:
                if not 0 <= node.senone < self.num_senones:
                    raise ValueError(f"node {i}: senone {node.senone} outside 0..{self.num_senones - 1}")
                continue
            if node.key not in KEYS or not 0 <= node.question < len(self.questions):
                raise ValueError(f"node {i}: bad key or question")
            wanted = "state" if node.key == "S" else "phone"
            if self.questions[node.question].kind != wanted:
                raise ValueError(f"node {i}: key {node.key} asks a {self.questions[node.question].kind} question")
            for child in (node.yes, node.no):
                if not 0 <= child < len(self.nodes):
                    raise ValueError(f"node {i}: child {child} does not exist")
                parents[child] += 1
        if any(p != 1 for p in parents):
            bad = next(i for i, p in enumerate(parents) if p != 1)
            raise ValueError(f"node {bad} has {parents[bad]} parents (must be 1: the nodes must form trees)")


def leaves_in_order(tree_roots: Sequence[Root], nodes: Sequence[Node]) -> list[int]:
    """Leaf node ids, root by root, yes-branch first (the order senone ids are given in)."""
    order = []
    for root in tree_roots:
        stack = [root.node]
        while stack:
            n = stack.pop()
            if nodes[n].is_leaf:
                order.append(n)
            else:
                stack += [nodes[n].no, nodes[n].yes]
    return order
