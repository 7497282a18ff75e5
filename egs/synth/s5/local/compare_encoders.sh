#!/usr/bin/env bash
# The encoder comparison of issue 21 (Eigen et al. 2013's comparison set) at equal
# parameter count: a DNN (TDNN-F), a single expert, concatenated experts and the DMoE
# (conf/encoders/<encoder>.yaml, sized for conf/am_tiny.yaml), each trained with the
# baseline and the hier objective (conf/am_<objective>.yaml), decoded on dev (LM weight
# chosen there) and test as run.sh stages 8-9 do. Then steps.compare_encoders measures
# every run (monophone and senone frame accuracy on dev, dev/test WER with 95% bootstrap
# intervals, parameters, CPU time per training step) into exp/encoders/compare.md, and
# utils/show_experts.py draws which experts each phone uses for the DMoE runs.
#
#   local/compare_encoders.sh                 # after ./run.sh --config conf/tiny.conf (stages 1-9)
#   local/compare_encoders.sh --encoders "dnn dmoe" --objectives baseline --seeds "1 2 3"
set -euo pipefail

seeds="1"                       # every run is trained once per seed
nj=2
corpus=synth
encoders="dnn single concat dmoe"
objectives="baseline hier"
am_override=conf/am_tiny.yaml   # the encoder configs are sized for it
decode_opts="--beam 10 --lattice-beam 4 --max-active 2000"  # as conf/tiny.conf
timing_steps=20                 # training steps timed per run for the CPU time per step
force=false

. ./cmd.sh
. ./path.sh
. utils/log.sh
. utils/exp_dirs.sh
. utils/job_line.sh
. utils/parse_options.sh
ali=$(senone_ali_dir)  # stage 5's senone alignments

[ -f exp/graph/.done ] || { echo "$0: no exp/graph; run ./run.sh --stop-stage 9 first" >&2; exit 1; }
force_opt=()
if $force; then force_opt=(--force); fi
read -r -a decode_args <<< "$decode_opts"  # a knob of several options
dir=exp/encoders
mkdir -p $dir/log

runs=
for objective in $objectives; do
  for encoder in $encoders; do
    for seed in $seeds; do
      [ -f conf/encoders/$encoder.yaml ] || { echo "$0: no conf/encoders/$encoder.yaml" >&2; exit 1; }
      run=$dir/am_${objective}_${encoder}_s$seed
      runs="$runs $run"
      # one job: train, decode dev (the sweep), decode test at dev's weight
      echo "$(job_line python -m steps.train_am --config conf/am_$objective.yaml --override $am_override \
                --override conf/encoders/$encoder.yaml --cuts data/kd/${corpus}_cuts_train.jsonl.gz \
                --dev-cuts data/kd/${corpus}_cuts_dev.jsonl.gz --senone-counts $ali/senone_counts.txt \
                --exp-dir $run --seed $seed --num-threads 1 --data-cache exp/am_data_cache --resume \
                "${force_opt[@]}")" \
           "&& $(job_line python -m steps.decode --model $run/final.pt --graph exp/graph \
                   --cuts data/fbank/${corpus}_cuts_dev.jsonl.gz --lang-dir data/lang --out-dir $run/decode_dev \
                   --num-threads 1 "${decode_args[@]}" "${force_opt[@]}")" \
           "&& $(job_line python -m steps.decode --model $run/final.pt --graph exp/graph \
                   --cuts data/fbank/${corpus}_cuts_test.jsonl.gz --lang-dir data/lang --out-dir $run/decode_test \
                   --lm-weight-from $run/decode_dev --num-threads 1 "${decode_args[@]}" "${force_opt[@]}")"
    done
  done
done > $dir/jobs.txt
num_runs=$(wc -l < $dir/jobs.txt)
log "Training and decoding $num_runs runs, $nj at a time -> $dir"
$train_cmd --max-jobs-run $nj JOB=1:$num_runs $dir/log/run.JOB.log \
  utils/run_line.sh $dir/jobs.txt JOB

log "Measuring the runs -> $dir/compare.md"
python -m steps.compare_encoders --runs $runs --tree exp/tree \
  --dev-cuts $ali/cuts_dev.jsonl.gz --train-cuts data/kd/${corpus}_cuts_train.jsonl.gz \
  --data-cache exp/am_data_cache --timing-steps $timing_steps --out $dir/compare.md
cat $dir/compare.md

for objective in $objectives; do
  run=$dir/am_${objective}_dmoe_s${seeds%% *}
  [ -f $run/final.pt ] || continue
  log "Expert usage of $run -> $run/experts.png"
  utils/show_experts.py --model $run/final.pt --tree exp/tree \
    --cuts $ali/cuts_dev.jsonl.gz --out $run/experts.png | tee $run/experts.txt
done
