#!/usr/bin/env bash
# lm2am recipe on the embedded synthetic corpus: distilling language models into a hybrid
# DNN-HMM acoustic model (Lee & Chang, 2021). Every stage leaves its outputs on disk and is
# skipped when they are already there (a stage interrupted half-way is redone).
#
#   ./run.sh                               # everything, default size (~2.2 h of speech)
#   ./run.sh --config conf/tiny.conf       # the small version (~7.5 min of speech)
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
senone_realign=true       # retrain the alignment model on senones and realign (exp/tri1)
realign_config=conf/realign.yaml
bpe_vocab_size=500
lm_config_suffix=         # teacher LM configs: conf/lm_<level>${lm_config_suffix}.yaml
am_override=              # YAML merged over every conf/am_<system>.yaml (conf/am_tiny.yaml)
systems="baseline li aux_senone aux_phone aux_subword hier"  # acoustic models of stages 8-10
seeds="1 2 3"
plm_teacher=              # a local transformers checkpoint dir: adds the plm level and system aux_plm
plm_finetune_epochs=0     # fine-tune that model on the LM text first (exp/lm_plm/model)
plm_finetune_max_lines=0  # lines of LM text it is fine-tuned on (0: all)
plm_kind=auto             # auto | causal | masked
decode_opts="--beam 10 --lattice-beam 6 --max-active 7000"  # steps.decode (k2 lattice search); WER has converged here (BENCHMARKS.md)
rescore_lm_order=4        # lattice rescoring with an n-gram of this order from the same text (0: none)

help_message="Usage: $0 [options]
  --stage N --stop-stage M   run stages N..M (default 1..10)
  --config FILE              settings file, e.g. conf/tiny.conf (read first; options win)
  --nj N                     parallel jobs (default $nj)
  --seeds \"1 2 3\"            training seeds of every system
  --systems \"baseline hier\"  acoustic-model systems of stages 8-10 (default: all six)
  --force true               redo stages even if their outputs exist
  --plm-teacher DIR          a pre-trained causal/masked LM (transformers save_pretrained dir)
                             as the teacher of the plm level; adds system aux_plm
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

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  log "Stage 1: sentences and synthetic speech -> data/text, data/audio, data/manifests"
  python -m local.synth --config $data_config --out-dir data --nj $nj --cmd "$train_cmd" "${force_opt[@]}"
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
  # Each program skips what is up to date with its inputs and settings (--force redoes it).
  python -m steps.train_mono --config $mono_config \
    --cuts data/fbank/${corpus}_cuts_train.jsonl.gz --lang-dir data/lang --exp-dir exp/mono "${force_opt[@]}"
  for part in train dev test; do
    python -m steps.align --model exp/mono/final.pt --topology exp/mono/topology.json \
      --cuts data/fbank/${corpus}_cuts_$part.jsonl.gz --lang-dir data/lang --part $part \
      --out-dir exp/mono_ali --nj $nj --cmd "$train_cmd" "${force_opt[@]}"
  done
  for part in dev test; do
    python -m steps.score_alignment --cuts exp/mono_ali/cuts_$part.jsonl.gz \
      --out exp/mono_ali/quality_$part.json
  done
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  log "Stage 5: decision tree -> exp/tree; senone alignments -> exp/tri_ali (realigned by exp/tri1)"
  python -m steps.acc_tree_stats --cuts exp/mono_ali/cuts_train.jsonl.gz --lang-dir data/lang \
    --topology exp/mono/topology.json --out-dir exp/tree --nj $nj --cmd "$train_cmd" "${force_opt[@]}"
  python -m steps.build_tree --stats-dir exp/tree --lang-dir data/lang --topology exp/mono/topology.json \
    --num-leaves $num_leaves --thresh $tree_thresh --out-dir exp/tree "${force_opt[@]}"
  # With senone_realign the converted alignments are an intermediate (exp/tri_conv): the
  # alignment model is retrained on senones and realigns every part into exp/tri_ali.
  conv_dir=exp/tri_ali
  if $senone_realign; then conv_dir=exp/tri_conv; fi
  for part in train dev test; do
    python -m steps.convert_ali --cuts exp/mono_ali/cuts_$part.jsonl.gz --tree exp/tree \
      --lang-dir data/lang --topology exp/mono/topology.json --out-dir $conv_dir --nj $nj \
      --cmd "$train_cmd" "${force_opt[@]}"
  done
  if $senone_realign; then
    python -m steps.realign_senones --config $realign_config --cuts-dir exp/tri_conv \
      --parts train dev test --init-model exp/mono/final.pt --tree exp/tree --lang-dir data/lang \
      --topology exp/mono/topology.json --model-dir exp/tri1 --out-dir exp/tri_ali \
      --num-threads $nj "${force_opt[@]}"
  fi
fi

