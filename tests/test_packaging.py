"""The project installs from a wheel and works from any folder: configs, studies, training, a local sweep.

The wheel carries conf/ and sweeps/ inside the package (pyproject.toml maps them to jepa/conf and
jepa/sweeps). The slow test builds the wheel from this checkout, installs it into a folder of its own and
runs it from an empty folder in an interpreter that sees neither the checkout nor an editable install.
"""

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from jepa.config import compose_config
from jepa.config.resources import conf_dir, sweeps_dir
from jepa.studies.search.spec import is_search_file

ROOT = Path(__file__).resolve().parent.parent
tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python >= 3.11")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def config_choices() -> list[tuple[str, str]]:
    """(group, option) for every option of every config group, e.g. ('data', 'generated')."""
    choices = []
    for path in sorted(conf_dir().rglob("*.yaml")):
        group = path.parent.relative_to(conf_dir()).as_posix()
        if group != "." and not group.startswith("hydra"):
            choices.append((group, path.stem))
    return choices


def test_every_package_of_the_tree_is_in_the_wheel_list():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = {p.parent.relative_to(ROOT).as_posix().replace("/", ".")
             for top in ("jepa", "analysis", "hydra_plugins") for p in (ROOT / top).rglob("__init__.py")}
    mapped = set(PYPROJECT["tool"]["setuptools"]["package-dir"])
    assert found | mapped | {"hydra_plugins"} == listed


def test_every_config_option_and_study_composes_here():
    for group, option in config_choices():
        prefix = "+" if group == "cluster" else ""
        compose_config([f"{prefix}{group}={option}"], check=False)
    studies = [p.stem for p in sweeps_dir().glob("*.yaml") if not is_search_file(p)]
    assert {"cov_std", "steps", "seeds", "reference_grid"} <= set(studies)
    for study in studies:  # each sets the run's `study` (seeds only repeats another study)
        assert compose_config([f"+sweeps={study}"], check=False).study == (None if study == "seeds" else study)


def isolated_env(site: Path) -> dict:
    """An environment whose interpreter (run with -S) sees `site` and the installed dependencies only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "JEPA_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(site), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    return env


@pytest.mark.slow
def test_the_wheel_runs_training_and_a_sweep_from_an_empty_folder(tmp_path):
    wheels, site, work = tmp_path / "wheels", tmp_path / "site", tmp_path / "empty"
    work.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                    str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("jepa_mmnist-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "jepa/conf/config.yaml" in names and "jepa/sweeps/cov_std.yaml" in names
    assert "jepa/performance/caching_allocator.cpp" in names
    assert "jepa/data/mnist_digits.npz" in names and "jepa/data/MNIST_NOTICE.md" in names  # the shipped digits
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    env = isolated_env(site)

    def python(*args, timeout=600):
        proc = subprocess.run([sys.executable, "-S", *args], cwd=work, env=env, capture_output=True, text=True,
                              timeout=timeout)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    compose_all = (
        "import json, jepa\n"
        "from jepa.config import compose_config\n"
        "from jepa.config.resources import conf_dir, sweeps_dir\n"
        "from jepa.studies.search.spec import load_sweep\n"
        f"choices = {config_choices()!r}\n"
        "for group, option in choices:\n"
        "    compose_config([('+' if group == 'cluster' else '') + f'{group}={option}'], check=False)\n"
        "studies = {s: compose_config([f'+sweeps={s}'], check=False).get('study')\n"
        "           for s in ('cov_std', 'steps', 'seeds', 'reference_grid')}\n"
        "load_sweep('optuna_vc', ['experiment=quick'], study_dir='search')\n"
        "print(json.dumps({'jepa': jepa.__file__, 'conf': str(conf_dir()), 'sweeps': str(sweeps_dir()),\n"
        "                  'studies': studies, 'groups': len(choices)}))\n"
    )
    found = json.loads(python("-c", compose_all).strip().splitlines()[-1])
    for key in ("jepa", "conf", "sweeps"):
        assert found[key].startswith(str(site)), found
    assert found["studies"] == {"cov_std": "cov_std", "steps": "steps", "seeds": None,
                                "reference_grid": "reference_grid"}

    tiny = ["experiment=quick", "data.num_train=16", "data.num_val=8", "data.batch_size=8", "model.henc=4",
            "model.hpre=4", "model.dstc=4", "model.steps=1", "training.epochs=1", "training.progress=false",
            "logging.mode=disabled"]
    python("-m", "jepa.train", *tiny, "hydra.run.dir=single")
    assert json.loads((work / "single" / "results.json").read_text())["status"] == "done"

    sweep = [o for o in tiny if not o.startswith("model.steps")]
    python("-m", "jepa.train", "+sweeps=steps", *sweep, "model.steps=1,2", "hydra.sweep.dir=study")
    status = json.loads(python("-m", "jepa.studies", "status", "study", "--json"))
    assert status["counts"]["done"] == 2 and len(status["runs"]) == 2
