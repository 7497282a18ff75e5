#!/usr/bin/env bash
# lm2am recipe on LibriSpeech: distilling language models into a hybrid DNN-HMM acoustic
# model (Lee & Chang, 2021). The same stages and the same shared steps/ programs as
# egs/synth/s5; only local/ (data preparation) and conf/ (sizes) are LibriSpeech's own.
# Every stage leaves its outputs on disk and is skipped when they are already there.
#
#   ./run.sh --corpus-dir /data/LibriSpeech --lm-dir /data/librispeech_lm   # train-clean-100, CPU sizes
#   ./run.sh --config conf/gpu.conf --corpus-dir /data/LibriSpeech          # 960 h, GPU sizes
#   ./run.sh --download true                     # fetch corpus and LM resources into download/
#   ./run.sh --stage 4 --stop-stage 5            # a slice
# What a full run needs (disk, time, GPUs) and what it makes: README.md.
set -euo pipefail

stage=1
stop_stage=10
nj=2                      # parallel CPU jobs
force=false               # redo stages whose outputs exist
corpus=librispeech
corpus_dir=download/LibriSpeech   # holds train-clean-100/, dev-clean/, ... (lhotse's layout)
lm_dir=download/lm        # librispeech-lm-norm.txt(.gz), librispeech-lexicon.txt, used if there
download=false            # fetch missing LibriSpeech parts and the LM resources (openslr.org)
train_parts="train-clean-100"     # "train-clean-100 train-clean-360 train-other-500": 960 h
extra_parts="dev-other test-other"  # evaluated as dev_other, test_other besides dev, test
check_audio=header        # header: open every file's header; decode: read every file through
lm_fraction=0.02          # share of librispeech-lm-norm's 40 M sentences in the LM text
speed_perturb=false       # add 0.9x and 1.1x copies of the training cuts
num_prons=2               # pronunciations kept per word
mono_config=conf/mono.yaml
mono_subset=4000          # shortest training utterances of the flat-start model (0: all)
num_leaves=2000           # senone budget of the decision tree
tree_thresh=300           # minimum log-likelihood gain of a split (Kaldi's build-tree --thresh)
senone_realign=true       # retrain the alignment model on senones and realign (exp/tri1)
realign_config=conf/realign.yaml
bpe_vocab_size=500
lm_order=3                # decoding n-gram LM
lm_min_count="3gram:2"
lm_prune=1e-7             # relative-entropy pruning of the decoding LM (as openslr's tgmed)
lm_config_suffix=         # teacher LM configs: conf/lm_<level>${lm_config_suffix}.yaml
am_config_suffix=         # AM configs: conf/am_<system>${am_config_suffix}.yaml
am_override=              # YAML merged over every AM config (e.g. conf/am_tiny.yaml)
am_nproc=1                # processes per AM training: > 1 runs it under torchrun (DDP)
am_parallel=4             # AM trainings side by side (CPU sizes: ~12 GB of memory each)
am_threads=4              # torch threads of each AM training
device=cpu                # device of the training programs (mono, teachers, soft labels, AMs)
seeds="1 2 3"
decode_opts="--beam 10 --lattice-beam 6 --max-active 7000"  # steps.decode (k2 lattice search), as the synth recipe

help_message="Usage: $0 [options]
  --stage N --stop-stage M   run stages N..M (default 1..10)
  --config FILE              settings file, e.g. conf/gpu.conf (read first; options win)
  --corpus-dir DIR           the LibriSpeech directory (default $corpus_dir)
  --lm-dir DIR               librispeech-lm-norm.txt.gz and librispeech-lexicon.txt (default $lm_dir)
  --download true            download what is missing from openslr.org
  --train-parts \"...\"        LibriSpeech training parts (default $train_parts)
  --extra-parts \"...\"        extra evaluation parts (default $extra_parts)
  --nj N                     parallel jobs (default $nj)
  --device cuda              train on a GPU
  --seeds \"1 2 3\"            training seeds of every system
  --force true               redo stages even if their outputs exist
Stages: 1 data, 2 features, 3 lang, 4 monophone alignment, 5 tree and senone alignment,
        6 teacher LMs, 7 soft labels, 8 acoustic models, 9 decoding, 10 report"

