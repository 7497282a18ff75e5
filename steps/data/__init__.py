"""Speech data on lhotse's terms: manifests, features and the alignment timeline.

- manifests.py   the file names of a corpus' manifests and cuts, which every stage agrees on,
                 and a part's transcripts from its supervisions
- fbank.py       kaldi-native-fbank as a lhotse FeatureExtractor, computed a batch at a time
- utterances.py  the cuts of a part loaded with features and transcripts for alignment
- ali_times.py   the 10 ms frame grid of alignment items on the recording's timeline
- output_frames.py  a subsampling model's outputs on that grid: how many, which frame
                    each reads, the tokens that none reads
- hdf5_readers.py   lhotse's cached HDF5 readers closed now and then, so that a pass over
                    many cuts' arrays does not grow with the corpus

May import lhotse, kaldi-native-fbank, numpy, torch and steps.core.
"""
