"""wandb tracking and replay, against real offline wandb runs.

What wandb wrote is read back from the offline run's transaction log (run-<id>.wandb) with wandb.proto:
this wandb has no Python reader for it and the public wandb.Api needs a server.
"""

import json
import os
import pathlib
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from dataclasses import dataclass, field

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from PIL import Image

from jepa.config import ConfigError
from jepa.private_apis import wandb_record_parser
from jepa.tracking import replay as wandb_sync
from jepa.tracking.wandb_run import (
    NullTracker,
    RunIdentity,
    WandbTracker,
    make_tracker,
    read_metrics,
    run_identity,
    wandb_tag,
)

REPO = pathlib.Path(__file__).resolve().parents[1]
OVERRIDES = ["experiment=quick", "model.steps=2", "seed=7", "hydra/launcher=submitit_slurm",
             "logging.mode=offline", "+data.max_val_sequences=8"]
NAME = "steps=2,cov=100,std=10,lr=0.001,bs=16,data.max_val_sequences=8,experiment=quick"
CONFIG_TAG = wandb_tag(f"config={NAME}")  # over 64 characters: shortened, with a hash


# ---------------------------------------------------------------- reading what wandb wrote

def read_transaction_log(path: pathlib.Path) -> list:
    """The Record messages of a .wandb file: a LevelDB-style log of 32 KiB blocks after a 7-byte header,
    chunks `crc32 | length (uint16) | type (uint8) | data`, type 1 whole, 2/3/4 first/middle/last."""
    parse = wandb_record_parser()

    data, pos, pieces, records = path.read_bytes(), 7, [], []
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:
            pos += 32768 - pos % 32768
            continue
        checksum, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 0 or len(chunk) < length or zlib.crc32(chunk, zlib.crc32(bytes([kind]))) != checksum:
            break  # a torn tail: the writer was killed
        pieces = [chunk] if kind in (1, 2) else [*pieces, chunk]
        if kind in (1, 4):
            records.append(parse(b"".join(pieces)))
    return records


def _items(updates) -> dict:
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in updates}


@dataclass
class OfflineRun:
    folder: pathlib.Path
    run: object = None  # the RunRecord: id, project, name, group, tags, config
    config: dict = field(default_factory=dict)
    history: list = field(default_factory=list)  # one dict per history row, in order
    summary: dict = field(default_factory=dict)
    exit_code: int | None = None

    @property
    def steps(self) -> list[int]:
        return [row["_step"] for row in self.history]


def load_offline_run(folder: pathlib.Path, finished: bool = True) -> OfflineRun:
    """The run wandb logged in folder; finished: wait for its exit record (wandb-core writes the log a few
    milliseconds after run.finish() returns)."""
    (log_file,) = folder.glob("run-*.wandb")
    deadline = time.monotonic() + 10
    while finished and not any(r.HasField("exit") for r in read_transaction_log(log_file)):
        assert time.monotonic() < deadline, f"{log_file} has no exit record"
        time.sleep(0.01)
    run = OfflineRun(folder)
    for record in read_transaction_log(log_file):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.run = record.run
            run.config.update(_items(record.run.config.update))
        elif kind == "config":
            run.config.update(_items(record.config.update))
        elif kind == "history":
            run.history.append(_items(record.history.item))
        elif kind == "summary":
            run.summary.update(_items(record.summary.update))
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    run.config.pop("_wandb", None)
    return run


def offline_runs(root: pathlib.Path, finished: bool = True) -> list[OfflineRun]:
    return [load_offline_run(d, finished) for d in sorted((root / "wandb").glob("offline-run-*"))]


# ---------------------------------------------------------------- a run folder as the trainer writes it

@pytest.fixture(scope="module")
def config() -> dict:
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[o for o in OVERRIDES if not o.startswith("hydra/")])
    return OmegaConf.to_container(cfg, resolve=True)


def record(epoch: int) -> dict:
    return {"epoch": epoch, "global_step": 10 * epoch, "train/loss": 1.0 / epoch, "val/AP_0": 0.1 * epoch,
            "val/mAP": 0.05 * epoch, "val/copy_last/mAP": 0.2, "time/epoch_s": 1.5, "val/dec_mse": None}


