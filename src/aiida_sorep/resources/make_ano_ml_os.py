"""Regenerate ``ano_ml_os.json`` (the ANO-ML-OS basis) from the ANO-RCC basis shipped with PySCF.

Usage::

    python -m aiida_sorep.resources.make_ano_ml_os            # rewrites the file next to this script
    python -m aiida_sorep.resources.make_ano_ml_os --check    # exits 1 if the shipped file differs

The selection rule lives in :mod:`aiida_sorep.core.basis`: one ANO-RCC contraction per valence subshell of
the element's smallest closed-shell configuration. Each selected contraction is checked to have the
``n - l - 1`` radial nodes of the ``nl`` atomic orbital it stands for.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import pyscf
from pyscf import gto

from aiida_sorep.core.basis import (
    _SYMBOLS,
    ANO_ML_OS_FILENAME,
    contraction_nodes,
    select_contractions,
    valence_subshells,
)

OUTPUT = pathlib.Path(__file__).resolve().parent / ANO_ML_OS_FILENAME

RULE = (
    'One ANO-RCC contraction per valence subshell of the smallest closed-shell configuration: '
    'H,He 1s; s block ns; p block ns,np (+(n-1)d from period 4); d block and La,Ac ns,(n-1)d; '
    'Ce-Lu and Th-Cm ns,(n-1)d,(n-2)f. The nl orbital is ANO contraction number n-l-1 of the l block.'
)
REFERENCES = (
    'P.-O. Widmark, P.-A. Malmqvist, B. O. Roos, Theor. Chim. Acta 77, 291 (1990) (H, He)',
    'B. O. Roos, V. Veryazov, P.-O. Widmark, Theor. Chem. Acc. 111, 345 (2004) (alkali, alkaline earth)',
    'B. O. Roos, R. Lindh, P.-A. Malmqvist, V. Veryazov, P.-O. Widmark, J. Phys. Chem. A 108, 2851 (2004) (main group)',
    'B. O. Roos, R. Lindh, P.-A. Malmqvist, V. Veryazov, P.-O. Widmark, J. Phys. Chem. A 109, 6575 (2005) (d block)',
    'B. O. Roos et al., Chem. Phys. Lett. 409, 295 (2005) (actinides)',
    'B. O. Roos et al., J. Phys. Chem. A 112, 11431 (2008) (lanthanides)',
)


def build() -> dict:
    """Derive the ANO-ML-OS basis for every element H-Cm from PySCF's ANO-RCC."""
    basis = {}
    for symbol in _SYMBOLS[1:]:
        blocks = select_contractions(symbol, gto.basis.load('ano-rcc', symbol))
        for block, (l, n) in zip(blocks, sorted(valence_subshells(symbol).items()), strict=True):
            nodes = contraction_nodes(block)
            if nodes != n - l - 1:
                raise RuntimeError(
                    f'{symbol} {n}{"spdf"[l]}: contraction has {nodes} radial nodes, expected {n - l - 1}'
                )
        basis[symbol] = blocks
    return {
        'name': 'ANO-ML-OS',
        'source': f'ANO-RCC as shipped with PySCF {pyscf.__version__} (pyscf/gto/basis/ano.dat)',
        'rule': RULE,
        'references': list(REFERENCES),
        'format': 'PySCF internal basis format: {element: [[l, [exponent_bohr^-2, coefficient], ...], ...]}',
        'generator': 'python -m aiida_sorep.resources.make_ano_ml_os',
        'basis': basis,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--check', action='store_true', help='compare with the shipped file instead of writing it')
    args = parser.parse_args()
    data = build()
    if args.check:
        shipped = json.loads(OUTPUT.read_text())
        same = shipped['basis'] == data['basis']
        print('identical' if same else 'DIFFERENT')
        return 0 if same else 1
    OUTPUT.write_text(json.dumps(data, indent=None, separators=(',', ':')) + '\n')
    n_functions = sum(2 * block[0] + 1 for blocks in data['basis'].values() for block in blocks)
    print(f'wrote {OUTPUT.name}: {len(data["basis"])} elements, {n_functions} spherical functions in total')
    return 0


if __name__ == '__main__':
    sys.exit(main())
