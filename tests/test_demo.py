"""The README's main job, in process: a real stock-pw.x single shot on silicon through AiiDA."""

from __future__ import annotations

import numpy as np

from aiida_sorep.cli.demo import run_silicon_singleshot


def test_silicon_singleshot_real_pw(pw_code, pseudo_family):
    results, node = run_silicon_singleshot(pw_code)

    # Stock pw.x 6.7 stops after the single diagonalisation and says so: PwParser's warning 710.
    assert node.exit_status == 710
    bands = results['output_band']
    eigenvalues = bands.get_bands()
    assert eigenvalues.shape == (8, 8)  # 4x4x4 mesh reduced to 8 k-points, 8 atomic orbitals
    gamma = int(np.argmin(np.linalg.norm(bands.get_kpoints(), axis=1)))
    at_gamma = eigenvalues[gamma]
    # The valence-band maximum of diamond Si is the triply degenerate Gamma'25 state.
    np.testing.assert_allclose(at_gamma[1:4], at_gamma[2], atol=1e-4)
    assert at_gamma[3] == np.max(eigenvalues[:, :4])
    assert at_gamma[4] - at_gamma[3] > 1.0  # a gap, not a degenerate continuation
