#!/usr/bin/env bash
# Regenerate tests/fixtures/singleshot/patched_{si,al}/{aiida.out,data-file-schema.xml} with the patched pw.x.
#
#   bash qe/make_fixtures.sh [PW_X]
#
# PW_X defaults to the binary qe/build.sh installs (${AIIDA_SOREP_QE_PREFIX:-$HOME/.local/aiida-sorep-qe}/bin/pw.x).
# Each case runs the stored aiida.in in a scratch folder (./pseudo/ linked to the PseudoDojo cache, serial,
# one thread) and keeps only stdout (aiida.out) and out/aiida.save/data-file-schema.xml.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PW_X=${1:-${AIIDA_SOREP_QE_PREFIX:-$HOME/.local/aiida-sorep-qe}/bin/pw.x}
PSEUDOS=${AIIDA_SOREP_PSEUDO_DIR:-$HOME/.cache/aiida-sorep/pseudos/PseudoDojo/0.4/PBE/SR/standard/upf}
FIXTURES="$REPO/tests/fixtures/singleshot"

[ -x "$PW_X" ] || { echo "[FAILED] no executable $PW_X: run 'bash qe/build.sh' first" >&2; exit 1; }
[ -d "$PSEUDOS" ] || { echo "[FAILED] no PseudoDojo folder $PSEUDOS: run 'aiida-sorep setup'" >&2; exit 1; }

for case in patched_si patched_al; do
    scratch=$(mktemp -d)
    cp "$FIXTURES/$case/aiida.in" "$scratch/aiida.in"
    ln -s "$PSEUDOS" "$scratch/pseudo"
    status=0
    (cd "$scratch" && OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$PW_X" -in aiida.in > aiida.out) || status=$?
    if [ "$status" -ne 0 ]; then
        echo "[FAILED] $case: $PW_X exited with status $status (see $scratch/aiida.out)" >&2
        exit 1
    fi
    cp "$scratch/aiida.out" "$FIXTURES/$case/aiida.out"
    cp "$scratch/out/aiida.save/data-file-schema.xml" "$FIXTURES/$case/data-file-schema.xml"
    rm -rf "$scratch"
    echo "$case: exit $status, $(grep -c . "$FIXTURES/$case/aiida.out") lines of stdout, XML copied"
done
