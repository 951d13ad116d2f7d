"""The one error type for bad user input, so every entry point can report it the same way."""


class ConfigError(ValueError):
    """A configuration value (or a file it points to) that cannot work.

    The message names the key, the bad value and what would be valid.
    """

    def __init__(self, key: str, value, valid: str):
        self.key, self.value, self.valid = key, value, valid
        super().__init__(f"{key}={value!r} is invalid: {valid}")
