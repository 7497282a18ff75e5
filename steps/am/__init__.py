"""The acoustic model: its structure, data, losses, and analyses of its encoder.

- model.py          the multi-head TDNN-F acoustic model (main senone head, auxiliary heads)
- data.py           training data: the cut cache, targets expanded to frames, sampler,
                    SpecAugment
- losses.py         the objectives (cross-entropy, label interpolation, KD per level)
- scorer.py         loading any decodable checkpoint as a frame scorer (log-posteriors)
- dmoe.py           the Deep Mixture of Experts layer (Eigen, Ranzato & Sutskever 2013)
- expert_usage.py   which experts each phone's frames use, gate entropy, the heatmap
- comparison.py     the encoder comparison's measurements and table

May import torch, numpy, lhotse, matplotlib, tensorboard and steps.core, steps.data,
steps.kd.soft_labels, steps.tree, steps.scoring; never k2 and never a program.
"""
