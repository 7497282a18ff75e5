# Source this file for log(): prints the time, the calling file and line, then the message.
#   . utils/log.sh; log "Stage 1: data preparation"
log() {
  local caller_file=${BASH_SOURCE[1]:-$0}
  echo -e "$(date '+%Y-%m-%d %H:%M:%S') (${caller_file##*/}:${BASH_LINENO[0]}) $*" >&2
}
