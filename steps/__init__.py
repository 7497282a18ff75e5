"""lm2am: distill language models into a hybrid DNN-HMM acoustic model, Kaldi-style.

The package holds the library and one program per recipe stage (`python -m steps.X`).
"""

__version__ = "0.1.0"