. ./cmd.sh
. ./path.sh
. utils/log.sh
run_options="${*@Q}"  # recorded in RESULTS.md, quoted as typed
. utils/parse_options.sh

# One run at a time in this directory: a second one says who runs (pid, host, command,
# since when) and stops; the lock of a run that was killed is taken over.
utils/lock.py acquire . --pid $$ --command "$0 $run_options"
trap 'utils/lock.py release . --pid $$' EXIT

force_opt=()
if $force; then force_opt=(--force); fi
# The recipe's parts: train, dev (dev-clean), test (test-clean) and the extra ones.
eval_parts="dev test"
for part in $extra_parts; do eval_parts="$eval_parts ${part//-/_}"; done
parts="train $eval_parts"
lm_norm=$lm_dir/librispeech-lm-norm.txt.gz
[ -f $lm_dir/librispeech-lm-norm.txt ] && lm_norm=$lm_dir/librispeech-lm-norm.txt
lexicon=$lm_dir/librispeech-lexicon.txt

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  log "Stage 1: LibriSpeech ($train_parts; dev-clean test-clean $extra_parts) -> data/manifests;" \
      "LM text -> data/text/lm_text.txt"
  download_opt=()
  if $download; then
    download_opt=(--download)
    python -m local.librispeech.download_lm --out-dir $lm_dir
  fi
  python -m local.librispeech --corpus-dir $corpus_dir --out-dir data/manifests \
    --train-parts $train_parts --extra-parts $extra_parts --check-audio $check_audio --nj $nj \
    "${download_opt[@]}" "${force_opt[@]}"
  python -m local.librispeech.lm_text --lm-norm $lm_norm --manifest-dir data/manifests --out-dir data/text \
    --fraction $lm_fraction "${force_opt[@]}"
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  log "Stage 2: fbank features -> data/fbank/${corpus}_cuts_{${parts// /,}}.jsonl.gz"
  sp_opt=()
  if $speed_perturb; then sp_opt=(--speed-perturb); fi
  python -m steps.compute_fbank --manifest-dir data/manifests --corpus $corpus --parts $parts \
    --out-dir data/fbank --nj $nj --cmd "$train_cmd" "${sp_opt[@]}" "${force_opt[@]}"
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  log "Stage 3: lexicon and lang -> data/lang; sentencepiece -> data/lang_bpe_$bpe_vocab_size;" \
      "${lm_order}-gram G -> data/lang_test"
  lexicon_opt=()
  if [ -f $lexicon ]; then
    lexicon_opt=(--extra-lexicon $lexicon)
    log "lexicon: CMUdict plus $lexicon"
  else
    log "lexicon: CMUdict only (no $lexicon)"
  fi
  python -m steps.prepare_lang --manifest-dir data/manifests --corpus $corpus --parts $parts \
    --lm-text data/text/lm_text.txt --lang-dir data/lang --num-prons $num_prons \
    "${lexicon_opt[@]}" "${force_opt[@]}"
  python -m steps.train_bpe --lm-text data/text/lm_text.txt --lang-dir data/lang_bpe_$bpe_vocab_size \
    --vocab-size $bpe_vocab_size "${force_opt[@]}"
  python -m steps.make_lm --text data/text/lm_text.txt --lang-dir data/lang --order $lm_order \
    --min-count $lm_min_count --prune $lm_prune --out-dir data/lang_test "${force_opt[@]}"
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  log "Stage 4: flat-start monophone alignment model -> exp/mono; alignments -> exp/mono_ali"
  mono_cuts=data/fbank/${corpus}_cuts_train.jsonl.gz
  if [ $mono_subset -gt 0 ]; then
    # Kaldi's LibriSpeech recipe starts from the shortest utterances too.
    python local/subset_cuts.py --cuts $mono_cuts --num $mono_subset \
      --out data/fbank/${corpus}_cuts_train_${mono_subset}short.jsonl.gz
    mono_cuts=data/fbank/${corpus}_cuts_train_${mono_subset}short.jsonl.gz
  fi
  if $force || [ ! -f exp/mono/.done ]; then
    $gpu_cmd exp/mono/log/train_mono.job.log \
      python -m steps.train_mono --config $mono_config --cuts $mono_cuts --lang-dir data/lang \
        --exp-dir exp/mono --device $device
  fi
  for part in $parts; do
    if $force || [ ! -f exp/mono_ali/.$part/.done ]; then
      python -m steps.align --model exp/mono/final.pt --topology exp/mono/topology.json \
        --cuts data/fbank/${corpus}_cuts_$part.jsonl.gz --lang-dir data/lang --part $part \
        --out-dir exp/mono_ali --nj $nj --cmd "$train_cmd"
    fi
  done
  # Boundary accuracy where reference word alignments came with the corpus (see README.md).
  for part in $eval_parts; do
    if grep -qs "^$part " data/manifests/${corpus}_word_alignments.txt; then
      python -m steps.score_alignment --cuts exp/mono_ali/cuts_$part.jsonl.gz \
        --out exp/mono_ali/quality_$part.json
    else
      log "$part: no reference word alignments, boundary accuracy not measured"
    fi
  done
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  log "Stage 5: decision tree -> exp/tree; senone alignments -> exp/tri_ali (realigned by exp/tri1)"
  if $force || [ ! -f exp/tree/.done ]; then
    python -m steps.acc_tree_stats --cuts exp/mono_ali/cuts_train.jsonl.gz --lang-dir data/lang \
      --topology exp/mono/topology.json --out-dir exp/tree --nj $nj --cmd "$train_cmd"
    python -m steps.build_tree --stats-dir exp/tree --lang-dir data/lang \
      --topology exp/mono/topology.json --num-leaves $num_leaves --thresh $tree_thresh --out-dir exp/tree
  fi
  # With senone_realign the converted alignments are an intermediate (exp/tri_conv): the
  # alignment model is retrained on senones and realigns every part into exp/tri_ali.
  conv_dir=exp/tri_ali
  if $senone_realign; then conv_dir=exp/tri_conv; fi
  for part in $parts; do
    python -m steps.convert_ali --cuts exp/mono_ali/cuts_$part.jsonl.gz --tree exp/tree \
      --lang-dir data/lang --topology exp/mono/topology.json --out-dir $conv_dir --nj $nj \
      --cmd "$train_cmd"
  done
  if $senone_realign; then
    python -m steps.realign_senones --config $realign_config --cuts-dir exp/tri_conv \
      --parts $parts --init-model exp/mono/final.pt --tree exp/tree --lang-dir data/lang \
      --topology exp/mono/topology.json --model-dir exp/tri1 --out-dir exp/tri_ali \
      --device $device "${force_opt[@]}"
  fi
