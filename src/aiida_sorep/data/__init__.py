"""AiiDA data plugins of aiida-sorep."""

from .features import SorepFeaturesData

__all__ = ('SorepFeaturesData',)
