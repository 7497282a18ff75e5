"""The embedded synth corpus (egs/synth/s5): generated sentences spoken by espeak-ng, with
noise and true word and phone boundaries. One entry point, prepare_synth; the command
line is `python -m local.synth` (__main__.py).

    prepare.py     prepare_synth: text, audio and manifests per part, skipped when done
    sentences.py   the text: transcripts and the LM corpus (grammar.py, grammar/)
    voices.py      speakers (accent x variant, rate, pitch) and how they are set
    render.py      one utterance: speech, level, padding, noise; its manifest entries
    boundaries.py  true word and phone boundaries from espeak's events and silences
    noise.py       white, pink, brown, hum and babble noise
    espeak.py      the ctypes binding to libespeak-ng.so.1
    config.py      the data configuration (conf/data_*.yaml)
"""

from local.synth.prepare import prepare_synth

__all__ = ["prepare_synth"]
