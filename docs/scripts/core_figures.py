"""Figures of docs/smearing_fermi.md and docs/dos_features.md (run from the repository root).

python docs/scripts/core_figures.py
"""

from __future__ import annotations

import json
import pathlib

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt
import numpy as np

from aiida_sorep.core.features import FeatureKind, featurize
from aiida_sorep.core.fermi import count_electrons, find_fermi_level
from aiida_sorep.core.smearing import delta, occupation

ROOT = pathlib.Path(__file__).resolve().parents[2]
IMAGES = ROOT / 'docs' / 'images'
BOHR_TO_ANGSTROM = 0.529177210903


def smearing_figure() -> None:
    x = np.linspace(-4, 4, 801)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for name in ('gaussian', 'fermi-dirac', 'methfessel-paxton', 'cold'):
        axes[0].plot(x, occupation(x, name), label=name)
        axes[1].plot(x, delta(x, name), label=name)
    axes[0].set(xlabel='x = (μ - ε)/σ', ylabel='occupation f(x)', title='occupation')
    axes[1].set(xlabel='x', ylabel='δ(x) = df/dx', title='smeared delta')
    axes[0].legend(fontsize=7)

    eigenvalues = np.array([[[-3.0, 0.0, 3.3]] * 4])
    weights = np.full(4, 0.5)
    energies = np.linspace(-0.5, 3.6, 1500)
    for name in ('gaussian', 'cold'):
        counts = [count_electrons(eigenvalues, weights, e, name, 0.1) for e in energies]
        axes[2].plot(energies, counts, label=name)
        e_f = find_fermi_level(eigenvalues, weights, 4.05, name, 0.1).fermi_energy
        axes[2].plot([e_f], [4.05], 'o', color=axes[2].lines[-1].get_color())
    axes[2].axhline(4.05, color='k', lw=0.6, ls='--')
    axes[2].annotate('spurious roots\n(plain bisection)', (0.16, 4.05), (0.6, 4.35), fontsize=7,
                     arrowprops={'arrowstyle': '->'})  # fmt: skip
    axes[2].set(xlabel='E (eV)', ylabel='N(E)', title='flat bands, 4.05 electrons, σ = 0.1 eV', ylim=(3.5, 4.5))
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(IMAGES / 'smearing_fermi.png', dpi=90)


def features_figure() -> None:
    data = json.loads((ROOT / 'tests/fixtures/core/pw_fermi_fixtures.json').read_text())
    case = next(c for c in data['cases'] if c['label'] == 'Cu-cold-nspin1')
    volume = (6.822 * BOHR_TO_ANGSTROM) ** 3 / 4  # fcc, celldm(1) = 6.822 bohr
    fermi, _, maps = featurize(
        np.array(case['eigenvalues']), np.array(case['weights']), case['n_electrons'],
        smearing='cold', width=case['degauss_ev'], volume=volume,
    )  # fmt: skip
    fig, axes = plt.subplots(1, 4, figsize=(12, 2.8), sharey=True)
    for axis, kind in zip(axes, FeatureKind, strict=True):
        value = maps[kind]
        axis.plot(np.arange(value.features.size) if kind is FeatureKind.CONCATENATED else value.energies,
                  value.features, lw=0.8)  # fmt: skip
        axis.set(title=f'{kind.value}', xlabel='feature index' if kind is FeatureKind.CONCATENATED else 'E - ref (eV)')
    axes[0].set_ylabel('DOS (states/eV/Å³)')
    fig.suptitle(f'Cu (pw.x, 6x6x6 k, cold 0.02 Ry): E_F = {fermi.fermi_energy:.3f} eV, metal', fontsize=9)
    fig.tight_layout()
    fig.savefig(IMAGES / 'sorep_maps_cu.png', dpi=90)


if __name__ == '__main__':
    IMAGES.mkdir(parents=True, exist_ok=True)
    smearing_figure()
    features_figure()
