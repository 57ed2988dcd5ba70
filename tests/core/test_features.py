"""SOREP feature maps: the paper's defaults, serialisation, shift and supercell invariance, metals, batch API."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tight_binding import chain_bands

from aiida_sorep.core.dos import DosNormalization, smeared_dos
from aiida_sorep.core.features import (
    DEFAULT_FEATURE_PARAMETERS,
    FeatureKind,
    FeatureParameters,
    compute_features,
    featurize,
    featurize_batch,
)
from aiida_sorep.core.smearing import Smearing


def _insulator(seed: int = 0, n_kpoints: int = 30) -> tuple[np.ndarray, np.ndarray, float]:
    rng = np.random.default_rng(seed)
    valence = np.sort(rng.uniform(-9.0, -0.7, (1, n_kpoints, 6)), axis=-1)
    conduction = np.sort(rng.uniform(0.6, 9.0, (1, n_kpoints, 6)), axis=-1)
    return np.concatenate([valence, conduction], axis=-1), np.full(n_kpoints, 2 / n_kpoints), 12.0


def _metal(seed: int = 1, n_kpoints: int = 30) -> tuple[np.ndarray, np.ndarray, float]:
    rng = np.random.default_rng(seed)
    return np.sort(rng.uniform(-9.0, 9.0, (1, n_kpoints, 12)), axis=-1), np.full(n_kpoints, 2 / n_kpoints), 11.0


def test_defaults_are_the_papers():
    vbm, fermi, cbm, concatenated = (DEFAULT_FEATURE_PARAMETERS[k] for k in FeatureKind)
    assert (vbm.window, fermi.window, cbm.window, concatenated.window) == ((-2, 6), (-5, 5), (-6, 2), (-1, 1))
    for parameters in DEFAULT_FEATURE_PARAMETERS.values():
        assert parameters.n_points == 513
        assert parameters.smearing is Smearing.GAUSSIAN
        assert parameters.width == 0.05
        assert parameters.normalization is DosNormalization.VOLUME
    assert concatenated.points_per_block == 171
    assert concatenated.kind.references == ('vbm', 'fermi', 'cbm')
    np.testing.assert_allclose(vbm.grid()[[0, 128, -1]], [-2.0, 0.0, 6.0])


@pytest.mark.parametrize('parameters', list(DEFAULT_FEATURE_PARAMETERS.values()), ids=lambda p: p.kind.value)
def test_parameters_round_trip_through_json(parameters):
    data = json.loads(json.dumps(parameters.to_dict()))
    assert FeatureParameters.from_dict(data) == parameters
    assert data['kind'] == parameters.kind.value


def test_parameters_coerce_names():
    parameters = FeatureParameters('fermi', [-1, 1], 11, smearing='mv', width=0.1, normalization='cell')
    assert parameters.kind is FeatureKind.FERMI
    assert parameters.smearing is Smearing.COLD
    assert parameters.normalization is DosNormalization.CELL
    assert parameters.window == (-1.0, 1.0)


@pytest.mark.parametrize(
    ('kwargs', 'match'),
    [
        ({'kind': 'gap'}, 'unknown feature kind'),
        ({'window': (1.0, -1.0)}, 'lower < upper'),
        ({'kind': 'concatenated', 'n_points': 100}, 'multiple of 3'),
        ({'n_points': 1}, 'at least 2 points'),
        ({'n_points': 10.5}, 'must be an integer'),
        ({'smearing': 'fixed'}, 'finite-width smearing'),
        ({'width': 0.0}, 'positive width'),
        ({'normalization': 'atom'}, 'unknown DOS normalization'),
    ],
)
def test_invalid_parameters(kwargs, match):
    arguments = {'kind': 'vbm', 'window': (-2.0, 6.0), 'n_points': 513}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        FeatureParameters(**arguments)
    with pytest.raises(ValueError, match='unknown feature parameters'):
        FeatureParameters.from_dict({**DEFAULT_FEATURE_PARAMETERS[FeatureKind.VBM].to_dict(), 'sigma': 1})


def test_featurize_insulator():
    eigenvalues, weights, n_electrons = _insulator()
    fermi, edges, maps = featurize(eigenvalues, weights, n_electrons, volume=40.0)
    assert fermi.method == 'midgap'
    assert not edges.is_metal
    assert edges.vbm < fermi.fermi_energy < edges.cbm
    assert set(maps) == set(FeatureKind)
    for kind, value in maps.items():
        assert value.features.shape == value.energies.shape == (513,)
        assert value.parameters == DEFAULT_FEATURE_PARAMETERS[kind]
        assert np.all(np.isfinite(value.features))
    assert maps[FeatureKind.VBM].reference_energies == (edges.vbm,)
    assert maps[FeatureKind.CONCATENATED].reference_energies == (edges.vbm, fermi.fermi_energy, edges.cbm)
    # VBM map: the DOS per volume at VBM + E
    grid = maps[FeatureKind.VBM].energies
    expected = smeared_dos(eigenvalues, weights, edges.vbm + grid, 'gaussian', 0.05, 'volume', volume=40.0)
    np.testing.assert_allclose(maps[FeatureKind.VBM].features, expected, rtol=1e-14, atol=0)
    # the Fermi-centred map is (numerically) empty in the middle of the gap
    fermi_map = maps[FeatureKind.FERMI]
    assert fermi_map.features[np.abs(fermi_map.energies) < 0.2].max() < 1e-12


def test_metals_use_the_fermi_level_for_vbm_and_cbm_maps():
    eigenvalues, weights, n_electrons = _metal()
    fermi, edges, maps = featurize(eigenvalues, weights, n_electrons, smearing='cold', width=0.1, volume=30.0)
    assert edges.is_metal
    assert edges.vbm is None
    for kind in (FeatureKind.VBM, FeatureKind.CBM):
        assert maps[kind].reference_energies == (fermi.fermi_energy,)
    # the VBM and CBM maps are then windows of the same DOS: [E_F-2, E_F+2] is common to both
    vbm_map, cbm_map = maps[FeatureKind.VBM].features, maps[FeatureKind.CBM].features
    np.testing.assert_allclose(vbm_map[:257], cbm_map[256:], rtol=1e-12)


@pytest.mark.parametrize('case', [_insulator, _metal])
@pytest.mark.parametrize('smearing', ['gaussian', 'cold'])
def test_features_are_invariant_under_a_rigid_shift(case, smearing):
    eigenvalues, weights, n_electrons = case()
    shift = 3.217
    fermi, _, maps = featurize(eigenvalues, weights, n_electrons, smearing=smearing, width=0.1, volume=25.0)
    fermi_s, _, maps_s = featurize(eigenvalues + shift, weights, n_electrons, smearing=smearing, width=0.1, volume=25.0)
    assert fermi_s.fermi_energy == pytest.approx(fermi.fermi_energy + shift, abs=1e-9)
    for kind in FeatureKind:
        scale = maps[kind].features.max()
        assert scale > 0
        np.testing.assert_allclose(maps_s[kind].features, maps[kind].features, atol=1e-8 * scale)


@pytest.mark.parametrize('n_electrons', [2.0, 1.4], ids=['insulator', 'metal'])
def test_features_of_a_supercell_equal_those_of_its_unit_cell(n_electrons):
    """Diatomic chain: unit cell (24 k-points) vs 3x supercell (8 k-points, Hamiltonian diagonalised), per volume."""
    unit = featurize(chain_bands(1, 24), np.full(24, 2 / 24), n_electrons, smearing='gaussian', width=0.05, volume=30)
    supercell = featurize(
        chain_bands(3, 8), np.full(8, 2 / 8), 3 * n_electrons, smearing='gaussian', width=0.05, volume=90
    )
    assert unit[0].fermi_energy == pytest.approx(supercell[0].fermi_energy, abs=1e-9)
    assert unit[1].is_metal is supercell[1].is_metal is (n_electrons != 2.0)
    for kind in FeatureKind:
        scale = unit[2][kind].features.max()
        assert scale > 0
        np.testing.assert_allclose(supercell[2][kind].features, unit[2][kind].features, atol=1e-9 * scale)


def test_featurize_requires_the_volume_for_the_default_normalization():
    eigenvalues, weights, n_electrons = _insulator()
    with pytest.raises(ValueError, match=r'needs the cell volume in Å\^3'):
        featurize(eigenvalues, weights, n_electrons)
    cell = FeatureParameters('fermi', (-5, 5), 101, normalization='cell')
    _, _, maps = featurize(eigenvalues, weights, n_electrons, parameters=cell)
    assert list(maps) == [FeatureKind.FERMI]
    with pytest.raises(ValueError, match='two parameterizations of kind fermi'):
        featurize(eigenvalues, weights, n_electrons, parameters=[cell, cell])


def test_compute_features_with_explicit_references():
    eigenvalues, weights, _ = _insulator()
    parameters = FeatureParameters('concatenated', (-1, 1), 30, normalization='electron')
    value = compute_features(eigenvalues, weights, parameters, fermi_energy=0.0, vbm=-0.5, cbm=0.5, n_electrons=12)
    assert value.features.shape == (30,)
    np.testing.assert_allclose(value.energies, np.tile(np.linspace(-1, 1, 10), 3))
    with pytest.raises(ValueError, match='vbm=1 eV is above cbm=-1 eV'):
        compute_features(eigenvalues, weights, parameters, fermi_energy=0.0, vbm=1.0, cbm=-1.0, n_electrons=12)


def _batch_inputs(n_spins: int = 1):
    eigenvalues, weights, n_electrons, volumes = [], None, [], []
    for seed in range(6):
        e, weights, n = (_insulator if seed % 2 else _metal)(seed)
        if n_spins == 2:
            e = np.concatenate([e, e + 0.01 * seed])
        eigenvalues.append(e)
        n_electrons.append(n)
        volumes.append(20.0 + seed)
    assert weights is not None
    return np.array(eigenvalues), weights / n_spins, np.array(n_electrons), np.array(volumes)


@pytest.mark.parametrize(
    ('smearing', 'width', 'n_spins', 'feature_smearing'),
    [
        ('gaussian', 0.0, 1, 'gaussian'),
        ('gaussian', 0.1, 1, 'gaussian'),
        ('cold', 0.136, 1, 'gaussian'),
        ('mp', 0.05, 1, 'gaussian'),
        ('fd', 0.05, 1, 'gaussian'),
        ('cold', 0.1, 2, 'gaussian'),
        ('cold', 0.1, 1, 'cold'),
    ],
)
def test_featurize_batch_matches_featurize(smearing, width, n_spins, feature_smearing):
    eigenvalues, weights, n_electrons, volumes = _batch_inputs(n_spins)
    parameters = [
        FeatureParameters(p.kind, p.window, p.n_points, smearing=feature_smearing)
        for p in DEFAULT_FEATURE_PARAMETERS.values()
    ]
    batch = featurize_batch(
        eigenvalues,
        weights,
        n_electrons,
        smearing=smearing,
        width=width,
        volumes=volumes,
        parameters=parameters,
        chunk_size=4,
    )
    assert batch.is_metal.tolist() == [True, False] * 3
    for i in range(len(eigenvalues)):
        fermi, edges, maps = featurize(
            eigenvalues[i], weights, n_electrons[i], smearing=smearing, width=width, volume=volumes[i],
            parameters=parameters,
        )  # fmt: skip
        assert batch.fermi_energy[i] == pytest.approx(fermi.fermi_energy, abs=1e-8)
        assert batch.fermi_method[i] == fermi.method
        assert batch.n_electrons_error[i] == pytest.approx(fermi.n_electrons_error, abs=1e-8)
        assert batch.is_metal[i] == edges.is_metal
        assert batch.band_gap[i] == pytest.approx(edges.band_gap, abs=1e-12)
        for kind, value in maps.items():
            np.testing.assert_allclose(
                batch.features[kind][i], value.features, rtol=0, atol=1e-11 * value.features.max()
            )
            np.testing.assert_array_equal(batch.energies[kind], value.energies)


def test_featurize_batch_errors():
    eigenvalues, weights, n_electrons, volumes = _batch_inputs()
    with pytest.raises(ValueError, match='material 0: needs more than n_electrons/2=12 bands'):
        featurize_batch(eigenvalues, weights, np.full(6, 24.0), volumes=volumes)
    with pytest.raises(ValueError, match='weights of material 0 sum to 1'):
        featurize_batch(eigenvalues, weights / 2, n_electrons, volumes=volumes)
    with pytest.raises(ValueError, match='needs the cell volumes'):
        featurize_batch(eigenvalues, weights, n_electrons)
    bad = eigenvalues.copy()
    bad[3, 0, 2, 1] = np.nan
    with pytest.raises(ValueError, match='material 3: eigenvalues contain NaN or inf'):
        featurize_batch(bad, weights, n_electrons, volumes=volumes)


def test_featurize_batch_picks_the_physical_root_of_a_non_monotonic_cold_count():
    """Flat bands at -3, 0, 3.3 eV with 4.05 electrons: N(E) - N has roots at 0.099, 0.221 and 3.195 eV for cold
    smearing of 0.1 eV (see test_fermi.py); the batch solver must agree with find_fermi_level on the last one."""
    eigenvalues = np.array([[[-3.0, 0.0, 3.3]] * 4] * 3)
    weights = np.full(4, 0.5)
    parameters = FeatureParameters('fermi', (-1, 1), 21, normalization='cell')
    batch = featurize_batch(eigenvalues, weights, 4.05, smearing='cold', width=0.1, parameters=parameters)
    single, _, _ = featurize(eigenvalues[0], weights, 4.05, smearing='cold', width=0.1, parameters=parameters)
    assert 3.0 < single.fermi_energy < 3.3
    np.testing.assert_allclose(batch.fermi_energy, single.fermi_energy, atol=1e-9)


@st.composite
def _batches(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_materials = draw(st.integers(1, 5))
    n_kpoints = draw(st.integers(1, 8))
    n_bands = draw(st.integers(2, 10))
    eigenvalues = np.sort(rng.normal(0.0, draw(st.floats(0.3, 6.0)), (n_materials, n_kpoints, n_bands)), axis=-1)
    if draw(st.booleans()):  # open a gap above band n_bands // 2 in every material
        eigenvalues[:, :, n_bands // 2 :] += draw(st.floats(0.0, 3.0)) + np.ptp(eigenvalues)
    raw = rng.uniform(0.2, 1.0, n_kpoints)
    weights = raw / raw.sum() * 2.0
    integer = draw(st.booleans())
    n_electrons = np.array(
        [2.0 * (n_bands // 2) if integer else draw(st.floats(0.2, 2.0 * n_bands - 0.2)) for _ in range(n_materials)]
    )
    smearing = draw(st.sampled_from(['gaussian', 'fermi-dirac', 'methfessel-paxton', 'cold']))
    width = draw(st.sampled_from([0.0, 0.01, 0.1, 0.5]))
    return eigenvalues, weights, n_electrons, smearing, width


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(_batches())
def test_featurize_batch_matches_featurize_on_random_spectra(case):
    eigenvalues, weights, n_electrons, smearing, width = case
    parameters = [
        FeatureParameters('vbm', (-2, 6), 33, normalization='cell'),
        FeatureParameters('concatenated', (-1, 1), 21, width=0.1, normalization='cell'),
    ]
    batch = featurize_batch(
        eigenvalues, weights, n_electrons, smearing=smearing, width=width, parameters=parameters, chunk_size=2
    )
    for i in range(eigenvalues.shape[0]):
        fermi, edges, maps = featurize(
            eigenvalues[i], weights, n_electrons[i], smearing=smearing, width=width, parameters=parameters
        )
        assert batch.fermi_energy[i] == pytest.approx(fermi.fermi_energy, abs=1e-7)
        assert batch.is_metal[i] == edges.is_metal
        for kind, value in maps.items():
            np.testing.assert_allclose(
                batch.features[kind][i], value.features, atol=1e-9 * max(1.0, value.features.max())
            )
