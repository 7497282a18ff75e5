"""Corpus preparation: one module per corpus, each writing lhotse manifests
(data/manifests/<corpus>_{recordings,supervisions}_<part>.jsonl.gz). See local/README.md."""
