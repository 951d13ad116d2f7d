"""optuna-dashboard (the `dashboard` extra) serves a search's journal file: started on localhost on the journal
of a tiny search written through the project's own storage, it reports the study's trials over HTTP."""
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf

from jepa.studies.search.worker import JOURNAL, storage

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, deadline: float):
    """GET url as JSON, retrying while the server starts."""
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_dashboard_reads_a_search_journal_and_reports_its_trials(tmp_path):
    beside_python = Path(sys.executable).parent / "optuna-dashboard"  # a virtualenv that is not activated
    dashboard = str(beside_python) if beside_python.is_file() else shutil.which("optuna-dashboard")
    if dashboard is None:
        pytest.skip('optuna-dashboard is not installed (pip install ".[dashboard]"; .ci/run installs it)')
    # A tiny search as the workers store it: the same JournalStorage, file backend and lock.
    study = optuna.create_study(study_name="optuna_vc", direction="maximize",
                                storage=storage(tmp_path, OmegaConf.create({"lock": "symlink"})))
    study.optimize(lambda trial: trial.suggest_float("loss.cov_coeff", 1, 100, log=True) / 100, n_trials=3)
    study.enqueue_trial({"loss.cov_coeff": 10.0})
    pruned = study.ask()
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)

    port = free_port()
    server = subprocess.Popen([dashboard, str(tmp_path / JOURNAL), "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        studies = get_json(f"{base}/api/studies", time.monotonic() + 60)["study_summaries"]
        assert [s["study_name"] for s in studies] == ["optuna_vc"]
        detail = get_json(f"{base}/api/studies/{studies[0]['study_id']}", time.monotonic() + 10)
        states = sorted(t["state"] for t in detail["trials"])
        assert states == ["Complete", "Complete", "Complete", "Pruned"]
        assert detail["best_trials"][0]["values"] == [pytest.approx(study.best_value)]
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert server.returncode is not None, output
