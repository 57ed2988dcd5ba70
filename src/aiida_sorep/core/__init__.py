"""Pure numerical core of aiida-sorep.

Nothing in this subpackage imports ``aiida``: it works on numpy arrays (energies in eV) so that a
physicist can use it on a ``.npz`` file without an AiiDA profile. A test enforces this.
"""
