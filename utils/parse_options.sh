# Kaldi-style option parsing. Source it after setting the defaults:
#
#   stage=0
#   use_gpu=false
#   help_message="Usage: $0 [options] <data-dir>"
#   . utils/parse_options.sh
#
# Rules:
#   --foo-bar VALUE   sets the variable foo_bar, which must already exist;
#                     an unknown option is an error that names it.
#   booleans          a variable whose current value is true or false only
#                     accepts true or false.
#   integers          a variable whose value is a whole number only accepts a
#                     whole number. The kind is that of the script's default,
#                     before any config file: a list such as seeds="1 2 3"
#                     stays a list when a config file sets it to one seed.
#   list_options      names the script's lists whose default may be one
#                     number (list_options="strength_lm_orders"): they take
#                     any words.
#   --config FILE     FILE is sourced before any other option, so the
#                     command line wins whatever the order; the files read
#                     are listed in $parse_options_configs. The same rules
#                     hold inside it: each `name=value` line must set a
#                     variable that already exists, with a value of its kind.
#   --help, -h        prints $help_message and exits 0.
#   positional args   parsing stops at the first argument that is not an
#                     option (or after "--"); the rest stay in "$@".

__po_prog=${0##*/}

__po_fail() {
  echo "$__po_prog: $*" >&2
  exit 1
}

# Checks a new value against the kind of the variable's current one.
__po_check_kind() {  # <where> <current value> <new value> [<name>]
  if [ -n "${4:-}" ] && [[ " ${list_options:-} " == *" $4 "* ]]; then return 0; fi
  if [ "$2" = true ] || [ "$2" = false ]; then
    [ "$3" = true ] || [ "$3" = false ] || __po_fail "$1 is boolean: give true or false, not '$3'"
  elif [[ $2 =~ ^-?[0-9]+$ ]]; then
    [[ $3 =~ ^-?[0-9]+$ ]] || __po_fail "$1 is an integer: give a whole number, not '$3'"
  fi
}

# Config files first.
__po_args=("$@")
declare -A __po_default=()  # name -> its value before the config files: the kind options are checked against
for ((__po_i = 0; __po_i < ${#__po_args[@]}; __po_i++)); do
  [ "${__po_args[__po_i]}" = "--" ] && break
  if [ "${__po_args[__po_i]}" = "--config" ]; then
    __po_file=${__po_args[__po_i + 1]:-}
    [ -n "$__po_file" ] || __po_fail "option --config needs a file"
    [ -r "$__po_file" ] || __po_fail "cannot read config file '$__po_file'"
    # Every variable the file sets must exist already (a typo is not silently a new one).
    __po_names=() __po_olds=() __po_lines=() __po_n=0
    while IFS= read -r __po_line || [ -n "$__po_line" ]; do
      __po_n=$((__po_n + 1))
      [[ $__po_line =~ ^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)= ]] || continue
      __po_name=${BASH_REMATCH[2]}
      [ -n "${!__po_name+set}" ] ||
        __po_fail "config file '$__po_file' line $__po_n: unknown variable '$__po_name' (see --help for the settings)"
      __po_names+=("$__po_name") __po_olds+=("${!__po_name}") __po_lines+=("$__po_n")
      [ -n "${__po_default[$__po_name]+set}" ] || __po_default[$__po_name]=${!__po_name}
    done < "$__po_file"
    . "$__po_file"
    for ((__po_n = 0; __po_n < ${#__po_names[@]}; __po_n++)); do
      __po_name=${__po_names[__po_n]}
      __po_check_kind "config file '$__po_file' line ${__po_lines[__po_n]}: '$__po_name'" \
        "${__po_olds[__po_n]}" "${!__po_name}" "$__po_name"
    done
    # The settings files read, for scripts that record how they were run.
    parse_options_configs="${parse_options_configs:+$parse_options_configs }$__po_file"
  fi
done

while [ $# -gt 0 ]; do
  case "$1" in
    --help | -h)
      if [ -n "${help_message:-}" ]; then
        printf '%s\n' "$help_message"
      else
        echo "$__po_prog: no help message is set"
      fi
      exit 0
      ;;
    --)
      shift
      break
      ;;
    --config)
      shift 2
      ;;
    --*=*)
      __po_fail "options take the form '--name value', got '$1'"
      ;;
    --*)
      __po_name=${1#--}
      __po_name=${__po_name//-/_}
      [[ $__po_name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || __po_fail "invalid option '$1'"
      [ -n "${!__po_name+set}" ] || __po_fail "unknown option '$1'"
      [ $# -ge 2 ] || __po_fail "option '$1' needs a value"
      __po_check_kind "option '$1'" "${__po_default[$__po_name]-${!__po_name}}" "$2" "$__po_name"
      printf -v "$__po_name" '%s' "$2"
      shift 2
      ;;
    *)
      break
      ;;
  esac
done

unset __po_args __po_i __po_file __po_name __po_names __po_olds __po_lines __po_line __po_n __po_default
unset -f __po_fail __po_check_kind
