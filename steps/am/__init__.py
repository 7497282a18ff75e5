"""Building blocks and analyses of the acoustic model's encoder.

- dmoe.py           the Deep Mixture of Experts layer (Eigen, Ranzato & Sutskever 2013):
                    experts, softmax gates, top-k routing, the stage-one assignment cap
- expert_usage.py   which experts each phone's frames use (per layer and jointly), gate
                    entropy, the heatmap; and the encoder comparison's measurements

Modules here may import torch, numpy, matplotlib and the library modules of `steps`
(steps.config, steps.am_data, steps.am_model, steps.tree, steps.score, steps.checkpoint);
never a program (steps/<verb>.py).
"""