fi

levels="senone phone subword"
bpe_model=data/lang_bpe_$bpe_vocab_size/bpe.model

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  log "Stage 6: teacher LMs on senones, phones and subwords -> exp/lm_{senone,phone,subword}"
  for level in $levels; do
    python -m steps.lm_tokens --level $level --lm-text data/text/lm_text.txt --lang-dir data/lang \
      --tree exp/tree --topology exp/mono/topology.json --bpe-model $bpe_model \
      --pron-counts exp/mono_ali/pron_counts_train.txt --out-dir exp/lm_$level
  done
  for level in $levels; do
    echo "python -m steps.train_lm --level $level --config conf/lm_$level$lm_config_suffix.yaml" \
         "--data-dir exp/lm_$level --exp-dir exp/lm_$level --device $device --num-threads 1 --resume ${force_opt[*]}"
  done > exp/lm_jobs.txt
  $gpu_cmd --max-jobs-run 3 JOB=1:3 exp/log/train_lm.JOB.log utils/run_line.sh exp/lm_jobs.txt JOB
  for level in $levels; do log "$level: $(grep -E "^(teacher|bigram)_ppl" exp/lm_$level/ppl | tr "\n" " ")"; done
fi

if [ $stage -le 7 ] && [ $stop_stage -ge 7 ]; then
  log "Stage 7: teacher soft labels of the training cuts -> data/kd/${corpus}_cuts_train.jsonl.gz"
  python -m steps.dump_soft_labels --cuts exp/tri_ali/cuts_train.jsonl.gz --lang-dir data/lang \
    --tree exp/tree --topology exp/mono/topology.json --bpe-model $bpe_model \
    --teachers exp/lm_senone exp/lm_phone exp/lm_subword --top-k 8 --temperature 1.0 \
    --out-dir data/kd --corpus $corpus --device $device --nj $nj --cmd "$gpu_cmd"
