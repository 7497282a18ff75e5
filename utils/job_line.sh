# Source this file for job_line WORD...: one line of a job file (utils/run_line.sh runs it),
# written from a command's words, each quoted where it needs it (a space, a quote, any other
# shell character), so that a value such as --lm-weights "3 4 5" stays one word.
#   job_line python -m steps.decode --lm-weights "3 4 5" --out-dir "$dir" >> exp/decode_jobs.txt
job_line() {
  local word line=()
  for word in "$@"; do
    if [[ $word =~ ^[A-Za-z0-9_./:=,+@%-]+$ ]]; then line+=("$word"); else line+=("${word@Q}"); fi
  done
  echo "${line[*]}"
}
