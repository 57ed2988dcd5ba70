"""Band edges: VBM/CBM values and locations, gaps, metals, spin, serialisation, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aiida_sorep.core.edges import BandEdges, find_band_edges
from aiida_sorep.core.fermi import find_fermi_level


def _indirect_insulator() -> np.ndarray:
    """Two k-points, three bands: VBM at k=1 (band 1, -0.5 eV), CBM at k=0 (band 2, 1.0 eV)."""
    return np.array([[[-3.0, -1.0, 1.0], [-2.5, -0.5, 2.0]]])


def test_indirect_insulator():
    edges = find_band_edges(_indirect_insulator(), 0.2)
    assert edges == BandEdges(
        vbm=-0.5,
        cbm=1.0,
        vbm_location=(0, 1, 1),
        cbm_location=(0, 0, 2),
        band_gap=1.5,
        direct_gap=2.0,
        direct_gap_kpoint=0,
        is_metal=False,
    )
    assert not edges.is_direct


def test_edges_do_not_depend_on_where_the_fermi_level_sits_in_the_gap():
    eigenvalues = _indirect_insulator()
    assert find_band_edges(eigenvalues, -0.5) == find_band_edges(eigenvalues, 0.99)


def test_two_spin_magnetic_insulator():
    """Spin up has 2 occupied bands, spin down 1: the VBM is in the up channel, the CBM in the down channel."""
    up = [[-3.0, -0.4, 2.0], [-2.8, -0.6, 2.2]]
    down = [[-2.0, 0.8, 1.5], [-1.9, 0.9, 1.6]]
    edges = find_band_edges(np.array([up, down]), 0.0)
    assert edges.vbm == -0.4
    assert edges.vbm_location == (0, 0, 1)
    assert edges.cbm == 0.8
    assert edges.cbm_location == (1, 0, 1)
    assert edges.band_gap == pytest.approx(1.2)
    # vertical gaps within one spin channel: up k0: 2.4, up k1: 2.8, down k0: 2.8, down k1: 2.8
    assert edges.direct_gap == pytest.approx(2.4)
    assert edges.direct_gap_kpoint == 0


def test_metal():
    eigenvalues = np.array([[[-3.0, -1.0], [-2.0, 1.0]]])
    edges = find_band_edges(eigenvalues, 0.0)
    assert edges.is_metal
    assert edges.vbm is None
    assert edges.cbm is None
    assert edges.band_gap == 0.0
    assert edges.direct_gap is None
    assert not edges.is_direct


def test_gap_below_threshold_is_metallic():
    eigenvalues = np.array([[[-1.0, -0.0001, 0.0001], [-1.0, -0.0002, 0.0002]]])
    assert find_band_edges(eigenvalues, 0.0, gap_threshold=1e-3).is_metal
    edges = find_band_edges(eigenvalues, 0.0, gap_threshold=1e-5)
    assert not edges.is_metal
    assert edges.band_gap == pytest.approx(2e-4)


def test_with_fermi_level_from_the_solver():
    eigenvalues = _indirect_insulator()
    weights = np.array([1.0, 1.0])
    fermi = find_fermi_level(eigenvalues, weights, 4.0, 'cold', 0.1)
    edges = find_band_edges(eigenvalues, fermi.fermi_energy)
    assert fermi.fermi_energy == pytest.approx(0.25)
    assert edges.band_gap == 1.5
    metal = find_fermi_level(eigenvalues, weights, 3.0, 'cold', 0.1)
    assert find_band_edges(eigenvalues, metal.fermi_energy).is_metal


def test_to_dict_is_json_and_round_trips():
    for fermi_energy in (0.2, -1.5):
        edges = find_band_edges(_indirect_insulator(), fermi_energy)
        data = json.loads(json.dumps(edges.to_dict()))
        assert BandEdges.from_dict(data) == edges
    assert find_band_edges(_indirect_insulator(), 0.2).to_dict()['vbm_location'] == [0, 1, 1]


@pytest.mark.parametrize(
    ('fermi_energy', 'match'),
    [(-10.0, 'below all eigenvalues'), (10.0, 'above all eigenvalues.*increase nbnd'), (float('nan'), 'finite')],
)
def test_errors(fermi_energy, match):
    with pytest.raises(ValueError, match=match):
        find_band_edges(_indirect_insulator(), fermi_energy)


def test_partially_filled_level_without_a_crossing_band_is_a_metal_when_the_solver_says_so():
    """Gamma only, 3 electrons in levels of 2: the second level is half filled, but no band can cross E_F."""
    eigenvalues = np.array([[[-2.0, 0.0, 3.0]]])
    weights = np.array([2.0])
    fermi = find_fermi_level(eigenvalues, weights, 3.0, 'gaussian', 0.1)
    assert not fermi.is_gapped
    assert not find_band_edges(eigenvalues, fermi.fermi_energy).is_metal  # the spectrum alone cannot tell
    assert find_band_edges(eigenvalues, fermi.fermi_energy, is_gapped=fermi.is_gapped).is_metal
    # a zero-temperature Fermi level sits on the half-filled level itself
    zero = find_fermi_level(eigenvalues, weights, 3.0, 'fixed')
    assert zero.fermi_energy == 0.0
    assert find_band_edges(eigenvalues, zero.fermi_energy, is_gapped=zero.is_gapped).is_metal
    gapped = find_fermi_level(eigenvalues, weights, 4.0, 'gaussian', 0.1)
    assert find_band_edges(eigenvalues, gapped.fermi_energy, is_gapped=gapped.is_gapped).band_gap == 3.0