fi

systems="baseline li aux_senone aux_phone aux_subword hier"

if [ $stage -le 8 ] && [ $stop_stage -ge 8 ]; then
  log "Stage 8: acoustic models ($systems) x seeds ($seeds) -> exp/am_<system>_s<seed>"
  override_opt=${am_override:+--override $am_override}
  run_index=0
  for system in $systems; do
    for seed in $seeds; do
      run_index=$((run_index + 1))
      launcher="python"
      if [ $am_nproc -gt 1 ]; then
        # DDP (steps/train_am.py init_world): one rendezvous port per run, so that runs
        # sharing a node do not collide. Underscore options: torch 1.13 and 2.x.
        launcher="torchrun --nnodes 1 --nproc_per_node $am_nproc --master_port $((29500 + run_index))"
      fi
      echo "$launcher -m steps.train_am --config conf/am_$system$am_config_suffix.yaml $override_opt" \
           "--cuts data/kd/${corpus}_cuts_train.jsonl.gz --dev-cuts exp/tri_ali/cuts_dev.jsonl.gz" \
           "--exp-dir exp/am_${system}_s$seed --seed $seed --device $device --num-threads $am_threads" \
           "--resume ${force_opt[*]}"
    done
  done > exp/am_jobs.txt
  num_runs=$(wc -l < exp/am_jobs.txt)
  $gpu_cmd --max-jobs-run $am_parallel --num-threads $am_threads JOB=1:$num_runs exp/log/train_am.JOB.log \
    utils/run_line.sh exp/am_jobs.txt JOB
fi

if [ $stage -le 9 ] && [ $stop_stage -ge 9 ]; then
  log "Stage 9: decoding graph -> exp/graph; decoding dev (LM-weight sweep) and${eval_parts#dev}" \
      "-> exp/am_*/decode_*"
  python -m steps.mkgraph --lang-dir data/lang --lm-dir data/lang_test --tree exp/tree \
    --topology exp/mono/topology.json --out-dir exp/graph "${force_opt[@]}"
  for system in $systems; do
    for seed in $seeds; do
      dir=exp/am_${system}_s$seed
      line="python -m steps.decode --model $dir/final.pt --graph exp/graph"
      line="$line --cuts data/fbank/${corpus}_cuts_dev.jsonl.gz --lang-dir data/lang --out-dir $dir/decode_dev"
      line="$line --num-threads 1 $decode_opts ${force_opt[*]}"
      for part in ${eval_parts#dev}; do  # the LM weight chosen on dev
        line="$line && python -m steps.decode --model $dir/final.pt --graph exp/graph"
        line="$line --cuts data/fbank/${corpus}_cuts_$part.jsonl.gz --lang-dir data/lang --out-dir $dir/decode_$part"
        line="$line --lm-weight-from $dir/decode_dev --num-threads 1 $decode_opts ${force_opt[*]}"
      done
      echo "$line"
    done
  done > exp/decode_jobs.txt
  num_runs=$(wc -l < exp/decode_jobs.txt)
  $decode_cmd --max-jobs-run $nj JOB=1:$num_runs exp/log/decode.JOB.log \
    utils/run_line.sh exp/decode_jobs.txt JOB
fi

if [ $stage -le 10 ] && [ $stop_stage -ge 10 ]; then
  log "Stage 10: results table -> RESULTS.md"
  python -m steps.report --exp-dir exp --systems $systems --seeds $seeds \
    --config-files ${parse_options_configs:-} --options="$run_options" --out RESULTS.md
  cat RESULTS.md
  for part in ${eval_parts#dev test}; do
    log "$part (not in the table): $(grep -h WER exp/am_*_s*/decode_$part/wer 2>/dev/null | wc -l) decodes," \
        "WERs in exp/am_<system>_s<seed>/decode_$part/wer"
  done
fi
