"""docs/studies/ regenerates from its committed run data: each `python -m analysis` command written in
docs/studies/README.md, run again, gives the committed tables, claims, configurations and factorial view."""

import shlex
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")

from analysis.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "docs" / "studies" / "README.md"
COMMANDS = [shlex.split(line)[3:] for line in README.read_text().splitlines() if line.startswith("python -m analysis ")]
COMPARED = ("table_values.csv", "claims.csv", "configs.csv", "factorial.csv")


def test_the_readme_gives_a_command_per_study():
    assert [args[args.index("--out") + 1] for args in COMMANDS] == ["docs/studies/steps", "docs/studies/cov_std"]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda args: args[args.index("--out") + 1])
def test_docs_studies_regenerate_from_their_committed_runs(args, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the commands are written to run from the repository root
    args = list(args)
    committed = ROOT / args[args.index("--out") + 1]
    args[args.index("--out") + 1] = str(tmp_path)
    assert (ROOT / args[0]).is_dir() and main(args) == 0
    compared = [name for name in COMPARED if (committed / name).exists()]
    assert compared[:3] == list(COMPARED[:3])
    for name in compared:
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / name), pd.read_csv(committed / name),
                                      check_exact=False, rtol=1e-9)
    body = [(folder / "report.md").read_text().split("\n", 3)[3] for folder in (tmp_path, committed)]  # from line 4
    assert body[0] == body[1]
