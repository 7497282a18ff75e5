"""HMM topologies: how many states each phone has and how states are numbered.

Every phone has a left-to-right HMM with a self-loop on each state (3 states by default;
silence and spoken noise may have their own count, 1 allowed). The monophone system's
output units ("HMM-state ids") are numbered from 0, phone by phone in phone-id order:

    phone 1 (SIL):  states 0..n1-1
    phone 2 (SPN):  states n1..n1+n2-1
    ...

k2 graphs use HMM-state id + 1 as labels, because label 0 has a meaning of its own there
(epsilon or blank). There is no blank: every frame belongs to some phone's state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Topology:
    """States per phone for the phones that have HMMs (ids from phones.txt)."""

    num_states: dict[int, int]  # phone id -> number of HMM states
    first_state: dict[int, int] = field(init=False)
    state_phone: np.ndarray = field(init=False)  # HMM-state id -> phone id
    state_index: np.ndarray = field(init=False)  # HMM-state id -> state index in its phone

    def __post_init__(self):
        self.first_state = {}
        phones, indices = [], []
        next_id = 0
        for phone in sorted(self.num_states):
            n = self.num_states[phone]
            if n < 1:
                raise ValueError(f"phone {phone} has {n} HMM states; at least 1 is needed")
            self.first_state[phone] = next_id
            phones += [phone] * n
            indices += list(range(n))
            next_id += n
        self.state_phone = np.array(phones, dtype=np.int32)
        self.state_index = np.array(indices, dtype=np.int32)

    @classmethod
    def build(cls, phone_ids: list[int], states_per_phone: int = 3,
              special_states: dict[int, int] | None = None) -> "Topology":
        """states_per_phone for every phone, except those given in special_states."""
        special_states = special_states or {}
        return cls({p: special_states.get(p, states_per_phone) for p in phone_ids})

    @property
    def num_hmm_states(self) -> int:
        return len(self.state_phone)

    @property
    def phone_ids(self) -> list[int]:
        return sorted(self.num_states)

    def state_id(self, phone: int, index: int) -> int:
        if not 0 <= index < self.num_states[phone]:
            raise IndexError(f"phone {phone} has no HMM state {index}")
        return self.first_state[phone] + index

    def states_of(self, phone: int) -> range:
        first = self.first_state[phone]
        return range(first, first + self.num_states[phone])

    def to_dict(self) -> dict:
        return {"num_states": {str(p): n for p, n in self.num_states.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> "Topology":
        return cls({int(p): int(n) for p, n in data["num_states"].items()})

    def to_text(self, phones: list[str]) -> str:
        """Kaldi-like readable listing: one line per phone with its states' ids."""
        lines = ["# phone num_states hmm_state_ids"]
        for phone in self.phone_ids:
            ids = " ".join(str(s) for s in self.states_of(phone))
            lines.append(f"{phones[phone]} {self.num_states[phone]} {ids}")
        return "\n".join(lines) + "\n"
