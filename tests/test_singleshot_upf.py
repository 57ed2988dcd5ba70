"""Tests of :mod:`aiida_sorep.core.upf`: counting pseudo-atomic wavefunctions (no AiiDA needed)."""

from __future__ import annotations

import pytest

from aiida_sorep.core.upf import AtomicWavefunction, count_atomic_wavefunctions, parse_atomic_wavefunctions

UPF_V1 = """<PP_HEADER>
    3    2             Number of Wavefunctions, Number of Projectors
</PP_HEADER>
<PP_PSWFC>
2s    0  2.00          Wavefunction
  7.72899582089E-04  7.91990201767E-04
2p    1  2.00          Wavefunction
  7.72899582089E-04  7.91990201767E-04
3d    2 -1.00          Wavefunction
  7.72899582089E-04  7.91990201767E-04
</PP_PSWFC>
"""

UPF_V2 = """<UPF version="2.0.1">
<PP_PSWFC>
<PP_CHI.1 type="real" size="3" columns="4" index="1" label="3S" occupation=" 2.000" n="1" l="0" >
 1.0 2.0 3.0
</PP_CHI.1>
<PP_CHI.2
  type="real" size="3" columns="4"
  index="2" label="3P" occupation=" 6.000" n="2" l="1" >
 1.0 2.0 3.0
</PP_CHI.2>
<PP_CHI.3 label="3D" occupation="1.0D0" l="2" >
 1.0 2.0 3.0
</PP_CHI.3>
<PP_CHI.4 label="4F" occupation="-1.0" l="3">
 1.0 2.0 3.0
</PP_CHI.4>
</PP_PSWFC>
</UPF>
"""


def test_upf_v2_attributes_across_lines():
    """UPF v2: ``l`` and ``occupation`` attributes, also split over lines and with Fortran exponents."""
    assert parse_atomic_wavefunctions(UPF_V2) == (
        AtomicWavefunction('3S', 0, 2.0),
        AtomicWavefunction('3P', 1, 6.0),
        AtomicWavefunction('3D', 2, 1.0),
        AtomicWavefunction('4F', 3, -1.0),
    )
    assert count_atomic_wavefunctions(UPF_V2) == 1 + 3 + 5  # the unbound 4F (occupation < 0) is not used


def test_upf_v1_header_lines():
    """UPF v1: one ``label l occupation Wavefunction`` line per orbital."""
    assert count_atomic_wavefunctions(UPF_V1) == 1 + 3


def test_no_pswfc():
    """A pseudo without PP_PSWFC has no atomic wavefunctions."""
    assert count_atomic_wavefunctions('<UPF version="2.0.1">\n<PP_HEADER z_valence="4"/>\n</UPF>') == 0


def test_malformed_chi_raises():
    """A PP_CHI without ``l`` is a malformed file: the message says which entry."""
    with pytest.raises(ValueError, match=r'PP_CHI\.1'):
        parse_atomic_wavefunctions('<PP_PSWFC>\n<PP_CHI.1 label="3S" occupation="2.0">\n</PP_CHI.1>\n</PP_PSWFC>')


@pytest.mark.parametrize(('element', 'expected'), [('Si', 4), ('O', 4), ('Ba', 5), ('Ti', 10), ('Zn', 10), ('Al', 4)])
def test_pseudodojo_counts(pseudo_dir, element, expected):
    """PseudoDojo 0.4 standard includes semicore states: Si 4, O 4, Ba 5, Ti 10, Zn 10 orbitals per atom."""
    assert count_atomic_wavefunctions((pseudo_dir / f'{element}.upf').read_text()) == expected
