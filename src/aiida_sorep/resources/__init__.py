"""Data files shipped with aiida-sorep (pseudopotential cutoff hints, basis sets, structures)."""
