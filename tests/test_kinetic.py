"""Tests of the kinetic-SOREP core (:mod:`aiida_sorep.core.kinetic`) and the ANO-ML-OS basis (no database)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from ase import Atoms
from ase.build import nanotube
from pymatgen.core import Lattice, Structure

from aiida_sorep.core import basis as basis_module
from aiida_sorep.core import kinetic
from aiida_sorep.core.similarity import cosine_distance_matrix
from aiida_sorep.core.structures import diamond, distorted_copy, k2sn2o3, rutile_sno2

SI = diamond('Si', 5.431)


@pytest.fixture(scope='module')
def si_spectrum() -> kinetic.OperatorSpectrum:
    return kinetic.compute_operator_spectrum(SI, mesh=(3, 3, 3))


# --- ANO-ML-OS basis -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ('symbol', 'expected'),
    [
        ('H', {0: 1}),
        ('C', {0: 2, 1: 2}),
        ('Na', {0: 3}),
        ('K', {0: 4}),
        ('Ti', {0: 4, 2: 3}),
        ('Ge', {0: 4, 1: 4, 2: 3}),
        ('Sn', {0: 5, 1: 5, 2: 4}),
        ('Ba', {0: 6}),
        ('La', {0: 6, 2: 5}),
        ('Ce', {0: 6, 2: 5, 3: 4}),
        ('Hf', {0: 6, 2: 5}),
        ('Pb', {0: 6, 1: 6, 2: 5}),
        ('U', {0: 7, 2: 6, 3: 5}),
    ],
)
def test_valence_subshells(symbol, expected):
    assert basis_module.valence_subshells(symbol) == expected


def test_shipped_basis_matches_generator_and_has_right_nodes():
    """The data file is exactly what the generator derives from PySCF's ANO-RCC (which checks radial nodes)."""
    from aiida_sorep.resources.make_ano_ml_os import build

    generated = build()
    shipped = basis_module.load_ano_ml_os(basis_module.available_elements())
    assert len(shipped) == 96
    assert generated['basis'] == shipped
    ti = shipped['Ti']
    assert [block[0] for block in ti] == [0, 2]
    assert basis_module.contraction_nodes(ti[0]) == 3  # 4s
    assert basis_module.contraction_nodes(ti[1]) == 0  # 3d


def test_basis_unknown_element():
    with pytest.raises(ValueError, match='H-Cm'):
        basis_module.load_ano_ml_os(['Og'])
    with pytest.raises(ValueError, match='not covered'):
        basis_module.valence_subshells('Bk')


# --- k-points ---------------------------------------------------------------------------------------------


def test_kpoint_mesh_from_spacing():
    assert kinetic.kpoint_mesh_from_spacing(np.eye(3) * 4.0, 0.2) == (8, 8, 8)  # |b| = 2π/4 = 1.571 1/Å
    assert kinetic.kpoint_mesh_from_spacing(np.diag([4.0, 8.0, 100.0]), 0.5) == (4, 2, 1)
    with pytest.raises(ValueError, match='positive'):
        kinetic.kpoint_mesh_from_spacing(np.eye(3), -0.1)


@pytest.mark.parametrize('mesh', [(1, 1, 1), (2, 3, 4), (4, 4, 4), (5, 1, 3)])
def test_time_reversal_reduction(mesh):
    full, w_full = kinetic.kpoint_mesh(mesh, time_reversal=False)
    half, w_half = kinetic.kpoint_mesh(mesh, time_reversal=True)
    assert len(full) == np.prod(mesh)
    np.testing.assert_allclose(w_full, 1 / np.prod(mesh))
    assert np.isclose(w_half.sum(), 1.0)
    # every k of the full mesh is a kept point or minus a kept point
    kept = {tuple(np.round(k * mesh) % mesh) for k in half}
    for k in np.round(full * mesh).astype(int):
        assert tuple(k % mesh) in kept or tuple(-k % mesh) in kept
    # self-conjugate points (k = -k) have half the weight of the others
    n_self = np.count_nonzero(np.all((2 * np.round(full * mesh)) % mesh == 0, axis=1))
    assert len(half) == (np.prod(mesh) + n_self) // 2


# --- spectra ----------------------------------------------------------------------------------------------


def test_generalized_eigenvalues_match_scipy(si_spectrum):
    """With no linear dependence, the canonical orthogonalisation gives the plain generalized eigenvalues."""
    from pyscf.pbc import gto as pbcgto

    cell = pbcgto.Cell(
        a=SI.lattice.matrix,
        atom=[('Si', tuple(p)) for p in SI.cart_coords],
        unit='Angstrom',
        basis=basis_module.load_ano_ml_os(['Si']),
        exp_to_discard=kinetic.DEFAULT_EXP_TO_DISCARD,
        verbose=0,
    ).build()
    kpts = cell.get_abs_kpts(si_spectrum.kpoints)
    t = cell.pbc_intor('int1e_kin', hermi=1, kpts=kpts)
    s = cell.pbc_intor('int1e_ovlp', hermi=1, kpts=kpts)
    reference = np.array([scipy.linalg.eigh(tk, sk, eigvals_only=True) for tk, sk in zip(t, s, strict=True)])
    assert si_spectrum.n_dropped == 0
    np.testing.assert_allclose(si_spectrum.eigenvalues, reference * kinetic.HARTREE_TO_EV, rtol=1e-8, atol=1e-8)
    assert si_spectrum.n_orbitals == 8  # 3s + 3p on two atoms
    assert si_spectrum.eigenvalues.shape == (len(si_spectrum.kpoints), 8)


