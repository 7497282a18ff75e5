"""The training core every trainer runs on (the acoustic model, the teacher LMs, the
compression student, the alignment model): the loop over epochs and batches, one update per
batch, the learning-rate schedules, the training state with every RNG (exact resumption),
checkpoint averaging, logging, TensorBoard and progress. A trainer keeps what is its own:
its batches, its loss, what it evaluates and what it saves.

- loop.py       Loop: epochs of batches, the update (clipping, non-finite steps skipped),
                running figures, TensorBoard and progress, saving and resuming its state
- schedule.py   learning-rate schedules (warm-up and cosine, newbob, decay per epoch) and
                AdamW with weight decay on the matrices only
- state.py      RNG states (torch, numpy, python, CUDA, a trainer's generators) and reading a
                training state back only when it was saved for the same inputs and settings
- averaging.py  checkpoint averaging (the element-wise mean of the last epochs' weights)

May import torch, numpy, tqdm and steps.core; never k2.
"""
