"""The hybrid acoustic model: the network, its objectives, its data and its training loop
(the library of the programs steps.train_am and steps.compare_encoders).

- model.py          the multi-head model (encoder, main and auxiliary heads: structure
                    only), its checkpoints and FrameScorer
- layers.py         its layers: input splicing, TDNN-F, BLSTM, conformer, output heads
- dmoe.py           the Deep Mixture of Experts layer (Eigen, Ranzato & Sutskever 2013):
                    experts, softmax gates, top-k routing, the stage-one assignment cap
- losses.py         the objectives (baseline, li, aux, hier), their loss weights (λ, β, α)
                    and OBJECTIVES, the one table of what each objective reads
- config.py         the training config (sections model, loss, data, train), composed from
                    YAML files; the translation of checkpoints of the older layout
- cut_store.py      the training cuts' arrays, checked once, in memory and in a disk cache
- targets.py        frame targets at the output rate: senone labels, soft labels per frame
- data.py           batches: AmBatch, AmDataset, the bucketing sampler, the data config
- spec_augment.py   time and frequency masking
- sizes.py          output sizes (senones, each head's vocabulary), senone counts, priors.txt
- distributed.py    DDP: which process this is, all-reduce, gather, barrier
- priors.py         senone priors from the model's averaged posteriors (nnet3-am-adjust-priors)
- training.py       its part of the shared loop (steps.train): data, the loss of a batch, the
                    optimiser, dev evaluation and newbob at epoch ends, final.pt
- scorer.py         the FrameScorer protocol and `load_scorer` for every checkpoint kind
- expert_usage.py   which experts each phone's frames use (per layer and jointly), gate
                    entropy, the heatmap
- comparison.py     the encoder comparison's measurements (accuracies, WER intervals, timing)

May import torch, numpy, lhotse, matplotlib, each other and the library modules of `steps`
(steps.core, steps.train, steps.data, steps.hmm.align_model for its scorer,
steps.kd.soft_labels, steps.tree, steps.scoring); never k2 and never a program (steps/<verb>.py).
"""
