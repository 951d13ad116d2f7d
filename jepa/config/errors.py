"""The one error type for bad user input, so every entry point can report it the same way."""

import difflib
import sys
from collections.abc import Callable, Sequence

from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException


class ConfigError(ValueError):
    """A configuration value (or a file it points to) that cannot work.

    The message names the key, the bad value and what would be valid.
    """

    def __init__(self, key: str, value, valid: str):
        self.key, self.value, self.valid = key, value, valid
        super().__init__(f"{key}={value!r} is invalid: {valid}")


EXIT_CONFIG = 2  # every entry point's exit code for a bad value, Hydra's own composition errors included



def did_you_mean(name: str, valid: Sequence[str], prefix: str = "") -> str:
    """'did you mean X or Y? ' for the valid names closest to a misspelt one (empty when none is close)."""
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.6)
    return f"did you mean {' or '.join(prefix + c for c in close)}? " if close else ""


def hydra_refusal(exc: BaseException) -> str:
    """One line for Hydra's refusal of an override or config group while composing: the key or option, the
    closest valid names and what is valid (Hydra's own message runs to 6-11 lines)."""
    cause = exc.__cause__
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file and exc.options is not None:
        group, _, option = exc.missing_cfg_file.rpartition("/")
        return (f"{group}={option!r} is invalid: {did_you_mean(option, exc.options)}the options of {group} are "
                f"{', '.join(exc.options)}")
    unknown_key = isinstance(cause, (ConfigKeyError, ConfigAttributeError))
    if unknown_key and isinstance(cause.parent_node, DictConfig) and cause.full_key:
        parent = cause.full_key[:-len(str(cause.key))] if cause.key else ""
        keys = [str(k) for k in cause.parent_node if str(k) != "hydra"]
        where = f"keys of {parent.rstrip('.')}" if parent else "top-level keys"
        return (f"{cause.full_key} is not a key of the config: {did_you_mean(str(cause.key), keys, parent)}the {where} "
                f"are {', '.join(keys)}")
    first = str(exc).strip().splitlines()
    return first[0] if first else type(exc).__name__


class RunExit(SystemExit):
    """An exit the project decides once Hydra has handed over (a failed run or sweep, a signal's stop): its
    code stands. Hydra's own composition errors are raised, not exits (the app sets HYDRA_FULL_ERROR), and the
    app turns them into EXIT_CONFIG."""


def exit_on_bad_input(command: Callable[[], int], overrides: Sequence[str] = ()) -> int:
    """Run a command-line tool's body; a ConfigError, or Hydra's own error composing `overrides` (a bad
    override, study or config group), becomes one `configuration error: ...` line and EXIT_CONFIG."""
    try:
        return command()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
    except (HydraException, OmegaConfBaseException) as exc:
        print(f"configuration error: {' '.join(overrides)}: {hydra_refusal(exc)}", file=sys.stderr)
    return EXIT_CONFIG
