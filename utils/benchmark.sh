#!/usr/bin/env bash
# Runs every benchmark script (steps/bench/bench_*.py) and writes BENCHMARKS.md: the
# figures each prints, with the machine, the date and the commit.
#
#   utils/benchmark.sh [--recipe egs/synth/s5] [--out BENCHMARKS.md] [--quick true]
#
# bench_align reads a trained recipe (stages 1-4 of --recipe); it is reported as not run
# when that recipe has no exp/mono/final.pt. --quick true passes smaller sizes to the
# benchmarks that take them (a smoke run; the committed file comes from a full run).
set -euo pipefail

recipe=egs/synth/s5
out=BENCHMARKS.md
quick=false
help_message="Usage: $0 [--recipe DIR] [--out FILE] [--quick true|false]"

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
. utils/parse_options.sh
[ -x .venv/bin/python ] || utils/setup_env.sh
python=.venv/bin/python
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"

declare -A args
if $quick; then
  args[bench_fbank]="--minutes 0.5 --rounds 2"
  args[bench_tree]="--frames 100000 --leaves 300"
  args[bench_soft_labels]="--cuts 40"
  args[bench_am]="--hours 0.3 --rounds 2"
  args[bench_decode]="--sentences 5000 --words 800 --utts 10"
fi
args[bench_align]="--recipe $recipe"

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
} > "$tmp/report.md"

failed=0
for script in steps/bench/bench_*.py; do
  name=$(basename "$script" .py)
  echo "$(date '+%H:%M:%S') $name ${args[$name]:-}" >&2
  {
    echo "## $name"
    echo
    echo "\`python -m steps.bench.$name ${args[$name]:-}\`"
    echo
    echo '```'
  } >> "$tmp/report.md"
  start=$(date +%s)
  # shellcheck disable=SC2086
  if $python -m steps.bench.$name ${args[$name]:-} > "$tmp/$name.out" 2> "$tmp/$name.err"; then
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

mv "$tmp/report.md" "$out"
echo "wrote $out ($failed benchmarks failed)" >&2
[ $failed -eq 0 ]
