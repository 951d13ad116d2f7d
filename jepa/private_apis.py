"""Every private API of a dependency that the project relies on, in one place.

Each is wrapped in a function that says what it is for. tests/test_private_apis.py calls every one of
them, so an upgrade that moves or renames one fails there, naming it, instead of failing mid-sweep or in
a requeued job. The tested versions are pinned in .ci/constraints.txt.
"""

from __future__ import annotations

from typing import Any


def hydra_basic_launcher() -> type:
    """Hydra's sequential launcher (hydra._internal): the base of the `local` study launcher."""
    from hydra._internal.core_plugins.basic_launcher import BasicLauncher

    return BasicLauncher


def submitit_time_limit_signal() -> int:
    """The signal submitit asks SLURM to send before a job's time limit (USR2 unless configured)."""
    import submitit

    return submitit.JobEnvironment._usr_sig()


def job_exception(job_return: Any) -> BaseException | None:
    """The exception a failed Hydra job raised (JobReturn.return_value re-raises it instead of returning it)."""
    value = job_return._return_value
    return value if isinstance(value, BaseException) else None


# wandb settings without a public name: no requirements file, no system metrics, no machine info.
WANDB_PRIVATE_SETTINGS = ("x_save_requirements", "x_disable_stats", "x_disable_meta", "x_disable_machine_info")


def wandb_settings_fields() -> set[str]:
    """The names wandb.Settings accepts (a pydantic model in wandb >= 0.19)."""
    import wandb

    return set(getattr(wandb.Settings, "model_fields", {}))


def inductor_config():
    """torch.compile's Inductor settings (torch._inductor.config): layout optimisation is switched off on CPU."""
    import torch._inductor.config as config

    return config


def wandb_record_parser():
    """The protobuf Record of wandb's offline log (wandb.proto): the tests read offline runs with it."""
    from wandb.proto import wandb_internal_pb2

    return wandb_internal_pb2.Record.FromString
