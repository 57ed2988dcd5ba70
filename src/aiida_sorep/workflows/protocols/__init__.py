"""YAML protocols for aiida-sorep work chains, in the style of aiida-quantumespresso.

Each work chain that offers ``get_builder_from_protocol`` mixes in :class:`SorepProtocolMixin` and sets
``_protocol_file`` to the name of a YAML file in this package. The file holds ``default_inputs``,
``default_protocol`` and ``protocols`` (each with a ``description``); a protocol is deep-merged on top of
``default_inputs`` and user ``overrides`` are deep-merged on top of that (see
:meth:`~aiida_quantumespresso.workflows.protocols.utils.ProtocolMixin.get_protocol_inputs`).
An optional ``meta_inputs_schema`` lists the keys that are not process inputs, so that unknown keys in
``overrides`` are reported.
"""

from __future__ import annotations

import pathlib
from importlib import resources

from aiida_quantumespresso.workflows.protocols.utils import ProtocolMixin, recursive_merge

__all__ = ('SorepProtocolMixin', 'protocol_filepath', 'recursive_merge')


def protocol_filepath(filename: str) -> pathlib.Path:
    """Return the path of the protocol file ``filename`` shipped in ``aiida_sorep.workflows.protocols``."""
    path = resources.files(__name__).joinpath(filename)
    if not path.is_file():
        raise FileNotFoundError(f'protocol file `{filename}` not found in {__name__}')
    return pathlib.Path(str(path))


class SorepProtocolMixin(ProtocolMixin):
    """Protocol support for a work chain: set ``_protocol_file`` to the YAML file name in this package."""

    _protocol_file: str = ''

    @classmethod
    def get_protocol_filepath(cls) -> pathlib.Path:
        """Return the path of the YAML file that defines the protocols of this work chain."""
        if not cls._protocol_file:
            raise NotImplementedError(f'{cls.__name__} must set `_protocol_file` to use protocols')
        return protocol_filepath(cls._protocol_file)
