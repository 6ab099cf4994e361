#!/usr/bin/env bash
# Make (or bring up to date) a virtual environment that holds exactly a lock, resolving nothing.
#
#   scripts/install_lock.sh VENV LOCK        # PYTHON: the interpreter (default python3.11)
#
# 1. the interpreter must be Python 3.11, and so must an existing VENV (one line when not);
# 2. uv, the installer, is the one file the lock pins for it: the venv's own pip installs it with
#    --no-deps --require-hashes, which considers nothing but that pin;
# 3. `uv pip sync --require-hashes` installs every line of the lock by its version and sha256,
#    removes whatever the lock does not list and never adds a dependency or an extra;
# 4. `uv pip check` proves the set is complete and consistent;
# 5. the bytecode is compiled now, as pip does: where PYTHONDONTWRITEBYTECODE is set nothing else
#    would, and every process would compile TensorFlow, Prefect and MLflow anew (a Prefect server
#    then took 22 s to start here, past its 20 s limit, instead of 13 s).
# Why uv and why this way: docs/decisions.md #8. The index and cache are uv's own settings
# (UV_DEFAULT_INDEX, UV_FIND_LINKS, UV_CACHE_DIR ...); pip's settings apply to step 2.
set -euo pipefail

venv=${1:?usage: install_lock.sh VENV LOCK}
lock=${2:?usage: install_lock.sh VENV LOCK}
python=${PYTHON:-python3.11}

fail() { echo "heartgate: error: $*" >&2; exit 1; }
version_of() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }

[ -r "$lock" ] || fail "$lock not found"
uv_pin=$(grep -E '^uv==[^ ]+ --hash=sha256:[0-9a-f]{64}$' "$lock") || fail "$lock pins no uv with its sha256: run make lock"
if [ -x "$venv/bin/python" ]; then
  found=$(version_of "$venv/bin/python") || found="unusable"
  [ "$found" = 3.11 ] || fail "$venv holds Python $found, not 3.11: remove it (make clean) and run make again"
else
  found=$(version_of "$python") || fail "$python not found: heartgate needs Python 3.11 (make PYTHON=/path/to/python3.11)"
  [ "$found" = 3.11 ] || fail "$python is Python $found: heartgate needs 3.11 (make PYTHON=/path/to/python3.11)"
  "$python" -m venv "$venv"
fi

if [ "$("$venv/bin/uv" --version 2>/dev/null | cut -d' ' -f2)" != "$(echo "${uv_pin%% *}" | cut -d= -f3)" ]; then
  printf '%s\n' "$uv_pin" > "$venv/uv-requirement.txt"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes \
    -r "$venv/uv-requirement.txt" || fail "cannot install the lock's uv (${uv_pin%% *}) with pip: see above"
fi

"$venv/bin/uv" pip sync --quiet --require-hashes --python "$venv/bin/python" "$lock" \
  || fail "cannot install $lock exactly (uv's reason above); nothing outside the lock was tried"
"$venv/bin/uv" pip check --quiet --python "$venv/bin/python" \
  || fail "$lock is not a complete, consistent set (uv pip check above): run make lock"
# Packages' own test suites are left out (20% of the files, never imported by heartgate: 47 s
# instead of 59 s on 2 cores); so are the few files written for other Pythons, which do not compile
# (compileall's complaints about those are dropped with its exit status).
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$venv/bin/python" -m compileall -q -j 0 -x '/tests?/' "$site" > /dev/null || true
