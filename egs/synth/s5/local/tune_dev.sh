#!/usr/bin/env bash
# Hyperparameter sweep on dev only: every conf/tune/<system>.<variant>.yaml is merged over
# conf/am_<system>.yaml, trained into exp/tune/am_<system>.<variant>_s<seed> for each seed and
# decoded on dev as stage 9 does (the first pass and each LM strength stage 9 built, with the
# LM-weight sweep; one weight per variant and pass, chosen on all its seeds; no rescoring and
# no search-error check: the first passes alone are compared). The table
# (exp/tune/dev_sweep.md, steps.tune_report) sets each variant against its system's runs of
# stage 8 with the report's calibrated test, and the baseline's A/A check beside it. Test is
# never decoded here: a choice made from this table is then run through stages 8-9.
#
#   local/tune_dev.sh                          # after ./run.sh --stop-stage 9
#   local/tune_dev.sh --variants "hier.flat hier.reversed" --seeds "1 2 3"
set -euo pipefail

seeds="1 2 3"         # the variants' training seeds (the table compares with the same seeds of stage 8)
aa_seeds="4 5"        # the baseline's A/A seeds of stage 8, as in run.sh (empty: its seeds split in two)
strength_lm_orders="1"  # as in run.sh: LM strengths decoded where stage 9 built exp/graph_<n>gram
strength_lm_weights="3 4 5 6 7 8 9 10 11 12 13 14 15 16 17"
list_options="seeds strength_lm_orders"
nj=2
corpus=synth
variants=             # names of conf/tune/*.yaml without .yaml (default: all of them)
am_override=conf/am_newbob.yaml  # as in run.sh (conf/am_tiny.yaml for a smoke run)
decode_opts="--beam 10 --lattice-beam 6 --max-active 7000"  # as in run.sh
force=false

. ./cmd.sh
. ./path.sh
. utils/log.sh
. utils/job_line.sh
. utils/parse_options.sh

[ -f exp/graph/.done ] || { echo "$0: no exp/graph; run ./run.sh --stop-stage 9 first" >&2; exit 1; }
[ -n "$variants" ] || variants=$(cd conf/tune && ls *.yaml | sed 's/\.yaml$//')
force_opt=()
if $force; then force_opt=(--force); fi

mkdir -p exp/tune/log
passes=(" exp/graph")
strengths=()
for n in $strength_lm_orders; do
  if [ -f exp/graph_${n}gram/.done ]; then passes+=("_${n}gram exp/graph_${n}gram"); strengths+=(${n}-gram=_${n}gram); fi
done
read -r -a decode_args <<< "$decode_opts"
chosen=
for variant in $variants; do
  system=${variant%%.*}
  [ -f conf/am_$system.yaml ] || { echo "$0: $variant: no conf/am_$system.yaml" >&2; exit 1; }
  [ -f conf/tune/$variant.yaml ] || { echo "$0: no conf/tune/$variant.yaml" >&2; exit 1; }
  missing=
  for seed in $seeds; do [ -f exp/am_${system}_s$seed/final.pt ] || missing="$missing $seed"; done
  if [ -n "$missing" ]; then
    log "$variant left out: stage 8 has no run of $system with seed(s)$missing to compare it with" \
        "(exp/am_${system}_s<seed>; add $system to run.sh's systems)"
    continue
  fi
  chosen="$chosen $variant"
  for seed in $seeds; do
    dir=exp/tune/am_${variant}_s$seed
    line=$(job_line python -m steps.train_am --config conf/am_$system.yaml ${am_override:+--override $am_override} \
      --override conf/tune/$variant.yaml --cuts data/kd/${corpus}_cuts_train.jsonl.gz \
      --dev-cuts data/kd/${corpus}_cuts_dev.jsonl.gz --exp-dir $dir --seed $seed --num-threads 1 \
      --resume "${force_opt[@]}")
    for pass in "${passes[@]}"; do
      suffix=${pass%% *} graph=${pass#* }
      weights=()
      if [ -n "$suffix" ]; then weights=(--lm-weights "$strength_lm_weights"); fi
      line="$line && $(job_line python -m steps.decode --model $dir/final.pt --graph $graph \
        --cuts data/fbank/${corpus}_cuts_dev.jsonl.gz --lang-dir data/lang --out-dir $dir/decode_dev$suffix \
        --num-threads 1 "${weights[@]}" --no-search-errors "${decode_args[@]}" "${force_opt[@]}")"
    done
    echo "$line"
  done
done > exp/tune/jobs.txt
variants=${chosen# }
[ -n "$variants" ] || { echo "$0: no variant left to run" >&2; exit 1; }
num_runs=$(wc -l < exp/tune/jobs.txt)
log "Training and decoding $num_runs runs (variants x seeds) on dev, $nj at a time -> exp/tune"
$train_cmd --max-jobs-run $nj JOB=1:$num_runs exp/tune/log/tune.JOB.log \
  utils/run_line.sh exp/tune/jobs.txt JOB

for variant in $variants; do
  for pass in "${passes[@]}"; do
    suffix=${pass%% *} dev_dirs=()
    for seed in $seeds; do dev_dirs+=(exp/tune/am_${variant}_s$seed/decode_dev$suffix); done
    python -m steps.choose_lm_weight --dev-dirs "${dev_dirs[@]}" --out-dir exp/tune/lm_weights/$variant/decode_dev$suffix
  done
done
python -m steps.tune_report --exp-dir exp --variants $variants --seeds $seeds --aa-seeds $aa_seeds \
  --strengths "${strengths[@]}" --out exp/tune/dev_sweep.md
