"""Building blocks and analyses of the acoustic model's encoder.

- dmoe.py           the Deep Mixture of Experts layer (Eigen, Ranzato & Sutskever 2013):
                    experts, softmax gates, top-k routing, the stage-one assignment cap
- expert_usage.py   which experts each phone's frames use (per layer and jointly), gate
                    entropy, the heatmap; and the encoder comparison's measurements

Modules here may import torch, numpy, matplotlib and the library modules of `steps`
(steps.core.config, steps.am.data, steps.am.model, steps.tree.decision_tree, steps.score, steps.core.checkpoint);
never a program (steps/<verb>.py).
"""
