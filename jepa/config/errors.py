"""The one error type for bad user input, so every entry point can report it the same way."""

import sys
from collections.abc import Callable, Sequence

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException


class ConfigError(ValueError):
    """A configuration value (or a file it points to) that cannot work.

    The message names the key, the bad value and what would be valid.
    """

    def __init__(self, key: str, value, valid: str):
        self.key, self.value, self.valid = key, value, valid
        super().__init__(f"{key}={value!r} is invalid: {valid}")


EXIT_CONFIG = 2  # every entry point's exit code for a bad value, Hydra's own composition errors included



class RunExit(SystemExit):
    """An exit the project decides once Hydra has handed over (a failed run or sweep, a signal's stop): its
    code stands. Hydra exits 1 for its own composition errors, which the app turns into EXIT_CONFIG."""


def exit_on_bad_input(command: Callable[[], int], overrides: Sequence[str] = ()) -> int:
    """Run a command-line tool's body; a ConfigError, or Hydra's own error composing `overrides` (a bad
    override, study or config group), becomes one `configuration error: ...` line and EXIT_CONFIG."""
    try:
        return command()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
    except (HydraException, OmegaConfBaseException) as exc:
        print(f"configuration error: {' '.join(overrides)}: {exc}", file=sys.stderr)
    return EXIT_CONFIG