levels="senone phone subword"
bpe_model=data/lang_bpe_$bpe_vocab_size/bpe.model
teacher_dirs="exp/lm_senone exp/lm_phone exp/lm_subword"
if [ -n "$plm_teacher" ]; then teacher_dirs="$teacher_dirs exp/lm_plm"; fi

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  log "Stage 6: teacher LMs on senones, phones and subwords -> exp/lm_{senone,phone,subword}"
  for level in $levels; do
    python -m steps.lm_tokens --level $level --lm-text data/text/lm_text.txt --lang-dir data/lang \
      --tree exp/tree --topology exp/mono/topology.json --bpe-model $bpe_model \
      --pron-counts exp/mono_ali/pron_counts_train.txt --out-dir exp/lm_$level "${force_opt[@]}"
  done
  # Three small models: one thread each, side by side.
  for level in $levels; do
    echo "python -m steps.train_lm --level $level --config conf/lm_$level$lm_config_suffix.yaml" \
         "--data-dir exp/lm_$level --exp-dir exp/lm_$level --num-threads 1 --resume ${force_opt[*]}"
  done > exp/lm_jobs.txt
  $train_cmd --max-jobs-run 3 JOB=1:3 exp/log/train_lm.JOB.log utils/run_line.sh exp/lm_jobs.txt JOB
  for level in $levels; do log "$level: $(grep -E "^(teacher|bigram)_ppl" exp/lm_$level/ppl | tr "\n" " ")"; done
  if [ -n "$plm_teacher" ]; then
    log "plm teacher from $plm_teacher -> exp/lm_plm (its pieces are the plm units)"
    python -m steps.prepare_plm_teacher --model "$plm_teacher" --kind $plm_kind \
      --lm-text data/text/lm_text.txt --words data/lang/words.txt --out-dir exp/lm_plm \
      --finetune-epochs $plm_finetune_epochs --finetune-max-lines $plm_finetune_max_lines \
      --num-threads 1 "${force_opt[@]}"
    log "plm: $(grep -E "^teacher_ppl" exp/lm_plm/ppl | tr "\n" " ")"
  fi
fi

if [ $stage -le 7 ] && [ $stop_stage -ge 7 ]; then
  log "Stage 7: teacher soft labels of the training cuts -> data/kd/${corpus}_cuts_train.jsonl.gz"
  python -m steps.dump_soft_labels --cuts exp/tri_ali/cuts_train.jsonl.gz --lang-dir data/lang \
    --tree exp/tree --topology exp/mono/topology.json --bpe-model $bpe_model \
    --teachers $teacher_dirs --top-k 8 --temperature 1.0 \
    --out-dir data/kd --corpus $corpus --nj $nj --cmd "$train_cmd" "${force_opt[@]}"
fi

if [ -n "$plm_teacher" ]; then
  case " $systems " in *" aux_plm "*) ;; *) systems="$systems aux_plm" ;; esac
fi

if [ $stage -le 8 ] && [ $stop_stage -ge 8 ]; then
  log "Stage 8: acoustic models ($systems) x seeds ($seeds) -> exp/am_<system>_s<seed>"
  override_opt=${am_override:+--override $am_override}
  for system in $systems; do
    for seed in $seeds; do
      echo "python -m steps.train_am --config conf/am_$system.yaml $override_opt" \
           "--cuts data/kd/${corpus}_cuts_train.jsonl.gz --dev-cuts exp/tri_ali/cuts_dev.jsonl.gz" \
           "--exp-dir exp/am_${system}_s$seed --seed $seed --num-threads 1 --resume ${force_opt[*]}"
    done
  done > exp/am_jobs.txt
  num_runs=$(wc -l < exp/am_jobs.txt)
  # One thread per run, $nj runs at a time.
  $train_cmd --max-jobs-run $nj JOB=1:$num_runs exp/log/train_am.JOB.log \
    utils/run_line.sh exp/am_jobs.txt JOB
fi

if [ $stage -le 9 ] && [ $stop_stage -ge 9 ]; then
  log "Stage 9: decoding graph -> exp/graph; decoding dev (LM-weight sweep) and test -> exp/am_*/decode_*"
  python -m steps.mkgraph --lang-dir data/lang --lm-dir data/lang_test --tree exp/tree \
    --topology exp/mono/topology.json --out-dir exp/graph "${force_opt[@]}"
  rescore_opts=
  if [ "$rescore_lm_order" -gt 0 ]; then
    # The bigger LM of the rescoring pass: the same text, higher order, no count cut-off.
    python -m steps.make_lm --text data/text/lm_text.txt --lang-dir data/lang --order $rescore_lm_order \
      --out-dir data/lang_rescore "${force_opt[@]}"
    rescore_opts="--rescore-lm data/lang_rescore/lm_${rescore_lm_order}gram.arpa --graph-lm data/lang_test/lm_3gram.arpa"
  fi
  for system in $systems; do
    for seed in $seeds; do
      dir=exp/am_${system}_s$seed
      echo "python -m steps.decode --model $dir/final.pt --graph exp/graph" \
           "--cuts data/fbank/${corpus}_cuts_dev.jsonl.gz --lang-dir data/lang --out-dir $dir/decode_dev" \
           "--num-threads 1 $decode_opts $rescore_opts ${force_opt[*]} &&" \
           "python -m steps.decode --model $dir/final.pt --graph exp/graph" \
           "--cuts data/fbank/${corpus}_cuts_test.jsonl.gz --lang-dir data/lang --out-dir $dir/decode_test" \
           "--lm-weight-from $dir/decode_dev --num-threads 1 $decode_opts $rescore_opts ${force_opt[*]}"
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
fi
