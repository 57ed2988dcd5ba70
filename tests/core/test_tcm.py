"""Truth table of the TCM criteria."""

from __future__ import annotations

import pytest

from aiida_sorep.core.tcm import TcmThresholds, tcm_label


@pytest.mark.parametrize(
    'case',
    [
        (3.0, 0.3, -2.0, False, True, True, False),  # light electrons
        (3.0, 2.0, -0.5, False, True, False, True),  # light holes
        (3.0, 0.3, -0.5, False, True, True, True),  # both
        (3.0, 2.0, -2.0, False, False, False, False),  # both heavy
        (0.4, 0.3, -0.5, False, False, True, True),  # opaque
        (0.5, 0.3, -0.5, False, False, True, True),  # gap must be strictly > 0.5
        (0.5001, 0.5, -1.0, False, True, True, True),  # mass thresholds inclusive
        (3.0, None, None, False, False, False, False),  # masses undefined
        (3.0, -0.3, 0.4, False, False, False, False),  # wrong signs never count
        (0.0, None, None, True, False, False, False),  # metal
        (3.0, 0.3, -0.5, True, False, False, False),  # metal flag wins
        (None, None, None, False, False, False, False),  # no gap at all
    ],
)
def test_truth_table(case):
    """``case`` is (gap, m_e*, m_h*, is_metal, candidate, n_type, p_type)."""
    gap, m_e, m_h, is_metal, candidate, n_type, p_type = case
    label = tcm_label(gap, m_e, m_h, is_metal=is_metal)
    assert label.is_candidate is candidate
    if not is_metal and gap is not None:
        assert label.n_type is n_type
        assert label.p_type is p_type
    assert label.to_dict()['thresholds'] == {'min_band_gap': 0.5, 'max_electron_mass': 0.5, 'min_hole_mass': -1.0}


def test_custom_thresholds():
    strict = TcmThresholds(min_band_gap=2.0, max_electron_mass=0.3, min_hole_mass=-0.5)
    assert not tcm_label(1.5, 0.2, -0.4, thresholds=strict).is_candidate
    assert tcm_label(2.5, 0.2, -3.0, thresholds=strict).n_type
    assert not tcm_label(2.5, 0.4, -3.0, thresholds=strict).is_candidate


@pytest.mark.parametrize(
    'kwargs', [{'max_electron_mass': -1.0}, {'min_hole_mass': 0.5}, {'min_band_gap': float('nan')}]
)
def test_invalid_thresholds(kwargs):
    with pytest.raises(ValueError):
        TcmThresholds(**kwargs)


def test_nan_mass_rejected():
    with pytest.raises(ValueError, match='finite'):
        tcm_label(3.0, float('nan'), -0.5)
