"""Band structure along a path with the line segments and their effective masses annotated (PNG).

:func:`plot_band_structure` works on plain arrays (no AiiDA); :func:`plot_reference` takes a finished
``sorep.reference`` work chain node and reads its ``band_structure`` and ``properties`` outputs.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = ('plot_band_structure', 'plot_reference')

_GREEK = {'GAMMA': r'$\Gamma$', 'DELTA': r'$\Delta$', 'SIGMA': r'$\Sigma$', 'LAMBDA': r'$\Lambda$'}


def _label(name: str) -> str:
    base, _, suffix = name.partition('_')
    text = _GREEK.get(base, base)
    return f'{text}$_{{{suffix}}}$' if suffix else text


def _mass_text(value: float | None) -> str:
    return '–' if value is None else f'{value:.2f}'


def plot_band_structure(
    kpoints: ArrayLike,
    eigenvalues: ArrayLike,
    segments: Sequence[Sequence],
    properties: Mapping[str, Any],
    filename: str | pathlib.Path | None = None,
    *,
    energy_window: tuple[float, float] = (-4.0, 4.0),
    title: str | None = None,
):
    """Plot bands along the path, energies relative to the VBM (or Fermi level for metals), masses per segment.

    :param kpoints: Cartesian k-points (1/Å), shape ``(n_k, 3)``.
    :param eigenvalues: eV, ``(n_spins, n_k, n_bands)`` or ``(n_k, n_bands)``.
    :param segments: ``[(start, stop_inclusive, start_label, stop_label), ...]`` (the ``segments`` of ``properties``).
    :param properties: the ``properties`` of a reference run: ``vbm``, ``cbm``, ``fermi_energy``, ``is_metal``,
        ``band_gap``, ``electron_masses``/``hole_masses`` (per segment), ``electron_mass``, ``hole_mass`` and the
        segments that give them.
    :param filename: write a PNG there if given.
    :param energy_window: eV around the reference energy.
    :param title: figure title.
    :return: the matplotlib ``Figure``.
    """
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    k = np.asarray(kpoints, dtype=float)
    e = np.asarray(eigenvalues, dtype=float)
    if e.ndim == 2:
        e = e[np.newaxis]
    metal = bool(properties.get('is_metal'))
    reference = properties['fermi_energy'] if metal else properties['vbm']

    fig, ax = plt.subplots(figsize=(7.0, 4.6), dpi=110)
    electron = {s['label']: s for s in properties.get('electron_masses', [])}
    hole = {s['label']: s for s in properties.get('hole_masses', [])}
    x0 = 0.0
    ticks: list[float] = []
    tick_labels: list[str] = []
    for start, stop, a, b in segments:
        kk = k[start : stop + 1]
        x = x0 + np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(kk, axis=0), axis=1))])
        for spin in range(e.shape[0]):
            ax.plot(x, e[spin, start : stop + 1] - reference, color='C0' if spin == 0 else 'C3', lw=1.2)
        if ticks and np.isclose(ticks[-1], x[0]):
            if tick_labels[-1] != _label(a):
                tick_labels[-1] = f'{tick_labels[-1]}|{_label(a)}'
        else:
            ticks.append(x[0])
            tick_labels.append(_label(a))
        ticks.append(x[-1])
        tick_labels.append(_label(b))
        label = f'{a}-{b}'
        if not metal and label in electron:
            mid = 0.5 * (x[0] + x[-1])
            for data, y, colour, prefix, key in (
                (electron[label], energy_window[1] - 0.35, 'C2', '$m_e^*$', 'electron_mass_segment'),
                (hole[label], energy_window[0] + 0.25, 'C1', '$m_h^*$', 'hole_mass_segment'),
            ):
                bold = label == properties.get(key)
                ax.text(
                    mid,
                    y,
                    f'{prefix}\n{_mass_text(data["mass"])}',
                    ha='center',
                    va='center',
                    fontsize=7,
                    color=colour,
                    fontweight='bold' if bold else 'normal',
                    alpha=1.0 if data['qualifies'] else 0.45,
                    bbox={'boxstyle': 'round,pad=0.15', 'facecolor': 'white', 'edgecolor': 'none', 'alpha': 0.85},
                )
        x0 = x[-1]

    for tick in ticks:
        ax.axvline(tick, color='0.7', lw=0.6)
    ax.set_xticks(ticks, tick_labels)
    ax.set_xlim(ticks[0], ticks[-1])
    ax.set_ylim(*energy_window)
    if metal:
        ax.axhline(0.0, color='k', ls='--', lw=0.8)
        ax.set_ylabel(r'$E - E_F$ (eV)')
        summary = 'metal: masses undefined, TCM label False'
    else:
        ax.axhline(0.0, color='C1', ls='--', lw=0.8)
        ax.axhline(properties['cbm'] - reference, color='C2', ls='--', lw=0.8)
        ax.set_ylabel(r'$E - E_\mathrm{VBM}$ (eV)')
        summary = (
            f'gap {properties["band_gap"]:.3f} eV (MP grid); '
            f'$m_e^*$ = {_mass_text(properties.get("electron_mass"))} ({properties.get("electron_mass_segment")}), '
            f'$m_h^*$ = {_mass_text(properties.get("hole_mass"))} ({properties.get("hole_mass_segment")}) $m_e$; '
            f'TCM: {properties.get("is_tcm_candidate")}'
        )
    ax.set_title(f'{title}\n{summary}' if title else summary, fontsize=9)
    fig.tight_layout()
    if filename is not None:
        fig.savefig(filename)
    return fig


def plot_reference(node, filename: str | pathlib.Path | None = None, **kwargs):
    """Plot the outputs of a finished ``sorep.reference`` work chain node (see :func:`plot_band_structure`)."""
    bands = node.outputs.band_structure
    properties = node.outputs.properties.get_dict()
    kwargs.setdefault('title', node.outputs.primitive_structure.get_formula())
    return plot_band_structure(
        bands.get_kpoints(cartesian=True), bands.get_bands(), properties['segments'], properties, filename, **kwargs
    )