def test_near_linear_dependence_is_dropped_not_fatal():
    """Two H atoms 1e-4 Å apart: the unit-diagonal overlap has an eigenvalue ~3e-9 at every k, below threshold."""
    atoms = Atoms('H2', positions=[(0, 0, 0), (0, 0, 1e-4)], cell=np.eye(3) * 3.0, pbc=True)
    spectrum = kinetic.compute_operator_spectrum(atoms, mesh=(2, 2, 2), exp_to_discard=None, kpoint_reduction='none')
    assert spectrum.n_dropped == len(spectrum.kpoints)  # one direction per k-point
    values = spectrum.eigenvalues[spectrum.valid]
    assert np.all(np.isfinite(values))
    single = kinetic.compute_operator_spectrum(
        Atoms('H', cell=np.eye(3) * 3.0, pbc=True), mesh=(2, 2, 2), exp_to_discard=None, kpoint_reduction='none'
    )
    # the surviving state is the single-atom Bloch sum
    np.testing.assert_allclose(np.sort(values), np.sort(single.eigenvalues.ravel()), rtol=1e-3)


def test_operators_differ_as_expected(si_spectrum):
    overlap = kinetic.compute_operator_spectrum(SI, mesh=(2, 2, 2), operator='overlap')
    assert overlap.operator == 'overlap'
    assert np.all(overlap.eigenvalues > 0)  # a Gram matrix
    with_nuclei = kinetic.compute_operator_spectrum(SI, mesh=(1, 1, 1), operator=kinetic.Operator.KINETIC_NUCLEAR)
    kinetic_only = kinetic.compute_operator_spectrum(SI, mesh=(1, 1, 1))
    # the nuclear attraction is negative definite: every level goes down
    assert np.all(with_nuclei.eigenvalues < kinetic_only.eigenvalues)
    with pytest.raises(ValueError):
        kinetic.compute_operator_spectrum(SI, mesh=(1, 1, 1), operator='potential')


# --- features ---------------------------------------------------------------------------------------------


def test_supercell_invariance():
    """Per-volume features of a cell and its 2x1x1 supercell (commensurate Γ-centred meshes) agree to 1e-6."""
    cell = kinetic.kinetic_sorep(SI, mesh=(4, 3, 3))
    supercell = kinetic.kinetic_sorep(SI * (2, 1, 1), mesh=(2, 3, 3))
    scale = np.abs(cell.features).max()
    assert np.abs(cell.features - supercell.features).max() / scale < 1e-6
    assert supercell.spectrum.n_orbitals == 2 * cell.spectrum.n_orbitals


def test_normalizations_and_cutoff():
    grid = np.linspace(0.0, 400.0, 4001)
    orbital = kinetic.kinetic_sorep(SI, mesh=(2, 2, 2), energies=grid, normalization='orbital', width=0.5)
    assert np.trapezoid(orbital.features, grid) == pytest.approx(1.0, rel=1e-6)
    volume = kinetic.kinetic_sorep(SI, mesh=(2, 2, 2), energies=grid, normalization='volume', width=0.5)
    both = kinetic.kinetic_sorep(SI, mesh=(2, 2, 2), energies=grid, normalization='volume_orbital', width=0.5)
    np.testing.assert_allclose(volume.features / 8, both.features, rtol=1e-12)
    np.testing.assert_allclose(orbital.features * 8 / SI.volume, volume.features, rtol=1e-12)
    cut = kinetic.kinetic_sorep(SI, mesh=(2, 2, 2), energies=grid, normalization='orbital', cumulative_cutoff=0.5)
    assert np.trapezoid(cut.features, grid) == pytest.approx(0.5, abs=0.13)  # 8 states per k: steps of 1/8
    assert cut.cutoff_energy is not None
    assert np.all(cut.features[grid > cut.cutoff_energy + 5] < 1e-12)
    assert cut.parameters['kind'] == 'kinetic'


