"""lm2am: distill language models into a hybrid DNN-HMM acoustic model, Kaldi-style.

The package holds the library and one program per recipe stage (`python -m steps.X`).

MAY_IMPORT is the library's layering: which of the other packages (steps/<idea>/) each one
may import, a whole package ("lm") or one module of it ("kd.soft_labels"); "*" is any. The
packages form a DAG with core at the bottom. Each package's "May import" paragraph names
the same ones; tests/test_layout.py holds both to the code's imports (lazy ones and module
names given to importlib too). Programs may import any package but toy.
"""

__version__ = "0.1.0"

MAY_IMPORT: dict[str, tuple[str, ...]] = {
    "core": (),
    "data": ("core",),
    "train": ("core",),
    "lang": ("core",),
    "scoring": ("core",),
    "hmm": ("core", "train", "data", "lang"),
    "tree": ("core", "data", "lang", "hmm"),
    "graph": ("core", "lang", "hmm", "tree"),
    "lm": ("core", "train", "lang", "hmm", "tree", "scoring"),
    "kd": ("core", "data", "lang", "hmm", "lm"),
    "am": ("core", "train", "data", "hmm.align_model", "kd.soft_labels", "tree", "scoring"),
    "compress": ("core", "train", "data", "am", "scoring"),
    "decoding": ("core", "data", "lang", "graph", "lm", "am.scorer", "scoring"),
    "toy": ("*",),
}

# packages whose modules run where torch has no k2 build: neither they nor anything they
# import (through steps) imports k2
WITHOUT_K2 = ("am", "compress", "kd", "train")
