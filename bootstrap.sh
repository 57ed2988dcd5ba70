#!/usr/bin/env bash
# aiida-sorep: from a fresh Debian/Ubuntu machine to a result, in one command.
#
#   bash bootstrap.sh demo    # set up everything, run the main job on the embedded profile
#   bash bootstrap.sh test    # set up everything, run the full test suite and build the docs
#   bash bootstrap.sh setup   # set up everything only
#
# What it does (idempotent; a second run only checks):
#   1. installs Debian's quantum-espresso (pw.x 6.7) and OpenBLAS if pw.x is missing (root only),
#   2. creates the virtual environment .venv and installs aiida-sorep with its extras,
#   3. `aiida-sorep setup`: downloads the PseudoDojo UPF files once (PyPI), creates the AiiDA profile
#      `sorep` (SQLite, no broker) in $AIIDA_PATH (default: this folder, i.e. ./.aiida), the computer
#      `localhost`, the code `pw@localhost` and the pseudopotential family with its cutoffs,
#   4. runs the demo, or the tests (plus what they exercise: the patched pw.x build, a one-node SLURM;
#      PostgreSQL and RabbitMQ are started by the tests that need them), then builds the docs.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"
mode=${1:-demo}
case "$mode" in demo|test|setup) ;; *) echo "usage: bash bootstrap.sh [demo|test|setup]" >&2; exit 2 ;; esac

export AIIDA_PATH=${AIIDA_PATH:-$here}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
python=${PYTHON:-python3}
venv="$here/.venv"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
fail() { printf '\033[1;31m[FAILED]\033[0m %s\n' "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

# 1. System packages. pw.x is checked again (with a clear message) by `aiida-sorep setup`.
if ! command -v pw.x >/dev/null 2>&1 || ! dpkg-query -W -f='${Status}' libopenblas0-serial 2>/dev/null | grep -q 'ok installed'; then
    say "Installing Debian's quantum-espresso and OpenBLAS (pw.x, serial BLAS)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
        && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq quantum-espresso libopenblas0-serial >/dev/null \
        || fail "pw.x is missing and apt-get could not install it (not root and no sudo?). Run as root: apt-get install -y quantum-espresso libopenblas0-serial"
fi

# 2. Virtual environment with the package and its extras; reinstalled only when pyproject.toml changes.
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || fail "$python is older than Python 3.10"
if [ ! -x "$venv/bin/python" ]; then
    say "Creating the virtual environment $venv"
    "$python" -m venv "$venv" || fail "could not create a virtual environment (on Debian: apt-get install python3-venv)"
fi
stamp="$venv/.aiida-sorep-installed"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "Installing aiida-sorep and its dependencies into $venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -e ".[tests,docs,dev]"
    echo "$want" > "$stamp"
fi
# `source .venv/bin/activate` then gives verdi the same profile folder.
grep -q 'AIIDA_PATH' "$venv/bin/activate" || echo "export AIIDA_PATH=\"$AIIDA_PATH\"" >> "$venv/bin/activate"

# 3. pw.x, pseudopotentials, profile, computer, code, family.
say "Setting up the AiiDA profile in $AIIDA_PATH/.aiida"
"$venv/bin/aiida-sorep" setup

# 4. The job.
case "$mode" in
    demo)
        say "Running the main job"
        "$venv/bin/aiida-sorep" demo
        ;;
    test)
        if [ -f qe/build.sh ]; then
            say "Building the patched pw.x (skipped when already built)"
            bash qe/build.sh
        fi
        say "Starting a one-node SLURM for the scheduler test (skipped when running)"
        bash src/aiida_sorep/install/slurm.sh
        say "Running the test suite"
        "$venv/bin/python" -m pytest
        say "Building the documentation (warnings are errors)"
        "$venv/bin/python" -m sphinx -W --keep-going -q -b html docs docs/_build/html
        say "Linting"
        "$venv/bin/ruff" check .
        ;;
esac