def test_invalid_arguments():
    with pytest.raises(ValueError, match='strictly increasing'):
        kinetic.kinetic_sorep(SI, mesh=(1, 1, 1), energies=np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match='cumulative_cutoff'):
        kinetic.kinetic_sorep(SI, mesh=(1, 1, 1), cumulative_cutoff=1.5)
    with pytest.raises(ValueError, match='width'):
        kinetic.gaussian_dos(np.zeros(1), np.ones(1), np.linspace(0, 1, 3), width=0.0)
    with pytest.raises(ValueError, match='pymatgen Structure or an ASE Atoms'):
        kinetic.structure_arrays('Si')
    disordered = Structure(Lattice.cubic(3.0), [{'Si': 0.5, 'Ge': 0.5}], [[0, 0, 0]])
    with pytest.raises(ValueError, match='disordered'):
        kinetic.structure_arrays(disordered)


@pytest.mark.parametrize('oxide', [k2sn2o3, rutile_sno2], ids=['K2Sn2O3', 'SnO2'])
def test_si_ge_closer_than_to_tin_oxides(oxide):
    """Si and Ge (same structure, isoelectronic) are closer to each other than either is to a tin oxide."""
    features = [
        kinetic.kinetic_sorep(structure, kspacing=0.4).features for structure in (SI, diamond('Ge', 5.658), oxide())
    ]
    d = cosine_distance_matrix(features)
    assert d[0, 1] < d[0, 2]
    assert d[0, 1] < d[1, 2]


def test_nanotubes_have_different_kinetic_dos():
    """Semiconducting (8,0) and metallic (5,5) tubes: cosine distance 100x above a 0.01 Å distortion."""
    results = {}
    for chirality in ((8, 0), (5, 5)):
        tube = nanotube(*chirality, length=1, vacuum=4.0)
        tube.pbc = True
        results[chirality] = tube
    kwargs = {'kspacing': 0.3, 'e_max': 60.0, 'n_points': 600, 'width': 0.3}
    zigzag = kinetic.kinetic_sorep(results[(8, 0)], **kwargs).features
    armchair = kinetic.kinetic_sorep(results[(5, 5)], **kwargs).features
    rng = np.random.default_rng(7)
    from pymatgen.io.ase import AseAtomsAdaptor

    shaken = distorted_copy(AseAtomsAdaptor.get_structure(results[(8, 0)]), 0.01, rng)
    zigzag_shaken = kinetic.kinetic_sorep(shaken, **kwargs).features
    d = cosine_distance_matrix([zigzag, armchair, zigzag_shaken])
    assert d[0, 1] > 0.05
    assert d[0, 1] > 100 * d[0, 2]


def test_gaussian_dos_truncated_equals_dense():
    """The windowed sum on a uniform grid equals the dense sum on the same grid made non-uniform by 1e-7 eV."""
    rng = np.random.default_rng(1)
    values = rng.uniform(-5.0, 45.0, size=3000)  # some states beyond both ends of the grid
    weights = rng.uniform(0.5, 1.5, size=values.size)
    grid = np.linspace(0.0, 40.0, 801)
    jittered = grid.copy()
    jittered[1:-1] += rng.uniform(-1e-7, 1e-7, size=grid.size - 2)  # forces the dense branch
    fast = kinetic.gaussian_dos(values, weights, grid, width=0.3, chunk=257)
    dense = kinetic.gaussian_dos(values, weights, jittered, width=0.3)
    np.testing.assert_allclose(fast, dense, rtol=1e-5, atol=1e-12 * dense.max())
    assert np.trapezoid(kinetic.gaussian_dos(np.array([20.0]), np.ones(1), grid, width=0.3), grid) == pytest.approx(1)


def test_gaussian_convention_matches_smearing_module():
    """Same Gaussian as the rest of the package (QE's w0gauss): exp(-x^2)/sqrt(pi) with x = (E - e)/sigma."""
    from aiida_sorep.core.smearing import delta

    grid = np.linspace(-3.0, 3.0, 61)
    dos = kinetic.gaussian_dos(np.array([0.2]), np.ones(1), grid, width=0.5)
    np.testing.assert_allclose(dos, delta((grid - 0.2) / 0.5, 'gaussian') / 0.5, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize('phase', ['tetragonal', 'rhombohedral'])
def test_spglib_reduction_gives_the_same_features(phase):
    """The irreducible wedge (spglib) and time reversal only give the same features, with fewer k-points."""
    from aiida_sorep.core.structures import batio3

    structure = batio3(phase)
    wedge = kinetic.kinetic_sorep(structure, mesh=(4, 4, 4), kpoint_reduction='spglib')
    pairs = kinetic.kinetic_sorep(structure, mesh=(4, 4, 4), kpoint_reduction='time_reversal')
    full = kinetic.kinetic_sorep(structure, mesh=(4, 4, 4), kpoint_reduction='none')
    assert len(wedge.spectrum.kpoints) < len(pairs.spectrum.kpoints) < len(full.spectrum.kpoints) == 64
    np.testing.assert_allclose(wedge.spectrum.weights.sum(), 1.0)
    scale = full.features.max()
    np.testing.assert_allclose(wedge.features, full.features, rtol=0, atol=1e-9 * scale)
    np.testing.assert_allclose(pairs.features, full.features, rtol=0, atol=1e-9 * scale)
