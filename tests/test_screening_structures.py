"""The bundled demo structures: each builds from its space group and Wyckoff positions, with a cited source."""

from __future__ import annotations

import numpy as np
from ase.neighborlist import neighbor_list

from aiida_sorep.demo.screening import demo_structures, format_metrics, format_table, load_structure_records

EXPECTED_FORMULAS = {'ZnO': 'O2Zn2', 'SnO2': 'O4Sn2', 'BaSnO3': 'BaO3Sn', 'Ga2O3': 'Ga4O6', 'C': 'C2', 'Al': 'Al'}


def test_records_are_complete_and_cited():
    records = load_structure_records()
    names = [record['name'] for record in records]
    assert len(names) == len(set(names)) >= 15
    assert {'ZnO', 'SnO2', 'CdO', 'BaSnO3'} <= set(names)
    assert {record['category'] for record in records} == {'TCO', 'insulator', 'semiconductor', 'metal'}
    for record in records:
        assert len(record['source']) > 20, record['name']
        assert len(record['cellpar']) == 6


def test_structures_build_with_sensible_distances():
    all_atoms = demo_structures(only_demo=False)
    assert len(demo_structures()) >= 15
    for name, atoms in all_atoms.items():
        if name in EXPECTED_FORMULAS:
            assert atoms.get_chemical_formula() == EXPECTED_FORMULAS[name]
        _, _, distances = neighbor_list('ijd', atoms, 5.0)
        assert 1.4 < distances.min() < 4.5, (name, distances.min())  # no overlapping atoms, no empty cells
        assert np.all(atoms.pbc)
    # Wurtzite ZnO: the Zn-O bond along c is u*c.
    zno = all_atoms['ZnO']
    _, _, distances = neighbor_list('ijd', zno, 2.1)
    assert np.isclose(distances.min(), min(0.3819 * 5.2042, 1.9743), atol=0.01)


def test_table_formatting():
    rows = [
        {'name': 'ZnO', 'category': 'TCO', 'role': 'training', 'label': 1},
        {'name': 'Al', 'category': 'metal', 'role': 'screened', 'predicted': 0, 'probability': 0.125},
    ]
    table = format_table(rows)
    assert 'ZnO' in table and '0.12' in table
    text = format_metrics({'summary': {'balanced_accuracy': {'mean': 0.75, 'std': 0.25, 'n': 3}}, 'splits': [1, 2, 3]})
    assert '0.75 ± 0.25' in text and 'tpr' in text


def test_progress_lines_use_names_and_do_not_duplicate():
    import logging

    from aiida_sorep.demo.screening import _Progress

    lines: list[str] = []
    logger = logging.getLogger('aiida-sorep-test-progress')
    other = logging.StreamHandler()
    other.setLevel(logging.INFO)
    logger.addHandler(other)
    logger.setLevel(logging.INFO)
    progress = _Progress(lines.append, start=0.0, names={'O2Zn2_76': 'ZnO'})
    progress.attach(logger)
    assert other.level == logging.WARNING
    logger.info('[90|ScreeningWorkChain|_launch]: launched SingleShotWorkChain<97> (singleshot) for O2Zn2_76')
    logger.info('[97|SingleShotWorkChain|run_process]: launching SingleShotCalculation<100> iteration #1')
    progress.detach(logger)
    logger.removeHandler(other)
    assert other.level == logging.INFO
    assert len(lines) == 1 and lines[0].endswith('launched SingleShotWorkChain<97> (singleshot) for ZnO')
