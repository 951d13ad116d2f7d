"""`slurm_cluster`: one real local SLURM cluster per test session (import it from tests/conftest.py)."""

import os

import pytest

from .cluster import LocalSlurm, slurm_installed


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running `LocalSlurm`; while it runs, os.environ has its SLURM_CONF and PATH (sacct stand-in).

    Skips where SLURM cannot run here, but fails on CI (CI=true): CI must never skip the real cluster.
    """
    if not slurm_installed():
        missing = "slurm-wlm and munge are not installed (see .ci/install_debian_packages.sh)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {missing}")
        pytest.skip(missing)
    with LocalSlurm() as cluster, pytest.MonkeyPatch.context() as env:
        for name, value in cluster.env.items():
            env.setenv(name, value)
        yield cluster
