"""Compressing an acoustic model: GenDistiller-style generative layer-by-layer distillation.

What it holds (one module per idea):
- config.py       typed configs: the teacher (which model, which layers, how stored) and the
                  student (architecture, loss weights, the two training phases)
- teacher.py      teachers whose hidden layers are distilled: an acoustic model this toolkit
                  trained (steps.am.model) or a HuBERT / WavLM checkpoint in a local
                  directory (transformers), with their fingerprints and the frame mapping
- layer_cache.py  the on-disk cache of the chosen teacher layers (lhotse writers, float16 or
                  lilcom), attached to the cuts as a custom field, and its disk statistics
- losses.py       the per-layer distillation loss (L1 + cosine, DistilHuBERT's convention)
- student.py      the students: the GenDistiller generator, the DistilHuBERT-style parallel
                  baseline, the senone head; checkpoints decodable by steps.decode, and
                  SCORERS, the scorer table of every checkpoint kind
- training.py     data in memory, the two phases' optimisers, schedules and losses on the
                  shared loop (steps.train), resumable
- results.py      the comparison table (parameters, ratio, CPU RTF, dev/test WER)

May import: torch, numpy, lhotse, transformers (teacher.py only, lazily), tqdm, yaml and the
library modules of steps (steps.core, steps.train, steps.data, steps.am, steps.scoring).
Never k2: every module here runs on a machine whose torch has no k2 build.
"""
