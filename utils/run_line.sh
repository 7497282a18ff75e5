#!/usr/bin/env bash
# Runs line N of a file of shell commands: lets a job array run a list of different
# commands through the job runner, one per JOB.
#   utils/run.py JOB=1:6 exp/log/x.JOB.log utils/run_line.sh exp/commands.txt JOB
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 <command-file> <line-number>" >&2; exit 2; }
line=$(sed -n "${2}p" "$1")
[ -n "$line" ] || { echo "$0: no line $2 in $1" >&2; exit 1; }
echo "$line"
eval "$line"
