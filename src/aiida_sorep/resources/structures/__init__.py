"""Bundled crystal structures (JSON, with the literature source of each)."""
