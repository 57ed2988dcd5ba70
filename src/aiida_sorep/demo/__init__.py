"""Demonstrations of aiida-sorep that run real calculations on the embedded profile."""
