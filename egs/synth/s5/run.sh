#!/usr/bin/env bash
# lm2am recipe on the embedded synthetic corpus: distilling language models into a hybrid
# DNN-HMM acoustic model (Lee & Chang, 2021). Every stage leaves its outputs on disk and is
# skipped when they are already there (a stage interrupted half-way is redone).
#
#   ./run.sh                               # everything, default size (~2.2 h of speech)
#   ./run.sh --config conf/tiny.conf       # the small version (~15 min of speech)
#   ./run.sh --stage 4 --stop-stage 5      # a slice
set -euo pipefail

stage=1
stop_stage=10
nj=2                      # parallel jobs (2 cores)
force=false               # redo stages whose outputs exist
corpus=synth
data_config=conf/data_default.yaml
mono_config=conf/mono.yaml
num_leaves=1000           # senone budget of the decision tree
tree_thresh=300           # minimum log-likelihood gain of a split (Kaldi's build-tree --thresh)
bpe_vocab_size=500
lm_config_suffix=         # teacher LM configs: conf/lm_<level>${lm_config_suffix}.yaml
am_override=              # YAML merged over every conf/am_<system>.yaml (conf/am_tiny.yaml)
seeds="1 2 3"

help_message="Usage: $0 [options]
  --stage N --stop-stage M   run stages N..M (default 1..10)
  --config FILE              settings file, e.g. conf/tiny.conf (read first; options win)
  --nj N                     parallel jobs (default $nj)
  --seeds \"1 2 3\"            training seeds of every system
  --force true               redo stages even if their outputs exist
Stages: 1 data, 2 features, 3 lang, 4 monophone alignment, 5 tree and senone alignment,
        6 teacher LMs, 7 soft labels, 8 acoustic models, 9 decoding, 10 report"

. ./cmd.sh
. ./path.sh
. utils/log.sh
. utils/parse_options.sh

force_opt=()
if $force; then force_opt=(--force); fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  log "Stage 1: sentences and synthetic speech -> data/text, data/audio, data/manifests"
  python local/make_sentences.py --config $data_config --out-dir data/text "${force_opt[@]}"
  python -m local.synth --config $data_config --text-dir data/text --out-dir data \
    --nj $nj --cmd "$train_cmd" "${force_opt[@]}"
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  log "Stage 2: fbank features -> data/fbank/${corpus}_cuts_{train,dev,test}.jsonl.gz"
  python -m steps.compute_fbank --manifest-dir data/manifests --corpus $corpus \
    --parts train dev test --out-dir data/fbank --nj $nj --cmd "$train_cmd" "${force_opt[@]}"
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  log "Stage 3: lexicon and lang -> data/lang; sentencepiece -> data/lang_bpe_$bpe_vocab_size;" \
      "trigram G -> data/lang_test"
  python -m steps.prepare_lang --manifest-dir data/manifests --corpus $corpus \
    --lm-text data/text/lm_text.txt --lang-dir data/lang --num-prons 2 "${force_opt[@]}"
  python -m steps.train_bpe --lm-text data/text/lm_text.txt --lang-dir data/lang_bpe_$bpe_vocab_size \
    --vocab-size $bpe_vocab_size "${force_opt[@]}"
  python -m steps.make_lm --text data/text/lm_text.txt --lang-dir data/lang --order 3 \
    --min-count 3gram:2 --out-dir data/lang_test "${force_opt[@]}"
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  log "Stage 4: flat-start monophone alignment model -> exp/mono; alignments -> exp/mono_ali"
  if $force || [ ! -f exp/mono/.done ]; then
    python -m steps.train_mono --config $mono_config \
      --cuts data/fbank/${corpus}_cuts_train.jsonl.gz --lang-dir data/lang --exp-dir exp/mono
  fi
  for part in train dev test; do
    if $force || [ ! -f exp/mono_ali/.$part/.done ]; then
      python -m steps.align --model exp/mono/final.pt --topology exp/mono/topology.json \
        --cuts data/fbank/${corpus}_cuts_$part.jsonl.gz --lang-dir data/lang --part $part \
        --out-dir exp/mono_ali --nj $nj --cmd "$train_cmd"
    fi
  done
  for part in dev test; do
    python -m steps.score_alignment --cuts exp/mono_ali/cuts_$part.jsonl.gz \
      --out exp/mono_ali/quality_$part.json
  done
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  log "Stage 5: decision tree -> exp/tree; senone alignments -> exp/tri_ali"
  if $force || [ ! -f exp/tree/.done ]; then
    python -m steps.acc_tree_stats --cuts exp/mono_ali/cuts_train.jsonl.gz --lang-dir data/lang \
      --topology exp/mono/topology.json --out-dir exp/tree --nj $nj --cmd "$train_cmd"
    python -m steps.build_tree --stats-dir exp/tree --lang-dir data/lang \
      --topology exp/mono/topology.json --num-leaves $num_leaves --thresh $tree_thresh --out-dir exp/tree
  fi
  for part in train dev test; do
    python -m steps.convert_ali --cuts exp/mono_ali/cuts_$part.jsonl.gz --tree exp/tree \
      --lang-dir data/lang --topology exp/mono/topology.json --out-dir exp/tri_ali --nj $nj \
      --cmd "$train_cmd"
  done
fi
