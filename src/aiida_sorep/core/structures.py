"""Reference crystal structures used by the kinetic-SOREP tests, benchmarks and docs (pymatgen ``Structure``).

Sources (experimental structures):

* Si, Ge (diamond, Fd-3m): a = 5.431 Å and 5.658 Å (room-temperature lattice constants, e.g. Kittel,
  *Introduction to Solid State Physics*, 8th ed., Table 1.3).
* SnO2 (rutile, P4_2/mnm): a = 4.7374 Å, c = 3.1864 Å, O at (x, x, 0) with x = 0.3056; Bolzan, Fong, Kennedy &
  Howard, Acta Cryst. B53, 373 (1997).
* K2Sn2O3 (cubic, I2_13, No. 199, 14 atoms in the body-centred primitive cell, conventional a = 8.5142 Å): the
  PBE-relaxed structure of the Materials Project (Jain et al., APL Mater. 1, 011002 (2013)), as distributed in
  the test data of atomate (``atomate/vasp/test_files/lobster/vasp_lobster_output/POSCAR``). K2Sn2O3 is the
  low-hole-mass p-type transparent-conductor candidate of Hautier et al., Nat. Commun. 4, 2292 (2013). PBE
  overestimates lattice constants by about 1 %; the experimental refinement is not used here.
* BaTiO3, four phases from neutron powder diffraction by Kwei, Lawson, Billinge & Cheong, J. Phys. Chem. 97,
  2368 (1993): cubic Pm-3m, tetragonal P4mm, orthorhombic Amm2 and rhombohedral R3m. The numbers below were
  transcribed from that paper's tables from memory and not re-checked against it here; they reproduce the
  published space groups and the size of the ferroelectric displacements (~0.1 Å), which is what the
  clustering test needs.

This module does not import ``aiida``.
"""

from __future__ import annotations

import numpy as np
from pymatgen.core import Lattice, Structure

__all__ = (
    'BATIO3_PHASES',
    'batio3',
    'diamond',
    'distorted_copy',
    'k2sn2o3',
    'rutile_sno2',
)

BATIO3_PHASES = ('cubic', 'tetragonal', 'orthorhombic', 'rhombohedral')


def diamond(element: str, a: float) -> Structure:
    """Primitive diamond cell (2 atoms) with conventional lattice constant ``a`` (Å)."""
    lattice = Lattice(0.5 * a * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]]))
    return Structure(lattice, [element, element], np.array([[0, 0, 0], [0.25, 0.25, 0.25]]))


def rutile_sno2() -> Structure:
    """Rutile SnO2 (6 atoms), Bolzan et al., Acta Cryst. B53, 373 (1997)."""
    return Structure.from_spacegroup(
        'P4_2/mnm', Lattice.tetragonal(4.7374, 3.1864), ['Sn', 'O'], [[0, 0, 0], [0.3056, 0.3056, 0]]
    )


def k2sn2o3() -> Structure:
    """K2Sn2O3 (14 atoms, I2_13), the Materials Project PBE structure (see the module docstring)."""
    half = 4.257108  # a / 2, Å
    lattice = Lattice(half * np.array([[-1.0, 1.0, 1.0], [1.0, -1.0, 1.0], [1.0, 1.0, -1.0]]))
    species = ['K'] * 4 + ['Sn'] * 4 + ['O'] * 6
    frac = [
        [0.481900, 0.500000, 0.000000], [0.018100, 0.018100, 0.018100],
        [0.000000, 0.481900, 0.500000], [0.500000, 0.000000, 0.481900],
        [0.500000, 0.000000, 0.011623], [0.000000, 0.011623, 0.500000],
        [0.488377, 0.488377, 0.488377], [0.011623, 0.500000, 0.000000],
        [0.750000, 0.979273, 0.229273], [0.250000, 0.520727, 0.270727],
        [0.979273, 0.229273, 0.750000], [0.229273, 0.750000, 0.979273],
        [0.270727, 0.250000, 0.520727], [0.520727, 0.270727, 0.250000],
    ]  # fmt: skip
    return Structure(lattice, species, frac)


def batio3(phase: str) -> Structure:
    """BaTiO3 polymorph ``phase`` (one of :data:`BATIO3_PHASES`), 5 atoms (primitive cell), Kwei et al. (1993)."""
    if phase == 'cubic':
        lattice = Lattice.cubic(4.0060)
        frac = np.array([[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]], dtype=float)
        return Structure(lattice, ['Ba', 'Ti', 'O', 'O', 'O'], frac)
    if phase == 'tetragonal':
        return Structure.from_spacegroup(
            'P4mm',
            Lattice.tetragonal(3.9970, 4.0314),
            ['Ba', 'Ti', 'O', 'O'],
            [[0, 0, 0], [0.5, 0.5, 0.5224], [0.5, 0.5, -0.0244], [0.5, 0, 0.4895]],
        )
    if phase == 'orthorhombic':
        conventional = Structure.from_spacegroup(
            'Amm2',
            Lattice.orthorhombic(3.9841, 5.6741, 5.6916),
            ['Ba', 'Ti', 'O', 'O'],
            [[0, 0, 0], [0.5, 0, 0.4896], [0, 0, 0.5103], [0.5, 0.2558, 0.2336]],
        )
        return conventional.get_primitive_structure()
    if phase == 'rhombohedral':  # rhombohedral axes: O at (x, x, z) and its two cyclic permutations
        x_ti, x_o, z_o = 0.4863, 0.5109, 0.0187
        frac = np.array([[0, 0, 0], [x_ti, x_ti, x_ti], [x_o, x_o, z_o], [x_o, z_o, x_o], [z_o, x_o, x_o]])
        return Structure(Lattice.rhombohedral(4.0036, 89.839), ['Ba', 'Ti', 'O', 'O', 'O'], frac)
    raise ValueError(f'unknown BaTiO3 phase {phase!r}: choose one of {BATIO3_PHASES}')


def distorted_copy(structure: Structure, max_displacement: float, rng: np.random.Generator) -> Structure:
    """Copy of ``structure`` with every atom moved by a random vector of length < ``max_displacement`` (Å)."""
    directions = rng.normal(size=(len(structure), 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    lengths = rng.uniform(0.0, max_displacement, size=len(structure))
    return Structure(
        structure.lattice,
        structure.species,
        structure.cart_coords + directions * lengths[:, None],
        coords_are_cartesian=True,
    )
