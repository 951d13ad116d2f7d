"""Configuration: where the packaged configs live, how a run is composed and checked, what names it."""

from .errors import ConfigError
from .validation import compose_config, latent_size, validate

__all__ = ["ConfigError", "compose_config", "latent_size", "validate"]