def make_run_folder(run_dir: pathlib.Path, config: dict, status: str = "running") -> pathlib.Path:
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(OVERRIDES))
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(config))
    write_results(run_dir, status)
    frames = [Image.new("L", (16, 16), color=40 * i) for i in range(3)]
    frames[0].save(run_dir / "rollout.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return run_dir


def write_results(run_dir: pathlib.Path, status: str, reason: str | None = None) -> None:
    best = record(2)
    (run_dir / "results.json").write_text(json.dumps({"status": status, "reason": reason, "best": best,
                                                      "epochs_completed": 2, "final": best}))


def append_metrics(run_dir: pathlib.Path, *epochs: int) -> None:
    with (run_dir / "metrics.jsonl").open("a") as f:
        f.writelines(json.dumps(record(e)) + "\n" for e in epochs)


# ---------------------------------------------------------------- tests

def test_offline_run_logs_config_history_gif_and_identity(tmp_path, config):
    run_dir = make_run_folder(tmp_path / "run", config)
    tracker = make_tracker(config["logging"], run_dir, config, study="lr_sweep")
    assert isinstance(tracker, WandbTracker)
    for epoch in (1, 2):
        append_metrics(run_dir, epoch)
        if epoch == 2:  # the trainer writes the GIF before logging the epoch's record
            tracker.log_gif(run_dir / "rollout.gif", epoch)
        tracker.log_epoch(record(epoch))
    tracker.finish("done")

    (run,) = offline_runs(run_dir)
    assert run.run.run_id == (run_dir / "wandb_id.txt").read_text().strip()
    assert run.folder.name.endswith(run.run.run_id)
    assert run.run.project == "jepa-moving-mnist"
    assert run.config == config
    assert (run.run.display_name, run.run.run_group, run.run.job_type) == (f"{NAME},seed=7", NAME, "lr_sweep")
    assert set(run.run.tags) == {"seed=7", "study=lr_sweep", CONFIG_TAG}
    assert run.steps == [1, 2]
    for row, epoch in zip(run.history, (1, 2), strict=True):
        expected = {k: v for k, v in record(epoch).items() if v is not None}
        assert {k: row[k] for k in expected} == expected
        assert "val/dec_mse" not in row
    assert run.history[1]["rollout/_type"] == "video-file"
    assert (run.folder / "files" / run.history[1]["rollout/path"]).is_file()
    assert run.summary["status"] == "done" and run.exit_code == 0


def test_tracker_never_raises(tmp_path, config):
    run_dir = make_run_folder(tmp_path / "run", config)
    tracker = make_tracker(config["logging"], run_dir, config, study=None)
    tracker.log_epoch(record(1))
    tracker.log_gif(run_dir / "missing.gif", 1)  # warns, does not raise
    tracker.run.finish()  # wandb already closed behind the tracker's back: its calls now fail
    tracker.log_epoch(record(2))
    tracker.finish("failed", "non-finite loss at epoch 2 step 20: train/pred=nan")
    tracker.finish("failed", "called twice")

    (run,) = offline_runs(run_dir)
    assert (run.run.run_group, run.run.job_type) == (NAME, "")  # no study: no job type
    assert run.steps == [1]
    assert run.exit_code == 0  # the early run.finish() above closed it


def test_failed_run_exit_code(tmp_path, config):
    run_dir = make_run_folder(tmp_path / "run", config)
    tracker = make_tracker(config["logging"], run_dir, config, study=None)
    tracker.log_epoch(record(1))
    tracker.finish("failed", "non-finite loss at epoch 1 step 10: train/pred=nan")
    (run,) = offline_runs(run_dir)
    assert run.exit_code == 1
    assert run.summary["status"] == "failed"
    assert run.summary["reason"].startswith("non-finite loss")


CRASHING_RUN = textwrap.dedent("""
    import json, os, pathlib, sys
    from jepa.tracking import make_tracker
    run_dir, config, records = pathlib.Path(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
    tracker = make_tracker(config["logging"], run_dir, config, config["study"])
    for record in records:
        with (run_dir / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\\n")
        tracker.log_epoch(record)
    os._exit(3)  # killed: no finish, no exit hooks
""")


def test_restart_continues_the_run_and_replay_gives_each_epoch_once(tmp_path, config):
    config = {**config, "study": "resume_study"}  # a sweep's run: config.yaml names its study
    run_dir = make_run_folder(tmp_path / "run", config)
    job_env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}  # its own wandb service, as a job
    crash = subprocess.run([sys.executable, "-c", CRASHING_RUN, str(run_dir), json.dumps(config),
                            json.dumps([record(1), record(2)])],
                           env={**job_env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, check=False)
    assert crash.returncode == 3, crash.stderr
    run_id = (run_dir / "wandb_id.txt").read_text().strip()

    tracker = make_tracker(config["logging"], run_dir, config, config["study"])  # the requeued job
    for epoch in (2, 3, 4):  # epoch 2 is already in metrics.jsonl: the tracker must skip it
        if epoch > 2:
            append_metrics(run_dir, epoch)
        tracker.log_epoch(record(epoch))
    tracker.log_gif(run_dir / "rollout.gif", 4)
    write_results(run_dir, "done")
    tracker.finish("done")

    # offline, wandb ignores resume: one folder per process, both with the stored id
    crashed, restarted = sorted((run_dir / "wandb").glob(f"offline-run-*-{run_id}*"))
    crashed, restarted = load_offline_run(crashed, finished=False), load_offline_run(restarted)
    # a killed process's offline log keeps at most what wandb-core flushed (often nothing): replay covers it
    assert crashed.exit_code is None and set(crashed.steps) <= {1, 2}
    assert restarted.run.run_id == run_id and restarted.steps == [3, 4] and restarted.exit_code == 0

    replay_dir = tmp_path / "replay"
    assert wandb_sync.main([str(run_dir), "--mode", "offline", "--dir", str(replay_dir)]) == 0
    (replayed,) = offline_runs(replay_dir)
    assert replayed.run.run_id == run_id
    assert (replayed.run.display_name, replayed.run.run_group, replayed.run.job_type) == (
        f"{NAME},seed=7", NAME, "resume_study")
    assert set(replayed.run.tags) == {"seed=7", "study=resume_study", CONFIG_TAG}
    assert replayed.config == config
    assert replayed.steps == [1, 2, 3, 4]
    assert [row["train/loss"] for row in replayed.history] == [record(e)["train/loss"] for e in (1, 2, 3, 4)]
    assert replayed.history[-1]["rollout/_type"] == "video-file"
    assert replayed.summary["status"] == "done" and replayed.summary["best/val/mAP"] == record(2)["val/mAP"]
    assert replayed.exit_code == 0


def test_replay_of_a_sweep_folder(tmp_path, config, capsys):
    sweep = tmp_path / "sweep"
    never_tracked = make_run_folder(sweep / "0", config, status="failed")
    append_metrics(never_tracked, 1, 2)
    still_running = make_run_folder(sweep / "1", config, status="running")
    append_metrics(still_running, 1)

    assert wandb_sync.main([str(sweep), "--dry-run", "--study", "s"]) == 0
    out = capsys.readouterr().out
    assert "would replay" in out and "epochs 1..2" in out and "skipping" in out and "id=(new)" in out
    assert sorted(p.name for p in never_tracked.iterdir()) == [".hydra", "config.yaml", "metrics.jsonl",
                                                               "results.json", "rollout.gif"]

    assert wandb_sync.main([str(sweep), "--mode", "offline", "--study", "s"]) == 0
    (replayed,) = offline_runs(never_tracked / wandb_sync.REPLAY_DIR)
    assert replayed.run.run_id == (never_tracked / "wandb_id.txt").read_text().strip()
    assert (replayed.run.run_group, replayed.run.job_type) == (NAME, "s")
    assert replayed.steps == [1, 2] and replayed.exit_code == 1
    assert not (still_running / wandb_sync.REPLAY_DIR).exists()


def test_seeds_of_one_configuration_share_a_group_live_and_replayed(tmp_path, config):
    """Two seeds of one configuration in a study: one wandb group (the configuration), the study as job type
    and tag, each seed its own name; the replay of their folders writes the same."""
    live = {}
    for seed in (1, 2):
        run_config = {**config, "seed": seed, "study": "lr"}
        run_dir = make_run_folder(tmp_path / "lr" / f"seed={seed}", run_config)
        tracker = make_tracker(config["logging"], run_dir, run_config)
        append_metrics(run_dir, 1)
        tracker.log_epoch(record(1))
        write_results(run_dir, "done")
        tracker.finish("done")
        (live[seed],) = offline_runs(run_dir)
    assert wandb_sync.main([str(tmp_path / "lr"), "--mode", "offline"]) == 0
    replayed = {seed: offline_runs(tmp_path / "lr" / f"seed={seed}" / wandb_sync.REPLAY_DIR)[0] for seed in (1, 2)}
    for runs in (live, replayed):
        assert {seed: (r.run.run_group, r.run.job_type) for seed, r in runs.items()} == {
            1: (NAME, "lr"), 2: (NAME, "lr")}
        assert {seed: r.run.display_name for seed, r in runs.items()} == {1: f"{NAME},seed=1", 2: f"{NAME},seed=2"}
        assert {seed: set(r.run.tags) for seed, r in runs.items()} == {
            seed: {f"seed={seed}", "study=lr", CONFIG_TAG} for seed in (1, 2)}


@pytest.mark.parametrize("folder, says", [("missing", "is not a folder"), ("a_file", "is not a folder"),
                                          ("empty", "holds no run folder")])
def test_replay_refuses_a_folder_without_runs(tmp_path, capsys, folder, says):
    (tmp_path / "a_file").write_text("")
    (tmp_path / "empty").mkdir()
    assert wandb_sync.main([str(tmp_path / folder), "--dry-run"]) == 2
    assert f"{tmp_path / folder} {says}" in capsys.readouterr().err


@pytest.mark.parametrize("file, content, says", [
    ("config.yaml", "[1, 2]\n", "config.yaml is not a run's config"),
    ("config.yaml", "hello\n", "config.yaml is not a run's config"),
    ("config.yaml", "", "config.yaml is not a run's config"),
    ("config.yaml", "seed: 1\nlogging: hello\n", "logging is 'hello', not a mapping"),
    ("results.json", "[1]", "results.json is unreadable"),
])
def test_replay_names_the_bad_file_of_a_run_and_goes_on(tmp_path, config, capsys, file, content, says):
    """One run folder with a bad file fails alone (exit 1, naming the file); the other is still replayed."""
    good = make_run_folder(tmp_path / "sweep" / "0", config, status="done")
    append_metrics(good, 1)
    bad = make_run_folder(tmp_path / "sweep" / "1", config, status="done")
    (bad / file).write_text(content)
    assert wandb_sync.main([str(tmp_path / "sweep"), "--dry-run"]) == 1
    out, err = capsys.readouterr()
    assert f"would replay {good}:" in out and str(bad) in err and says in err


def test_disabled_writes_nothing(tmp_path, config):
    tracker = make_tracker({**config["logging"], "mode": "disabled"}, tmp_path, config, study="s")
    assert isinstance(tracker, NullTracker)
    tracker.log_epoch(record(1))
    tracker.log_gif(tmp_path / "rollout.gif", 1)
    tracker.finish("failed", "reason")
    assert list(tmp_path.iterdir()) == []


def test_unknown_mode_is_a_config_error(tmp_path, config):
    with pytest.raises(ConfigError, match="logging.mode"):
        make_tracker({"mode": "offlien"}, tmp_path, config, study=None)


def test_identity_groups_seeds_and_follows_overrides(tmp_path, config):
    runs = []
    for seed in (1, 2):
        run_dir = tmp_path / str(seed)
        (run_dir / ".hydra").mkdir(parents=True)
        overrides = [f"seed={seed}", "study=lr", "model.steps=2", "hydra.job.chdir=false", "training.device=cpu"]
        (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        runs.append(run_identity(config["logging"], run_dir, {**config, "seed": seed, "study": "lr"}, None))
    configuration = "steps=2,cov=100,std=10,lr=0.001,bs=16"
    assert [r.name for r in runs] == [f"{configuration},seed=1", f"{configuration},seed=2"]
    assert runs[0].group == runs[1].group == configuration and runs[0].job_type == runs[1].job_type == "lr"
    assert runs[0].tags == ("seed=1", "study=lr", f"config={configuration}")
    assert runs[1].tags == ("seed=2", "study=lr", f"config={configuration}")

    no_hydra = run_identity(config["logging"], tmp_path / "plain", config, None)
    assert (no_hydra.group, no_hydra.job_type) == (configuration, None)
    chosen = {**config["logging"], "name": "mine", "group": "g", "tags": ["x"]}
    assert run_identity(chosen, tmp_path, config, "s") == RunIdentity(
        "mine", "g", ("x", "seed=7", "study=s", f"config={configuration}"), "s")


def test_long_tags_stay_within_wandb_limit_and_apart():
    long_a, long_b = "config=" + "x" * 70 + "a", "config=" + "x" * 70 + "b"
    assert wandb_tag("config=short") == "config=short"
    assert len(wandb_tag(long_a)) == 64 and wandb_tag(long_a).startswith(long_a[:57])
    assert wandb_tag(long_a) != wandb_tag(long_b)


def test_read_metrics_keeps_one_record_per_epoch(tmp_path):
    lines = [json.dumps(record(1)), json.dumps(record(2)), json.dumps({**record(2), "train/loss": 9.0}),
             json.dumps(record(3))[:20]]  # epoch 2 redone after a restart, then a write torn by a crash
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    records = read_metrics(tmp_path)
    assert [r["epoch"] for r in records] == [1, 2] and records[1]["train/loss"] == 9.0
