#!/usr/bin/env bash
# lm2am recipe on the embedded synthetic corpus: distilling language models into a hybrid
# DNN-HMM acoustic model (Lee & Chang, 2021). Stage 1 is this corpus' own; stages 2-10 are
# shared with every recipe (utils/stages.sh). Every program leaves its outputs on disk and is
# skipped when they were made from the same inputs and settings (otherwise, or when
# interrupted half-way, it is redone).
#
#   ./run.sh                               # everything, default size (~1.1 h of speech), 6 systems
#   ./run.sh --config conf/paper.conf      # the full design: all nine systems, more seeds
#   ./run.sh --config conf/tiny.conf       # the small version (~7.5 min of speech)
#   ./run.sh --stage 4 --stop-stage 5      # a slice
set -euo pipefail

stage=1
stop_stage=10
nj=2                      # parallel jobs (2 cores)
force=false               # redo every program, even those up to date with their inputs
device=cpu                # device of the training programs (mono, realignment, teachers, soft labels, AMs)
corpus=synth
data_config=conf/data_default.yaml
eval_parts="dev test"     # decoded; dev chooses the LM weight
speed_perturb=false       # add 0.9x and 1.1x copies of the training cuts
num_prons=2               # pronunciations kept per word
extra_lexicon=            # a lexicon merged over CMUdict (none: the sentences use CMUdict words)
g2p=espeak                # pronunciations for the words no lexicon has (data/lang/g2p_lexicon.txt, reviewable): espeak | none
bpe_vocab_size=500
lm_order=3                # decoding n-gram LM
lm_min_count="3gram:2"
lm_prune=                 # relative-entropy pruning of the decoding LM (empty: none)
mono_config=conf/mono.yaml
mono_subset=0             # shortest training utterances of the flat-start model (0: all)
mono_threads=2            # torch threads of the flat start (0: torch's default, the machine's cores); the model changes with it
num_leaves=1000           # senone budget of the decision tree
tree_thresh=300           # minimum log-likelihood gain of a split (Kaldi's build-tree --thresh)
senone_realign=true       # retrain the alignment model on senones and realign (exp/aligner)
realign_config=conf/realign.yaml
realign_threads=2         # torch threads of the realignment (0: torch's default)
levels="senone phone subword"  # unit levels of the teacher LMs
lm_config_suffix=         # teacher LM configs: conf/lm_<level>${lm_config_suffix}.yaml
plm_teacher=              # a local transformers checkpoint dir: adds the plm level and system aux_plm
plm_finetune_epochs=0     # fine-tune that model on the LM text first (exp/lm_plm/model)
plm_finetune_max_lines=0  # lines of LM text it is fine-tuned on (0: all)
plm_kind=auto             # auto | causal | masked
top_k=8                   # soft labels: the teacher's k most likely units ...
temperature=1.0           # ... after dividing its logits by this
# AMs of stages 8-10 (*_hard: a control); the LM-strength design's key systems (RESULTS.md);
# all nine: conf/paper.conf
systems="baseline li aux_senone aux_subword hier aux_senone_hard"
seeds="1 2 3"
aa_seeds="4 5"            # more seeds of the baseline, for the report's A/A check alone (empty: its seeds split in two)
am_config_suffix=         # AM configs: conf/am_<system>${am_config_suffix}.yaml
am_override=conf/am_newbob.yaml  # YAML merged over every conf/am_<system>.yaml: newbob to convergence (tiny: conf/am_tiny.yaml)
am_nproc=1                # processes per AM training: > 1 runs it under torchrun (DDP)
am_parallel=2             # AM trainings side by side
am_threads=1              # torch threads of each AM training
decode_opts="--beam 10 --lattice-beam 6 --max-active 7000"  # steps.decode (k2 lattice search); WER has converged here (BENCHMARKS.md)
rescore_lm_order=4        # lattice rescoring with an n-gram of this order from the same text (0: none)
strength_lm_orders="1"    # LM strengths: first-pass n-gram orders decoded besides lm_order, unpruned n-grams
                          # of the LM text (exp/graph_<n>gram, exp/am_*/decode_<part>_<n>gram; empty: none);
                          # the bigram too ("1 2") in conf/paper.conf: it does not fit the 90-minute default
strength_lm_weights="3 4 5 6 7 8 9 10 11 12 13 14 15 16 17"  # their dev LM-weight sweep (weak LMs want lower weights)
list_options="strength_lm_orders"  # a list, though its default is one number (utils/parse_options.sh)

help_message="Usage: $0 [options]
  --stage N --stop-stage M   run stages N..M (default 1..10)
  --config FILE              settings file, e.g. conf/tiny.conf (read first; options win)
  --nj N                     parallel jobs (default $nj)
  --seeds \"1 2 3\"            training seeds of every system
  --aa-seeds \"4 5\"           more baseline seeds, for the report's A/A check only
  --systems \"baseline hier\"  acoustic-model systems of stages 8-10 (default: six; conf/paper.conf: all nine)
  --force true               redo every program, even those up to date with their inputs
  --plm-teacher DIR          a pre-trained causal/masked LM (transformers save_pretrained dir)
                             as the teacher of the plm level; adds system aux_plm
  --strength-lm-orders \"1 2\" first-pass LM orders decoded besides lm_order (default \"$strength_lm_orders\";
                             \"\": none); their dev LM weights: --strength-lm-weights
Stages: 1 data, 2 features, 3 lang, 4 monophone alignment, 5 tree and senone alignment,
        6 teacher LMs, 7 soft labels, 8 acoustic models, 9 decoding, 10 report"

. ./cmd.sh
. ./path.sh
. utils/log.sh
run_options="${*@Q}"  # recorded in RESULTS.md, quoted as typed
. utils/parse_options.sh
parts="train $eval_parts"
. utils/stages.sh

# One run at a time in this directory: a second one says who runs (pid, host, command,
# since when) and stops; the lock of a run that was killed is taken over.
utils/lock.py acquire . --pid $$ --command "$0 $run_options"
trap 'utils/lock.py release . --pid $$' EXIT

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  log "Stage 1: sentences and synthetic speech -> data/text, data/audio, data/manifests"
  python -m local.synth --config $data_config --out-dir data --nj $nj --cmd "$train_cmd" "${force_opt[@]}"
fi

# Stages 2-10 are every corpus' (utils/stages.sh): the same programs and folders.
run_stage 2 features      # data/fbank
run_stage 3 lang          # data/lang, data/lang_bpe_$bpe_vocab_size, data/lang_test
run_stage 4 mono          # exp/mono, exp/mono_ali
run_stage 5 tree          # exp/tree, exp/senone_conv, exp/aligner, exp/senone_ali
run_stage 6 teachers      # exp/lm_<level>
run_stage 7 soft_labels   # data/kd
run_stage 8 train         # exp/am_<system>_s<seed>
run_stage 9 decode        # exp/graph, exp/am_<system>_s<seed>/decode_<part>
run_stage 10 report       # RESULTS.md
