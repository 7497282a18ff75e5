#!/usr/bin/env bash
# Hyperparameter sweep on dev only: every conf/tune/<system>.<variant>.yaml is merged over
# conf/am_<system>.yaml, trained into exp/tune/am_<system>.<variant>_s<seed> and decoded on
# dev; the table (exp/tune/dev_sweep.md) sets each variant beside the default run of its
# system from stage 8. Test is never decoded here: a choice made from this table is then
# run through stages 8-9 with all seeds.
#
#   local/tune_dev.sh                          # after ./run.sh --stop-stage 9
#   local/tune_dev.sh --variants "hier.flat hier.reversed" --seed 2
set -euo pipefail

seed=1
nj=2
corpus=synth
variants=             # names of conf/tune/*.yaml without .yaml (default: all of them)
am_override=conf/am_newbob.yaml  # as in run.sh (conf/am_tiny.yaml for a smoke run)
decode_opts="--beam 10 --lattice-beam 6 --max-active 7000"  # as in run.sh
force=false

. ./cmd.sh
. ./path.sh
. utils/log.sh
. utils/parse_options.sh

[ -f exp/graph/.done ] || { echo "$0: no exp/graph; run ./run.sh --stop-stage 9 first" >&2; exit 1; }
[ -n "$variants" ] || variants=$(cd conf/tune && ls *.yaml | sed 's/\.yaml$//')
force_opt=
if $force; then force_opt=--force; fi
override_opt=${am_override:+--override $am_override}

mkdir -p exp/tune/log
for variant in $variants; do
  system=${variant%%.*}
  [ -f conf/am_$system.yaml ] || { echo "$0: $variant: no conf/am_$system.yaml" >&2; exit 1; }
  [ -f conf/tune/$variant.yaml ] || { echo "$0: no conf/tune/$variant.yaml" >&2; exit 1; }
  dir=exp/tune/am_${variant}_s$seed
  echo "python -m steps.train_am --config conf/am_$system.yaml $override_opt" \
       "--override conf/tune/$variant.yaml --cuts data/kd/${corpus}_cuts_train.jsonl.gz" \
       "--dev-cuts data/kd/${corpus}_cuts_dev.jsonl.gz --exp-dir $dir --seed $seed --num-threads 1" \
       "--resume $force_opt &&" \
       "python -m steps.decode --model $dir/final.pt --graph exp/graph" \
       "--cuts data/fbank/${corpus}_cuts_dev.jsonl.gz --lang-dir data/lang --out-dir $dir/decode_dev" \
       "--num-threads 1 $decode_opts $force_opt"
done > exp/tune/jobs.txt
num_runs=$(wc -l < exp/tune/jobs.txt)
log "Training and decoding $num_runs variants on dev, $nj at a time -> exp/tune"
$train_cmd --max-jobs-run $nj JOB=1:$num_runs exp/tune/log/tune.JOB.log \
  utils/run_line.sh exp/tune/jobs.txt JOB

# Dev WER (LM weight chosen on dev) and dev frame accuracy of the main head.
row() {
  local name=$1 dir=$2
  local wer acc
  wer=$(awk '/%WER/ {print $2; exit}' $dir/decode_dev/wer 2>/dev/null || true)
  acc=$(python -c "import json, sys; print(f'{100 * json.load(open(sys.argv[1]))[\"final_dev\"][\"acc_main\"]:.1f}')" \
        $dir/train_stats.json 2>/dev/null || true)
  echo "| $name | ${wer:-missing} | $(cat $dir/decode_dev/best_lm_weight 2>/dev/null || echo -) | ${acc:-missing} |"
}
{
  echo "| run (seed $seed) | dev WER | LM weight | dev frame acc. (%) |"
  echo "|---|---|---|---|"
  for system in $(for v in $variants; do echo ${v%%.*}; done | sort -u); do
    row "$system (default)" exp/am_${system}_s$seed
    for variant in $variants; do
      if [ ${variant%%.*} = $system ]; then row $variant exp/tune/am_${variant}_s$seed; fi
    done
  done
} > exp/tune/dev_sweep.md
cat exp/tune/dev_sweep.md
