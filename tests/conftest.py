"""Shared test set-up: tiny configs, and `--slow` to add the end-to-end and SLURM tests (CI runs them all)."""

import pytest

from jepa.config import compose_config
from tests.slurm.fixtures import slurm_cluster  # noqa: F401  (the session's local SLURM cluster)

# A run small enough for a unit test: generated offline digits, a 4-wide strided model, a few batches.
TINY = [
    "experiment=quick",
    "data.num_train=32",
    "data.num_val=16",
    "data.batch_size=8",
    "model.henc=4",
    "model.hpre=4",
    "model.dstc=4",
    "model.steps=2",
    "training.epochs=2",
    "training.progress=false",
    "logging.mode=disabled",
]


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="also run tests marked slow or slurm")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="end-to-end: run with --slow")
    for item in items:
        if "slow" in item.keywords or "slurm" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def tiny_cfg():
    """compose(*overrides): the tiny config with extra overrides, validated."""

    def compose(*overrides: str, check: bool = True):
        return compose_config([*TINY, *overrides], check=check)

    return compose
