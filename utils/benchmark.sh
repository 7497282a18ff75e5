#!/usr/bin/env bash
# Runs every benchmark script (utils/bench/bench_*.py) and writes BENCHMARKS.md: the
# figures each prints, with the machine, the date and the commit; then (--recipe-runs
# true) the wall and CPU time of a full tiny run (run.sh --config conf/tiny.conf) and of
# stages 1-7 of the default run, each in a fresh copy of the recipe. A summary at the top
# gives every figure beside its anchor or aim, measured in the same run: fbank against
# lhotse's Fbank, each KD system's step against the baseline's, the flat start against
# conf/mono_reference.yaml.
#
#   utils/benchmark.sh [--recipe egs/synth/s5] [--out BENCHMARKS.md] [--quick true]
#                      [--recipe-runs true|false]
#
# bench_align reads a trained recipe (stages 1-4 of --recipe); it is reported as not run
# when that recipe has no exp/mono/final.pt; bench_am takes its output sizes from it when it
# is trained through stage 6, else its own defaults; bench_scale reads a recipe trained through
# stage 9 (the default run's exp/am_baseline_s1, exp/graph) and fails, reported, without one. --quick true passes smaller sizes to the
# benchmarks that take them (a smoke run; the committed file comes from a full run).
set -euo pipefail

recipe=egs/synth/s5
out=BENCHMARKS.md
quick=false
recipe_runs=true
help_message="Usage: $0 [--recipe DIR] [--out FILE] [--quick true|false] [--recipe-runs true|false]"

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
. utils/parse_options.sh
venv=${LM2AM_VENV:-$repo/.venv}
[ -x "$venv/bin/python" ] || LM2AM_VENV=$venv utils/setup_env.sh
export LM2AM_VENV=$venv
python=$venv/bin/python
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"

declare -A args
if $quick; then
  args[bench_fbank]="--minutes 0.5 --rounds 2"
  args[bench_tree]="--frames 100000 --leaves 300"
  args[bench_soft_labels]="--cuts 40"
  args[bench_am]="--hours 0.3 --rounds 2"
  args[bench_decode]="--sentences 5000 --words 800 --utts 10"
  args[bench_scale]="--fractions 0.05,0.1,0.2"
fi
args[bench_align]="--recipe $recipe"
args[bench_scale]="--recipe $recipe ${args[bench_scale]:-}"
# the AM's output sizes are the trained recipe's where it has them (bench_am --recipe)
if [ -f "$recipe/exp/tree/senones.txt" ] && [ -f "$recipe/exp/lm_subword/tokens.txt" ]; then
  args[bench_am]="${args[bench_am]:-} --recipe $recipe"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
{
  echo "# Benchmarks"
  echo
  echo "Written by \`utils/benchmark.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), commit" \
       "\`$(git describe --always --dirty 2>/dev/null || echo unknown)\`."
  echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')," \
       "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)), load average at the" \
       "start $(cut -d' ' -f1-3 /proc/loadavg); $($python -c 'import torch, k2, lhotse; print("torch", torch.__version__, "k2", k2.__dev_version__, "lhotse", lhotse.__version__)')."
  $quick && echo "Quick mode: reduced sizes, figures not comparable with a full run."
  echo
} > "$tmp/header.md"
: > "$tmp/report.md"

failed=0
for script in utils/bench/bench_*.py; do
  name=$(basename "$script" .py)
  echo "$(date '+%H:%M:%S') $name ${args[$name]:-}" >&2
  {
    echo "## $name"
    echo
    echo "\`utils/bench/$name.py ${args[$name]:-}\`"
    echo
    echo '```'
  } >> "$tmp/report.md"
  start=$(date +%s)
  # shellcheck disable=SC2086
  if $python utils/bench/$name.py ${args[$name]:-} > "$tmp/$name.out" 2> "$tmp/$name.err"; then
    cat "$tmp/$name.out" >> "$tmp/report.md"
  else
    rc=$?
    cat "$tmp/$name.out" >> "$tmp/report.md"
    echo "(exit code $rc: $(tail -n 1 "$tmp/$name.err"))" >> "$tmp/report.md"
    failed=$((failed + 1))
  fi
  echo '```' >> "$tmp/report.md"
  echo "($(( $(date +%s) - start )) s)" >> "$tmp/report.md"
  echo >> "$tmp/report.md"
done

