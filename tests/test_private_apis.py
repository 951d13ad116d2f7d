"""Each private API the project uses (jepa/private_apis.py) still exists in the installed versions.

A failure here names the dependency and the API that moved: pin the older version (.ci/constraints.txt)
or adapt jepa/private_apis.py.
"""

import inspect
import signal

from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher

from jepa import private_apis


def test_hydra_basic_launcher_is_a_launcher_with_the_expected_hooks():
    cls = private_apis.hydra_basic_launcher()
    assert issubclass(cls, Launcher)
    assert list(inspect.signature(cls.launch).parameters) == ["self", "job_overrides", "initial_job_idx"]


def test_submitit_names_its_time_limit_signal():
    assert private_apis.submitit_time_limit_signal() in (signal.SIGUSR1, signal.SIGUSR2)


def test_a_failed_job_return_keeps_its_exception():
    error = RuntimeError("boom")
    ret = JobReturn(status=JobStatus.FAILED, _return_value=error)
    assert private_apis.job_exception(ret) is error
    assert private_apis.job_exception(JobReturn(status=JobStatus.COMPLETED, _return_value=0.5)) is None


def test_wandb_accepts_every_private_setting_the_tracker_sets():
    missing = set(private_apis.WANDB_PRIVATE_SETTINGS) - private_apis.wandb_settings_fields()
    assert not missing, f"wandb.Settings no longer has {sorted(missing)}"


def test_inductor_has_the_layout_switch():
    assert hasattr(private_apis.inductor_config(), "layout_optimization")


def test_wandb_record_parser_reads_a_record():
    parse = private_apis.wandb_record_parser()
    assert parse(b"").WhichOneof("record_type") is None
