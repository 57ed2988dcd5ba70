"""The patched pw.x (``qe/``): the patch applies to Debian's QE 6.7 source and the built binary does a single shot.

The project's setup builds the patched binary with ``bash qe/build.sh`` (idempotent) before running pytest, so
these tests never skip: a missing source, a missing binary or a binary built from an older patch is a failure
whose message says which command fixes it.

The single-shot runs use the stored inputs of ``tests/fixtures/singleshot/patched_{si,al}/aiida.in`` (Si: 2 atoms,
fixed occupations; Al: fcc, cold smearing), each about one second of serial pw.x.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import shutil
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from scipy.special import erf

REPO_DIR = pathlib.Path(__file__).resolve().parent.parent
BUILD_SCRIPT = REPO_DIR / 'qe' / 'build.sh'
PATCH_DIR = REPO_DIR / 'qe' / 'patches'
FIXTURES = REPO_DIR / 'tests' / 'fixtures' / 'singleshot'
MARKER = 'aiida-sorep single-shot: electron_maxstep = 0, SCF loop skipped'
HARTREE_EV = 27.211386245988
PW_ENV = {'OMP_NUM_THREADS': '1', 'OPENBLAS_NUM_THREADS': '1'}
BUILD_HINT = 'run `bash qe/build.sh` (builds and installs the patched pw.x; a no-op when it is up to date)'


def _patch_series() -> list[pathlib.Path]:
    """The patches in the order ``qe/build.sh`` applies them (``qe/patches/series``)."""
    names = [line.strip() for line in (PATCH_DIR / 'series').read_text().splitlines()]
    return [PATCH_DIR / name for name in names if name and not name.startswith('#')]


def _series_checksum() -> str:
    """sha256 of the series file followed by the patches, as recorded by ``qe/build.sh`` next to the binary."""
    digest = hashlib.sha256((PATCH_DIR / 'series').read_bytes())
    for patch in _patch_series():
        digest.update(patch.read_bytes())
    return digest.hexdigest()


def _default_prefix() -> pathlib.Path:
    """The install prefix ``qe/build.sh`` uses without an argument."""
    default = pathlib.Path.home() / '.local' / 'aiida-sorep-qe'
    return pathlib.Path(os.environ.get('AIIDA_SOREP_QE_PREFIX', default))


@dataclasses.dataclass(frozen=True)
class SingleShotRun:
    """A pw.x run: exit status, stdout and the parsed band structure of ``data-file-schema.xml``.

    Energies in eV; ``eigenvalues`` and ``occupations`` have shape ``(n_kpoints, n_bands)``, ``weights`` sums to 2,
    ``kpoints`` (cartesian, 2pi/alat) has shape ``(n_kpoints, 3)``.
    """

    returncode: int
    stdout: str
    eigenvalues: np.ndarray
    occupations: np.ndarray
    weights: np.ndarray
    kpoints: np.ndarray
    fermi_energy: float | None
    highest_occupied: float | None
    n_electrons: float


def _parse_band_structure(xml_path: pathlib.Path) -> dict:
    """Eigenvalues, occupations, k weights (eV, QE's normalisation) and Fermi data from a QE 6.7 XML file."""
    root = ET.parse(xml_path).getroot()
    bands = root.find('output/band_structure')
    assert bands is not None, f'{xml_path} has no output/band_structure element'

    def optional(tag: str) -> float | None:
        node = bands.find(tag)
        return None if node is None else float(node.text) * HARTREE_EV

    ks = bands.findall('ks_energies')
    return {
        'eigenvalues': np.array([[float(x) for x in k.find('eigenvalues').text.split()] for k in ks]) * HARTREE_EV,
        'occupations': np.array([[float(x) for x in k.find('occupations').text.split()] for k in ks]),
        'weights': np.array([float(k.find('k_point').get('weight')) for k in ks]),
        'kpoints': np.array([[float(x) for x in k.find('k_point').text.split()] for k in ks]),
        'fermi_energy': optional('fermi_energy'),
        'highest_occupied': optional('highestOccupiedLevel'),
        'n_electrons': float(bands.find('nelec').text),
    }


def _run_single_shot(
    executable: pathlib.Path, case: str, workdir: pathlib.Path, pseudo_dir: pathlib.Path, **env: str
) -> SingleShotRun:
    """Run ``executable`` on the stored input of fixture ``case`` in ``workdir`` (with ``./pseudo/`` linked)."""
    workdir.mkdir(parents=True)
    shutil.copy(FIXTURES / case / 'aiida.in', workdir / 'aiida.in')
    (workdir / 'pseudo').symlink_to(pseudo_dir, target_is_directory=True)
    result = subprocess.run(
        [str(executable), '-in', 'aiida.in'],
        cwd=workdir,
        capture_output=True,
        text=True,
        env={**{k: v for k, v in os.environ.items() if k != 'AIIDA_SOREP_DUMP_HS'}, **PW_ENV, **env},
        check=False,
        timeout=300,
    )
    xml_path = workdir / 'out' / 'aiida.save' / 'data-file-schema.xml'
    assert xml_path.is_file(), f'{executable} wrote no {xml_path} (exit {result.returncode}):\n{result.stdout[-2000:]}'
    return SingleShotRun(result.returncode, result.stdout, **_parse_band_structure(xml_path))


@pytest.fixture(scope='session')
def debian_source() -> pathlib.Path:
    """Pristine Debian QE 6.7 source tree, obtained (once) by ``qe/build.sh --source-only``."""
    result = subprocess.run(['bash', str(BUILD_SCRIPT), '--source-only'], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(
            'could not obtain the Debian quantum-espresso 6.7 source with `bash qe/build.sh --source-only`:\n'
            f'{result.stderr}{result.stdout}'
        )
    source = pathlib.Path(result.stdout.strip().splitlines()[-1])
    if not (source / 'PW' / 'src' / 'electrons.f90').is_file():
        pytest.fail(f'`qe/build.sh --source-only` printed {source}, which is not a QE source tree')
    return source


@pytest.fixture(scope='session')
def patched_pw() -> pathlib.Path:
    """The patched ``pw.x`` at the default prefix, built from the current patch (else: fail, saying how to build)."""
    binary = _default_prefix() / 'bin' / 'pw.x'
    if not os.access(binary, os.X_OK):
        pytest.fail(f'patched pw.x not found at {binary}: {BUILD_HINT}.')
    stamp = binary.with_name('pw.x.patch.sha256')
    current = _series_checksum()
    recorded = stamp.read_text().split()[0] if stamp.is_file() else '(no checksum file)'
    if recorded != current:
        pytest.fail(f'{binary} was built from other patches ({recorded}, current {current}): {BUILD_HINT}.')
    return binary


@pytest.fixture(scope='session')
def upf_dir() -> pathlib.Path:
    """PseudoDojo UPF folder (cached by the set-up), without needing an AiiDA profile."""
    from aiida_sorep.install.pseudos import pseudo_dir, pseudo_files_present

    directory = pseudo_dir()
    if not pseudo_files_present(directory):
        pytest.fail(
            f'PseudoDojo UPF files missing in {directory}: run `aiida-sorep setup` or `bash bootstrap.sh test`.'
        )
    return directory


def test_first_patch_dry_run_on_pristine_debian_source(debian_source):
    """``patch -p1 --dry-run`` of the single-shot patch on the pristine Debian tree: applies, no offset or fuzz."""
    series = _patch_series()
    assert [p.name for p in series] == ['qe-6.7-singleshot.patch', 'qe-6.7-dump-hs.patch']
    result = subprocess.run(
        ['patch', '-p1', '--dry-run', '--force', '-d', str(debian_source), '-i', str(series[0])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, (
        f'{series[0].name} does not apply to {debian_source}:\n{result.stdout}{result.stderr}'
    )
    assert result.stdout.strip() == 'checking file PW/src/electrons.f90', result.stdout


def test_patch_series_applies_cleanly(debian_source, tmp_path):
    """The whole series applied for real to a copy of the files it touches: no offset, fuzz or reject."""
    touched = sorted(
        {
            line[len('+++ b/') :].split()[0]
            for p in _patch_series()
            for line in p.read_text().splitlines()
            if line.startswith('+++ b/')
        }
    )
    assert touched == ['PW/src/electrons.f90']
    for relative in touched:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(debian_source / relative, tmp_path / relative)
    for patch in _patch_series():
        result = subprocess.run(
            ['patch', '-p1', '--force', '-d', str(tmp_path), '-i', str(patch)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, f'{patch.name}:\n{result.stdout}{result.stderr}'
        assert result.stdout.strip() == 'patching file PW/src/electrons.f90', f'{patch.name}: {result.stdout}'

    source = (tmp_path / 'PW' / 'src' / 'electrons.f90').read_text()
    assert 'IF ( niter == 0 ) THEN\n     CALL electrons_single_shot()\n     RETURN' in source
    start = source.index('SUBROUTINE electrons_single_shot()')
    routine = source[start : source.index('END SUBROUTINE electrons_single_shot', start)]
    calls = ['CALL poolrecover( et, nbnd, nkstot, nks )', 'CALL weights()', 'CALL print_ks_energies()']
    assert [routine.index(call) for call in calls] == sorted(routine.index(call) for call in calls)
    assert 'CALL single_shot_dump_hs()' in routine
    assert 'conv_elec = .TRUE.' in routine


def test_build_script_is_idempotent(patched_pw):
    """A second ``qe/build.sh`` with the binary present and the patch unchanged does nothing."""
    result = subprocess.run(
        ['bash', str(BUILD_SCRIPT), str(patched_pw.parent.parent)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert 'nothing to do' in result.stderr
    assert result.stdout.strip() == str(patched_pw)


def test_patched_single_shot_si_insulator(patched_pw, upf_dir, tmp_path):
    """Si (2 atoms, 8 atomic orbitals): exit 0, marker, and a Fermi level in the gap equal to the VBM."""
    run = _run_single_shot(patched_pw, 'patched_si', tmp_path / 'si', upf_dir)
    assert run.returncode == 0, run.stdout[-2000:]
    assert MARKER in run.stdout
    assert 'convergence NOT achieved' not in run.stdout
    assert run.eigenvalues.shape == (8, 8)
    assert run.n_electrons == 8.0
    vbm = run.eigenvalues[:, 3].max()
    cbm = run.eigenvalues[:, 4].min()
    assert cbm - vbm > 0.3, f'no gap in the Si single shot: VBM {vbm:.4f} eV, CBM {cbm:.4f} eV'
    # Fixed occupations: pw.x's Fermi energy is the highest occupied level, i.e. the VBM, below the CBM.
    assert run.fermi_energy == pytest.approx(vbm, abs=1e-6)
    assert run.highest_occupied == pytest.approx(vbm, abs=1e-6)
    assert vbm <= run.fermi_energy < cbm
    np.testing.assert_allclose(run.occupations[:, :4], 1.0)
    np.testing.assert_allclose(run.occupations[:, 4:], 0.0)
    assert 'highest occupied, lowest unoccupied level (ev):' in run.stdout
    assert not (tmp_path / 'si' / 'out' / 'aiida.sorep_hs.bin').exists(), 'H/S written without AIIDA_SOREP_DUMP_HS'


def _cold_occupation(x: np.ndarray) -> np.ndarray:
    """Marzari-Vanderbilt cold-smearing occupation of ``x = (E_F - e) / degauss`` (QE's wgauss, ngauss=-1)."""
    xp = x - 1.0 / np.sqrt(2.0)
    return 0.5 * erf(xp) + np.exp(-np.minimum(200.0, xp**2)) / np.sqrt(2.0 * np.pi) + 0.5


def test_patched_single_shot_al_metal(patched_pw, upf_dir, tmp_path):
    """Al fcc with cold smearing: exit 0, a non-zero Fermi level that recovers the 3 valence electrons."""
    run = _run_single_shot(patched_pw, 'patched_al', tmp_path / 'al', upf_dir)
    assert run.returncode == 0, run.stdout[-2000:]
    assert MARKER in run.stdout
    assert run.fermi_energy is not None and run.fermi_energy != 0.0
    assert run.eigenvalues.min() < run.fermi_energy < run.eigenvalues.max()
    degauss_ev = 0.02 / 2 * HARTREE_EV  # 0.02 Ry
    occupations = _cold_occupation((run.fermi_energy - run.eigenvalues) / degauss_ev)
    n_electrons = float(np.sum(run.weights[:, None] * occupations))
    assert n_electrons == pytest.approx(3.0, abs=1e-6)
    np.testing.assert_allclose(run.occupations, occupations, atol=1e-6)
    assert 'the Fermi energy is' in run.stdout


@pytest.mark.parametrize('case', ['patched_si', 'patched_al'])
def test_patched_and_stock_eigenvalues_agree(patched_pw, pw_executable, upf_dir, tmp_path, case):
    """The patch changes only what happens after the single shot: eigenvalues equal the stock pw.x ones."""
    stock = pathlib.Path(pw_executable).resolve()
    if stock == patched_pw.resolve():
        pytest.fail(f'`pw.x` on PATH is the patched binary {stock}; the stock Debian pw.x must come first on PATH.')
    patched = _run_single_shot(patched_pw, case, tmp_path / 'patched', upf_dir)
    reference = _run_single_shot(stock, case, tmp_path / 'stock', upf_dir)
    assert reference.returncode == 2, 'stock pw.x 6.7 stops a 0-iteration run with exit status 2'
    assert 'convergence NOT achieved after   0 iterations' in reference.stdout
    assert reference.fermi_energy == 0.0
    assert patched.returncode == 0
    np.testing.assert_allclose(patched.eigenvalues, reference.eigenvalues, rtol=0, atol=1e-5)


@pytest.mark.parametrize('case', ['patched_si', 'patched_al'])
def test_patched_binary_reproduces_stored_fixture(patched_pw, upf_dir, tmp_path, case):
    """Re-running a stored fixture input gives the stored eigenvalues and Fermi energy (fixture is current)."""
    run = _run_single_shot(patched_pw, case, tmp_path / case, upf_dir)
    stored = _parse_band_structure(FIXTURES / case / 'data-file-schema.xml')
    np.testing.assert_allclose(run.eigenvalues, stored['eigenvalues'], rtol=0, atol=1e-5)
    assert run.fermi_energy == pytest.approx(stored['fermi_energy'], abs=1e-5)
    assert MARKER in (FIXTURES / case / 'aiida.out').read_text()


def _read_hs_dump(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read ``prefix.sorep_hs.bin``: k-points (2pi/alat), weights, H and S (Ry), shapes (nk, 3), (nk,), (nk, n, n)."""
    raw = path.read_bytes()
    assert raw[:8] == b'SOREPHS1', f'{path} does not start with the SOREPHS1 magic'
    n_kpoints, n_orbitals = (int(x) for x in np.frombuffer(raw, dtype='<i4', count=2, offset=8))
    record = np.dtype(
        [
            ('spin', '<i4'),
            ('xk', '<f8', 3),
            ('wk', '<f8'),
            ('h', '<c16', (n_orbitals, n_orbitals)),
            ('s', '<c16', (n_orbitals, n_orbitals)),
        ]
    )
    assert len(raw) == 16 + n_kpoints * record.itemsize, 'H/S dump has the wrong size'
    data = np.frombuffer(raw, dtype=record, count=n_kpoints, offset=16)
    # Fortran writes column-major: the C-order reading is the transpose.
    return data['xk'], data['wk'], np.swapaxes(data['h'], 1, 2), np.swapaxes(data['s'], 1, 2)


@pytest.mark.parametrize(('case', 'n_orbitals'), [('patched_si', 8), ('patched_al', 4)])
def test_dump_hs_matrices_give_single_shot_eigenvalues(patched_pw, upf_dir, tmp_path, case, n_orbitals):
    """With AIIDA_SOREP_DUMP_HS=1: Hermitian H, positive-definite S, and eig(H, S) = the XML eigenvalues."""
    from scipy.linalg import eigh

    run = _run_single_shot(patched_pw, case, tmp_path / case, upf_dir, AIIDA_SOREP_DUMP_HS='1')
    assert run.returncode == 0
    assert 'aiida-sorep single-shot: H and S (atomic-wavefunction basis) written to' in run.stdout
    xk, wk, hamiltonian, overlap = _read_hs_dump(tmp_path / case / 'out' / 'aiida.sorep_hs.bin')
    assert hamiltonian.shape == (len(run.weights), n_orbitals, n_orbitals)
    np.testing.assert_allclose(wk, run.weights, rtol=1e-12)
    np.testing.assert_allclose(xk, run.kpoints, atol=1e-12)
    np.testing.assert_allclose(hamiltonian, np.conj(np.swapaxes(hamiltonian, 1, 2)), atol=1e-10)
    np.testing.assert_allclose(overlap, np.conj(np.swapaxes(overlap, 1, 2)), atol=1e-10)
    assert all(np.linalg.eigvalsh(s).min() > 0 for s in overlap)
    rydberg_ev = HARTREE_EV / 2
    eigenvalues = (
        np.array([eigh(h, s, eigvals_only=True) for h, s in zip(hamiltonian, overlap, strict=True)]) * rydberg_ev
    )
    np.testing.assert_allclose(eigenvalues, run.eigenvalues, rtol=0, atol=1e-6)
