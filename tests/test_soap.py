"""Tests of the SOAP baseline (core and ``sorep.soap`` calcfunction)."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm

from aiida_sorep.core.soap import PAPER_SOAP_SETTINGS, soap_features

A_SI = 5.43
FCC = np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]]) * A_SI
DIAMOND = np.array([[0.0, 0.0, 0.0], [0.25, 0.25, 0.25]]) @ FCC


def test_paper_settings():
    assert PAPER_SOAP_SETTINGS.as_dict() == {
        'r_cut': 6.0,
        'n_max': 10,
        'l_max': 9,
        'sigma': 0.3,
        'rbf': 'gto',
        'average': 'inner',
        'species_agnostic': True,
    }


def test_supercell_invariance_and_species_agnostic():
    unit = soap_features(FCC, DIAMOND, ['Si', 'Si'])
    assert unit.shape == (550,)
    supercell = soap_features(
        np.vstack([2 * FCC[0], FCC[1], FCC[2]]), np.vstack([DIAMOND, DIAMOND + FCC[0]]), ['Si'] * 4
    )
    np.testing.assert_allclose(supercell, unit, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(soap_features(FCC, DIAMOND, ['C', 'Si']), unit)
    # a different geometry gives a different vector
    squeezed = soap_features(0.9 * FCC, 0.9 * DIAMOND, ['Si', 'Si'])
    assert np.abs(squeezed - unit).max() > 1e-3


def test_invalid_structures():
    with pytest.raises(ValueError, match='n_atoms >= 1'):
        soap_features(FCC, np.zeros((0, 3)), [])
    with pytest.raises(ValueError, match='symbols'):
        soap_features(FCC, DIAMOND, ['Si'])
    with pytest.raises(ValueError, match='non-degenerate'):
        soap_features(np.zeros((3, 3)), DIAMOND, ['Si', 'Si'])


def test_soap_calcfunction():
    from aiida_sorep.workflows.training import features_of, soap

    structure = orm.StructureData(cell=FCC.tolist())
    for position in DIAMOND:
        structure.append_atom(position=position.tolist(), symbols='Si')
    node = soap(structure)
    features, energies, kind = features_of(node)
    assert kind == 'soap' and energies is None
    np.testing.assert_allclose(features, soap_features(FCC, DIAMOND, ['Si', 'Si']))
    assert node.base.attributes.get('parameters')['r_cut'] == 6.0
