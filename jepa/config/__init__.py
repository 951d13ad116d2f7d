"""Configuration: where the packaged configs live, the schema of every key, checking a run's config, what
identifies a configuration."""

from .checks import compose_config, latent_size, validate, validate_data
from .errors import ConfigError

__all__ = ["ConfigError", "compose_config", "latent_size", "validate", "validate_data"]
