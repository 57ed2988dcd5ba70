"""AiiDA parser plugins of aiida-sorep."""
