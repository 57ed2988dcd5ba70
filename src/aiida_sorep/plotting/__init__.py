"""Plotting helpers (matplotlib, Agg backend): figures of reference band structures and masses."""
