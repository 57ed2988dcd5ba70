"""Common types shared by the AiiDA plugins of aiida-sorep."""
