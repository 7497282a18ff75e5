#!/usr/bin/env bash
# Compressing the acoustic model (steps.compress): a big HIER teacher, its hidden layers
# cached once, then three small students (14% of the tiny teacher, 6% of the default one):
# (d) GenDistiller (generates the teacher's layers one after another), (b) DistilHuBERT-style
# (parallel prediction heads on one encoder), (c) the GenDistiller student trained from
# scratch on senones. Each is decoded by the hybrid path of stage 9 and the table is added to
# RESULTS.md. conf/compress/student_parallel.yaml is sized for the tiny teacher: see its
# comment before a default-size run.
#
#   local/compress.sh                                   # after ./run.sh (stages 1-10)
#   local/compress.sh --config conf/compress/tiny.conf  # after ./run.sh --config conf/tiny.conf
#   local/compress.sh --stage 4 --seeds "1 2 3"
# Stages: 1 teacher, 2 decode teacher, 3 layer caches, 4 students, 5 decode students, 6 report.
set -euo pipefail

stage=1
stop_stage=6
nj=2
corpus=synth
teacher=am_hier_big                   # conf/$teacher.yaml, trained into exp/${teacher}_s1
teacher_override=                     # YAML merged over it (conf/am_hier_big_tiny.yaml)
teacher_config=conf/compress/teacher_am.yaml          # what is cached (layers, storage)
extra_teacher_configs=conf/compress/teacher_am_lilcom.yaml  # further caches, disk figures only
students="parallel scratch gen"       # conf/compress/student_<name>.yaml -> exp/compress_<name>_s<seed>
seeds="1 2 3"
decode_opts="--beam 10 --lattice-beam 6 --max-active 7000"
force=false

. ./cmd.sh
. ./path.sh
. utils/log.sh
. utils/exp_dirs.sh
. utils/job_line.sh
run_options="${*@Q}"  # recorded in RESULTS.md
. utils/parse_options.sh

[ -f exp/graph/.done ] || { echo "$0: no exp/graph; run ./run.sh (stages 1-9) first" >&2; exit 1; }
force_opt=()
if $force; then force_opt=(--force); fi
cache_dir() { echo data/compress/$(basename $1 .yaml | sed 's/^teacher_//'); }  # teacher_am.yaml -> data/compress/am
dump_dir=$(cache_dir $teacher_config)
ali=$(senone_ali_dir)  # stage 5's senone alignments (dev cuts, senone counts)

read -r -a decode_args <<< "$decode_opts"  # a knob of several options

decode_line() {  # the job line of one run dir: the dev sweep, then test at dev's LM weight
  local dir=$1
  echo "$(job_line python -m steps.decode --model $dir/final.pt --graph exp/graph \
            --cuts data/fbank/${corpus}_cuts_dev.jsonl.gz --lang-dir data/lang --out-dir $dir/decode_dev \
            --num-threads 1 "${decode_args[@]}" "${force_opt[@]}")" \
       "&& $(job_line python -m steps.decode --model $dir/final.pt --graph exp/graph \
               --cuts data/fbank/${corpus}_cuts_test.jsonl.gz --lang-dir data/lang --out-dir $dir/decode_test \
               --lm-weight-from $dir/decode_dev --num-threads 1 "${decode_args[@]}" "${force_opt[@]}")"
}

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  log "Stage 1: teacher conf/$teacher.yaml -> exp/${teacher}_s1"
  python -m steps.train_am --config conf/$teacher.yaml ${teacher_override:+--override $teacher_override} \
    --cuts data/kd/${corpus}_cuts_train.jsonl.gz --dev-cuts $ali/cuts_dev.jsonl.gz \
    --senone-counts $ali/senone_counts.txt --exp-dir exp/${teacher}_s1 --seed 1 --num-threads 1 --resume "${force_opt[@]}"
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  log "Stage 2: decoding the teacher -> exp/${teacher}_s1/decode_{dev,test}"
  decode_line exp/${teacher}_s1 > exp/compress_teacher_decode_jobs.txt
  $decode_cmd JOB=1:1 exp/log/decode_teacher.JOB.log utils/run_line.sh exp/compress_teacher_decode_jobs.txt JOB
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  log "Stage 3: teacher layers of the training cuts -> $(for c in $teacher_config $extra_teacher_configs; do cache_dir $c; done | tr '\n' ' ')"
  for config in $teacher_config $extra_teacher_configs; do
    python -m steps.dump_teacher_layers --config $config --cuts data/kd/${corpus}_cuts_train.jsonl.gz \
      --part train --out-dir $(cache_dir $config) --num-threads 1 "${force_opt[@]}"
  done
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  log "Stage 4: students ($students) x seeds ($seeds) -> exp/compress_<student>_s<seed>"
  for student in $students; do
    for seed in $seeds; do
      job_line python -m steps.train_student --config conf/compress/student_$student.yaml \
        --teacher-config $teacher_config --dump-dir $dump_dir --dev-cuts $ali/cuts_dev.jsonl.gz \
        --senone-counts $ali/senone_counts.txt --exp-dir exp/compress_${student}_s$seed \
        --seed $seed --num-threads 1 "${force_opt[@]}"
    done
  done > exp/compress_jobs.txt
  num_runs=$(wc -l < exp/compress_jobs.txt)
  $train_cmd --max-jobs-run $nj JOB=1:$num_runs exp/log/train_student.JOB.log \
    utils/run_line.sh exp/compress_jobs.txt JOB
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  log "Stage 5: decoding the students -> exp/compress_*/decode_{dev,test}"
  for student in $students; do
    for seed in $seeds; do decode_line exp/compress_${student}_s$seed; done
  done > exp/compress_decode_jobs.txt
  num_runs=$(wc -l < exp/compress_decode_jobs.txt)
  $decode_cmd --max-jobs-run $nj JOB=1:$num_runs exp/log/decode_student.JOB.log \
    utils/run_line.sh exp/compress_decode_jobs.txt JOB
fi

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  log "Stage 6: compression table -> RESULTS.md"
  dumps=
  for config in $teacher_config $extra_teacher_configs; do dumps="$dumps $(cache_dir $config)"; done
  python -m steps.compress_report --exp-dir exp --teacher $teacher --seeds $seeds \
    --dev-cuts data/fbank/${corpus}_cuts_dev.jsonl.gz --dump-dirs $dumps --options="$run_options" --out RESULTS.md
fi