# A copy of egs/synth/s5 under $1 that links to this repository (as tests/conftest.py makes).
recipe_copy() {
  local root=$1 name
  mkdir -p "$root/egs/synth/s5"
  for name in steps utils local; do ln -s "$repo/$name" "$root/$name"; done
  cp egs/synth/s5/{run.sh,cmd.sh,path.sh} "$root/egs/synth/s5/"
  cp -r egs/synth/s5/conf egs/synth/s5/local "$root/egs/synth/s5/"
  ln -s ../../../steps "$root/egs/synth/s5/steps"
  ln -s ../../../utils "$root/egs/synth/s5/utils"
}

# time_recipe NAME RUN.SH-OPTIONS...: wall and CPU seconds of run.sh in a fresh copy
time_recipe() {
  local name=$1; shift
  recipe_copy "$tmp/$name"
  echo "$(date '+%H:%M:%S') recipe $name: run.sh $*" >&2
  local load; load=$(cut -d' ' -f1 /proc/loadavg)
  if (cd "$tmp/$name/egs/synth/s5" && /usr/bin/time -f "%e %U %S" -o ../../../time.txt \
        ./run.sh "$@" > run.log 2>&1); then
    read -r wall user sys < "$tmp/$name/time.txt"
    printf '%-34s %9.0f %9.0f %10s\n' "$name (run.sh $*)" "$wall" "$(echo "$user + $sys" | bc)" "$load" \
      >> "$tmp/recipes.txt"
  else
    echo "$name (run.sh $*): failed, see the end of its log:" >> "$tmp/recipes.txt"
    tail -n 5 "$tmp/$name/egs/synth/s5/run.log" >> "$tmp/recipes.txt"
    failed=$((failed + 1))
  fi
  rm -rf "$tmp/$name"
}

if $recipe_runs; then
  printf '%-34s %9s %9s %10s\n' "run" "wall s" "CPU s" "load avg" > "$tmp/recipes.txt"
  time_recipe tiny --config conf/tiny.conf
  time_recipe default_1-7 --stop-stage 7
  {
    echo "## recipe wall time"
    echo
    echo "Each in a fresh copy of egs/synth/s5 (stage 1 included); CPU s: user + system of all its processes."
    echo
    echo '```'
    cat "$tmp/recipes.txt"
    echo '```'
    echo
  } >> "$tmp/report.md"
fi

# The summary: every figure beside its anchor or aim, from the outputs above.
{
  echo "## Summary: each figure against its anchor or aim, in this run"
  echo
  echo "| figure | measured | anchor / aim | ratio |"
  echo "|---|---|---|---|"
  if [ -s "$tmp/bench_fbank.out" ]; then
    awk '/^feature extraction only/ {on = 1} on && /\(ours, batched\)/ {ours = $(NF-1)}
         on && /^lhotse Fbank/ {lhotse = $(NF-1); on = 0}
         END {if (ours && lhotse) printf "| fbank extraction, audio s / wall s | %s | lhotse Fbank %s (aim: >= 1x) | %.2fx |\n", ours, lhotse, ours / lhotse}' \
      "$tmp/bench_fbank.out"
  fi
  if [ -s "$tmp/bench_am.out" ]; then
    awk '/^system/ {on = 1; next} on && NF == 8 && $8 ~ /x$/ && $1 != "baseline" {printf "| KD step CPU time, %s | %s ms | baseline, aim <= 1.10x | %s |\n", $1, $6, $8}' \
      "$tmp/bench_am.out"
  fi
  if [ -s "$tmp/bench_align.out" ]; then
    grep '^speed-up of the default' "$tmp/bench_align.out" | sed 's/^/| flat start: /; s/$/ | conf\/mono_reference.yaml, aim >= 3x | see bench_align |/' || true
  fi
  if [ -s "$tmp/recipes.txt" ]; then
    awk 'NR > 1 && $NF ~ /^[0-9.]+$/ {printf "| recipe %s, wall s | %s (CPU %s s) | - | - |\n", $1, $(NF-2), $(NF-1)}' "$tmp/recipes.txt"
  fi
  echo
} > "$tmp/summary.md"
cat "$tmp/header.md" "$tmp/summary.md" "$tmp/report.md" > "$tmp/final.md"
mv "$tmp/final.md" "$out"
echo "wrote $out ($failed benchmarks failed)" >&2
[ $failed -eq 0 ]
