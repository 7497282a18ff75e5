# Puts the environment (LM2AM_VENV, default the repo's .venv) first on PATH; sourced by run.sh. The repository is found from this
# file's real location, so a working copy of the recipe made of symlinks works too.
lm2am_root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../../.." && pwd)
lm2am_venv=${LM2AM_VENV:-$lm2am_root/.venv}
if [ ! -x "$lm2am_venv/bin/python" ]; then
  LM2AM_VENV=$lm2am_venv "$lm2am_root/utils/setup_env.sh"
fi
export PATH="$lm2am_venv/bin:$PATH"
export PYTHONUNBUFFERED=1
export LC_ALL=C
export PYTHONPATH="$lm2am_root${PYTHONPATH:+:$PYTHONPATH}"
