"""LibriSpeech (egs/librispeech/s5). One entry point, prepare_librispeech; the command line
is `python -m local.librispeech` (__main__.py).

    prepare.py      prepare_librispeech: the recipe's manifests from lhotse's recipe, checked
    text.py         part names, the recipe's parts, text normalisation
    lm_text.py      the LM text data/text/lm_text.txt (python -m local.librispeech.lm_text)
    download_lm.py  LibriSpeech's LM corpus, lexicon and ARPA LMs (python -m local.librispeech.download_lm)
"""

from local.librispeech.prepare import prepare_librispeech

__all__ = ["prepare_librispeech"]
