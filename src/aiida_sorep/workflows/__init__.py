"""AiiDA work chains of aiida-sorep."""
