"""Smeared DOS: number of states, normalizations, spin consistency, supercell invariance, errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import trapezoid
from tight_binding import chain_bands

from aiida_sorep.core.dos import DosNormalization, normalization_factor, smeared_dos
from aiida_sorep.core.smearing import delta

SMEARINGS = ['gaussian', 'fermi-dirac', 'methfessel-paxton', 'cold']


@pytest.mark.parametrize('smearing', SMEARINGS)
def test_integral_is_the_number_of_states(smearing):
    rng = np.random.default_rng(1)
    eigenvalues = np.sort(rng.uniform(-5, 5, (1, 13, 7)), axis=-1)
    weights = np.full(13, 2 / 13)
    grid = np.linspace(-25, 25, 50001)
    dos = smeared_dos(eigenvalues, weights, grid, smearing, 0.2)
    assert trapezoid(dos, grid) == pytest.approx(2 * 7, abs=1e-8)
    per_electron = smeared_dos(eigenvalues, weights, grid, smearing, 0.2, 'electron', n_electrons=5.0)
    assert trapezoid(per_electron, grid) == pytest.approx(2 * 7 / 5.0, abs=1e-8)


def test_matches_direct_sum():
    rng = np.random.default_rng(2)
    eigenvalues = rng.uniform(-2, 2, (2, 5, 3))
    weights = np.full(5, 1 / 5)
    grid = np.linspace(-3, 3, 301)
    expected = np.zeros_like(grid)
    for s, k, n in np.ndindex(eigenvalues.shape):
        expected += weights[k] * delta((grid - eigenvalues[s, k, n]) / 0.1, 'cold') / 0.1
    np.testing.assert_allclose(smeared_dos(eigenvalues, weights, grid, 'cold', 0.1), expected, atol=1e-12)


def test_spin_consistency():
    """The same non-magnetic system given with one or two spin channels has the same total DOS."""
    eigenvalues = chain_bands(1, 30)
    weights = np.full(30, 2 / 30)
    grid = np.linspace(-5, 5, 1001)
    single = smeared_dos(eigenvalues, weights, grid)
    double = smeared_dos(np.concatenate([eigenvalues, eigenvalues]), weights / 2, grid)
    np.testing.assert_allclose(double, single, atol=1e-13)
    per_spin_single = smeared_dos(eigenvalues, weights, grid, per_spin=True)
    per_spin_double = smeared_dos(np.concatenate([eigenvalues, eigenvalues]), weights / 2, grid, per_spin=True)
    assert per_spin_single.shape == per_spin_double.shape == (2, grid.size)
    np.testing.assert_allclose(per_spin_single, per_spin_double, atol=1e-13)
    np.testing.assert_allclose(per_spin_double.sum(axis=0), single, atol=1e-13)


def test_supercell_invariance_per_volume():
    """A 3x supercell (its Hamiltonian diagonalised on the folded mesh) has the same DOS per volume as its cell."""
    volume = 3.0 * 10.0  # Å x Å^2
    unit = chain_bands(1, 24)
    supercell = chain_bands(3, 8)
    grid = np.linspace(-6, 6, 777)
    dos_unit = smeared_dos(unit, np.full(24, 2 / 24), grid, 'gaussian', 0.1, 'volume', volume=volume)
    dos_super = smeared_dos(supercell, np.full(8, 2 / 8), grid, 'gaussian', 0.1, 'volume', volume=3 * volume)
    np.testing.assert_allclose(dos_super, dos_unit, atol=1e-12)
    # per cell they differ by the factor 3
    per_cell_super = smeared_dos(supercell, np.full(8, 2 / 8), grid, 'gaussian', 0.1)
    np.testing.assert_allclose(per_cell_super, 3 * volume * dos_unit, atol=1e-10)
    assert dos_unit.max() > 0.01


def test_normalization_enum_and_factor():
    assert DosNormalization.from_name('Volume') is DosNormalization.VOLUME
    assert DosNormalization.VOLUME.unit == 'states/eV/Å^3'
    assert normalization_factor('volume', volume=4.0) == 0.25
    assert normalization_factor('electron', n_electrons=8.0) == 0.125
    assert normalization_factor('cell') == 1.0
    with pytest.raises(ValueError, match='unknown DOS normalization'):
        DosNormalization.from_name('atom')


@pytest.mark.parametrize(
    ('kwargs', 'match'),
    [
        ({'normalization': 'volume'}, r'needs the cell volume in Å\^3: pass volume='),
        ({'normalization': 'volume', 'volume': -1.0}, 'volume must be a finite positive number'),
        ({'normalization': 'electron'}, 'needs the number of electrons'),
        ({'smearing': 'fixed'}, 'finite-width smearing'),
        ({'width': 0.0}, 'positive smearing width'),
        ({'energies': np.array([[0.0]])}, 'non-empty 1D grid'),
        ({'energies': np.array([0.0, np.inf])}, 'NaN or inf'),
    ],
)
def test_errors(kwargs, match):
    arguments = {
        'eigenvalues': chain_bands(1, 4),
        'weights': np.full(4, 0.5),
        'energies': np.linspace(-1, 1, 5),
        'smearing': 'gaussian',
        'width': 0.1,
        'normalization': 'cell',
    }
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        smeared_dos(**arguments)
