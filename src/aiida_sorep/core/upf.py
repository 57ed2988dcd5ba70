"""Count the pseudo-atomic wavefunctions of a UPF pseudopotential (pure text parsing, no AiiDA).

pw.x builds its starting wavefunctions from the ``PP_PSWFC`` section of each pseudopotential: every
``PP_CHI`` entry with angular momentum ``l`` and a non-negative occupation contributes ``2l + 1``
orbitals per atom (``n_atom_wfc`` in ``PW/src/wfcinit.f90`` of Quantum ESPRESSO 6.7, collinear case).
The single-shot diagonalization lives in exactly that subspace, so this count fixes ``nbnd``.

Both UPF v2 (XML attributes ``l=`` and ``occupation=`` on ``<PP_CHI.n>``) and UPF v1 (a text block
``<PP_PSWFC>`` with one header line ``label l occupation Wavefunction`` per orbital) are supported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ('AtomicWavefunction', 'count_atomic_wavefunctions', 'parse_atomic_wavefunctions')

_PATTERN_FLOAT = r'[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eEdD][+-]?\d+)?'
_REGEX_CHI_V2 = re.compile(r'<PP_CHI\.\d+\b(?P<attributes>[^>]*)>', re.DOTALL)
_REGEX_ATTRIBUTE = re.compile(r'(?P<key>[A-Za-z_]+)\s*=\s*["\'](?P<value>[^"\']*)["\']')
_REGEX_PSWFC_V1 = re.compile(r'<PP_PSWFC>(?P<body>.*?)</PP_PSWFC>', re.DOTALL)
_REGEX_HEADER_V1 = re.compile(
    rf'^\s*(?P<label>\w+)\s+(?P<l>\d+)\s+(?P<occupation>{_PATTERN_FLOAT})\s+Wavefunction', re.MULTILINE
)


@dataclass(frozen=True)
class AtomicWavefunction:
    """One pseudo-atomic wavefunction (``PP_CHI``) of a UPF file.

    :ivar label: orbital label, e.g. ``'3P'`` (may be empty in UPF v2 files that omit it).
    :ivar l: angular momentum quantum number.
    :ivar occupation: occupation in the atomic reference configuration; negative means "unbound, not used".
    """

    label: str
    l: int
    occupation: float

    @property
    def n_orbitals(self) -> int:
        """Number of orbitals this wavefunction contributes per atom: ``2l + 1`` if used, else 0."""
        return 2 * self.l + 1 if self.occupation >= 0 else 0


def _to_float(text: str) -> float:
    return float(text.strip().replace('D', 'E').replace('d', 'e'))


def parse_atomic_wavefunctions(content: str) -> tuple[AtomicWavefunction, ...]:
    """Return the pseudo-atomic wavefunctions listed in the ``PP_PSWFC`` section of a UPF file.

    :param content: full text of a UPF (v1 or v2) file.
    :return: the wavefunctions in file order; empty if the file has no ``PP_PSWFC`` section or an empty one.
    :raises ValueError: if a ``PP_CHI`` entry lacks its ``l`` attribute or has a non-numeric value.
    """
    wavefunctions: list[AtomicWavefunction] = []
    matches = list(_REGEX_CHI_V2.finditer(content))
    if matches:
        for index, match in enumerate(matches, start=1):
            attributes = {
                m.group('key').lower(): m.group('value') for m in _REGEX_ATTRIBUTE.finditer(match['attributes'])
            }
            if 'l' not in attributes:
                raise ValueError(f'PP_CHI.{index} has no `l` attribute: the UPF file is malformed')
            try:
                l_value = int(attributes['l'].strip())
                occupation = _to_float(attributes.get('occupation', '0'))
            except ValueError as exception:
                raise ValueError(f'PP_CHI.{index} has a non-numeric `l` or `occupation`: {exception}') from exception
            wavefunctions.append(AtomicWavefunction(attributes.get('label', '').strip(), l_value, occupation))
        return tuple(wavefunctions)

    block = _REGEX_PSWFC_V1.search(content)
    if block is None:
        return ()
    for match in _REGEX_HEADER_V1.finditer(block['body']):
        wavefunctions.append(AtomicWavefunction(match['label'], int(match['l']), _to_float(match['occupation'])))
    return tuple(wavefunctions)


def count_atomic_wavefunctions(content: str) -> int:
    """Return the number of atomic orbitals per atom that pw.x uses as starting wavefunctions (``natomwfc``).

    ``natomwfc = sum over PP_CHI with occupation >= 0 of (2l + 1)``, the collinear, non-spin-orbit count.

    :param content: full text of a UPF (v1 or v2) file.
    :return: the number of atomic orbitals per atom (0 if the file has no pseudo-atomic wavefunctions).
    :raises ValueError: if the ``PP_PSWFC`` section is malformed.
    """
    return sum(wavefunction.n_orbitals for wavefunction in parse_atomic_wavefunctions(content))
