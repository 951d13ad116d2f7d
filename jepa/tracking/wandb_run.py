"""wandb tracking of one training run: offline by default, resumable, never fatal.

The trainer calls::

    tracker = make_tracker(cfg.logging, run_dir, config, study)   # config: the resolved config, a plain dict
    tracker.log_epoch(record)              # one metrics.jsonl record; the wandb step is record["epoch"]
    tracker.log_gif(run_dir / "rollout.gif", epoch)
    tracker.finish("done")                 # or finish("failed" | "pruned", reason): the run folder's status

What a run shows in wandb
-------------------------
- config: the resolved config; history: every metrics.jsonl key (losses, AP per horizon, mAP, baselines,
  probes, timings) at step = epoch, `epoch` and `global_step` included, nulls left out; `rollout`: the
  rollout animation; summary: `status` (done | failed) and `reason`.
- group: the configuration without the seed, so wandb draws the seeds of one configuration as one band, e.g.
  `steps=4,cov=100,std=10,lr=0.001,bs=16,experiment=quick`: the five hyperparameters of NAME_KEYS from
  the resolved config, then the run's other Hydra overrides (run_dir/.hydra/overrides.yaml), sorted,
  leaving out what does not identify a configuration (jepa.config.identity: the seed, the study, where
  and how a run executes).
- name: the configuration, then `seed=<seed>`. job_type: the study (sweep) name, none outside a study.
- tags: logging.tags, `seed=<seed>`, `study=<study>`, `config=<configuration>` (a tag over wandb's 64
  characters keeps its first 57 and a hash of the whole, so two configurations never share a tag).
- logging.name / logging.group set explicitly win over these rules.

The GIF is logged as `wandb.Video(path, format="gif")`: built from a file path, wandb.Video only copies
the file into the run (media/videos/), needing no moviepy, imageio or even PIL (those encode arrays only),
and the run shows it as a video. `wandb.Image(path)` of the GIF works offline too but opens the file with
PIL; moviepy/imageio (wandb[media]) would only be needed to log frames as arrays, which we never do.

Offline, restarts and syncing
-----------------------------
wandb's own files go under the run folder: run_dir/wandb/offline-run-<time>-<id>/. The run id is stored in
run_dir/wandb_id.txt and reused with resume="allow", so online a requeued job continues its wandb run. On
restart the tracker reads metrics.jsonl and skips epochs an earlier process already logged. Offline, wandb
ignores `resume`: every restart writes one more offline-run-*-<id> folder holding only the epochs of that
process. Worse, wandb-core writes the offline log in 32 KiB blocks and only flushes at finish, so a process
killed without finishing (SIGKILL, time limit, node failure) leaves its folder missing the last epochs, on
a short run all of them. The run folder's metrics.jsonl stays the source of truth, and two ways lead to
the server:

- replay (recommended; clean whatever happened: restarts, a crash between metrics.jsonl and wandb, a run
  logged with logging.mode=disabled). From a machine with network, on run folders or whole sweep folders::

      python -m jepa.tracking.replay <sweep_dir> <run_dir>... [--project P] [--entity E] [--dry-run]

  It writes one wandb run per run folder, with the stored id: config, each epoch once in epoch order, the
  final rollout.gif, the final status from results.json. `--project` / `--entity` override the config's.
  If that id already exists on the server, wandb keeps the steps it has and only new epochs are added;
  delete the run in the UI first to rebuild it from scratch.
- `wandb sync <run_dir>/wandb/offline-run-*` (after `wandb login`; a sweep:
  `wandb sync <sweep_dir>/*/wandb/offline-run-*`) uploads exactly what was logged (with system metrics when
  logging.system_metrics is on). Use it only for a run that ran and finished in one process (a single
  offline-run-* folder): a restarted run's folders each hold part of it, a killed one's miss epochs.

Cost and network
----------------
Measured offline on a 2-core machine: importing wandb takes 1-2 s (never done when mode=disabled); the
first init in a process 0.7-1.5 s, mostly starting wandb's service; finish 0.01 s plus, the first time,
0.5-0.8 s in which wandb's summary code imports pandas (when installed). A second run in the same process
costs about 0.05 s. Online, finish waits at most FINISH_TIMEOUT_S for uploads; an unreachable server
costs wandb's init_timeout (90 s) at start, after which the run trains without wandb.

Console capture, git/code/requirements capture and system metrics are off. Offline, wandb's error
reporting (which resolves a wandb host) is switched off too (WANDB_ERROR_REPORTING=false, unless set),
so an offline run opens no network connection. Every wandb error is logged as a warning and never stops
training; if wandb cannot start, the run trains without it and can be replayed later.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pathlib
import secrets
import string
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from jepa.config.checks import check_key
from jepa.config.identity import identifying_overrides, override_key
from jepa.config.schema import wandb_name_keys
from jepa.private_apis import WANDB_PRIVATE_SETTINGS, wandb_settings_fields
from jepa.runs import exit_code
from jepa.runs import read_metrics as read_run_metrics

log = logging.getLogger(__name__)

ID_FILE = "wandb_id.txt"
GIF_KEY = "rollout"
# (label, dotted config key): the hyperparameters every run name starts with (labelled in the schema)
NAME_KEYS = wandb_name_keys()
FINISH_TIMEOUT_S = 120  # online: stop waiting for uploads after this long (a replay fills any gap)


@dataclass(frozen=True)
class RunIdentity:
    """How a run appears in wandb."""

    name: str
    group: str
    tags: tuple[str, ...]
    job_type: str | None = None


def make_tracker(logging_cfg, run_dir: pathlib.Path, config: dict, study: str | None = None):
    """A WandbTracker for logging.mode offline | online, a NullTracker for disabled.

    Writes run_dir/wandb_id.txt (or reuses it) and wandb's files under run_dir/wandb/. Never raises for a
    wandb failure: it warns and returns a NullTracker. Raises ConfigError for an unknown mode.
    """
    logging_cfg, config = _plain(logging_cfg), _plain(config)
    mode = logging_cfg.get("mode", "offline")
    check_key("logging.mode", mode)  # the schema's rule: callers outside a checked config (the replay, tests)
    if mode == "disabled":
        return NullTracker()
    run_dir = pathlib.Path(run_dir)
    records = read_metrics(run_dir)
    try:
        run = start_run(
            mode=mode,
            wandb_dir=run_dir,
            run_id=stored_run_id(run_dir, create=True),
            project=logging_cfg.get("project"),
            entity=logging_cfg.get("entity"),
            identity=run_identity(logging_cfg, run_dir, config, study),
            config=config,
            system_metrics=bool(logging_cfg.get("system_metrics", False)),
        )
    except Exception as err:  # wandb raises many types; none may stop training
        log.warning("wandb did not start (%s: %s); training goes on without it. Replay it later: "
                    "python -m jepa.tracking.replay %s", type(err).__name__, err, run_dir)
        return NullTracker()
    log.info("wandb %s run %s in %s", mode, run.id, pathlib.Path(run.dir).parent)
    return WandbTracker(run, logged_through=records[-1]["epoch"] if records else 0)


class NullTracker:
    """logging.mode=disabled: accepts every call and writes nothing."""

    def log_epoch(self, record: dict) -> None:
        pass

    def log_gif(self, path: pathlib.Path, epoch: int) -> None:
        pass

    def finish(self, status: str, reason: str | None = None, summary: dict | None = None) -> None:
        pass


class WandbTracker:
    """Logs to one wandb run at step = epoch. Every wandb error becomes a warning."""

    def __init__(self, run, logged_through: int = 0):
        self.run = run
        self._last_epoch = logged_through  # the last epoch record wandb has, from this process or before
        self._step = logged_through  # wandb drops anything logged below its current step
        self._finished = False

    def log_epoch(self, record: dict) -> None:
        """Log one metrics.jsonl record (flat keys, numbers or null) at step record['epoch']."""
        epoch = int(record["epoch"])
        if epoch <= self._last_epoch:
            log.debug("wandb already has epoch %d; not logged again", epoch)
            return
        with _warn_on_error(f"logging epoch {epoch}"):
            self.run.log({key: value for key, value in record.items() if value is not None}, step=epoch)
            self._last_epoch = self._step = epoch

    def log_gif(self, path: pathlib.Path, epoch: int) -> None:
        """Log the rollout GIF at step epoch (copied now: the file may be overwritten later)."""
        path = pathlib.Path(path)
        if epoch < self._step or not path.is_file():
            log.warning("wandb: rollout %s at epoch %d not logged (%s)", path, epoch,
                        "missing file" if not path.is_file() else f"wandb is at step {self._step}")
            return
        with _warn_on_error(f"logging {path.name} at epoch {epoch}"):
            import wandb  # only where a run logs to wandb (about 1 s to import)

            self.run.log({GIF_KEY: wandb.Video(str(path), format="gif")}, step=epoch)
            self._step = epoch

    def finish(self, status: str, reason: str | None = None, summary: dict | None = None) -> None:
        """Close the run with its jepa.runs status: done and pruned exit 0, failed (and anything else) exits 1,
        so wandb marks it failed; the summary's `status` is the run folder's.

        Records status, reason and any extra summary values. Never raises; a second call does nothing.
        """
        if self._finished:
            return
        self._finished = True
        with _warn_on_error("writing the summary"):
            self.run.summary.update({"status": status, "reason": reason, **(summary or {})})
        with _warn_on_error("finishing the run"):
            self.run.finish(exit_code=exit_code(status))


def start_run(*, mode: str, wandb_dir: pathlib.Path, run_id: str, project: str | None,
              entity: str | None, identity: RunIdentity, config: dict, system_metrics: bool = False):
    """wandb.init with the lean settings of this module; wandb's files go under wandb_dir/wandb/."""
    if mode == "offline":
        # wandb's error reporting resolves a wandb host even offline; a user's explicit choice wins
        os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
    import wandb  # here, so that disabled runs never pay for importing it (about 1 s)

    wanted = {
        "silent": True,  # our own log line says where the run is; wandb's banners would flood train.log
        "console": "off",  # train.log already holds the console
        "disable_git": True,  # results.json records the versions and the git commit
        "disable_code": True,
        **dict.fromkeys(WANDB_PRIVATE_SETTINGS[:1], False),
        **dict.fromkeys(WANDB_PRIVATE_SETTINGS[1:], not system_metrics),
        "finish_timeout": FINISH_TIMEOUT_S,
    }
    known = wandb_settings_fields()  # names as of wandb 0.19+; older ones get defaults
    wandb_dir.mkdir(parents=True, exist_ok=True)
    return wandb.init(
        mode=mode, dir=wandb_dir, id=run_id, resume="allow", project=project, entity=entity,
        name=identity.name, group=identity.group, job_type=identity.job_type, tags=list(identity.tags),
        config=config,
        settings=wandb.Settings(**{key: value for key, value in wanted.items() if key in known}),
    )


def run_identity(logging_cfg, run_dir: pathlib.Path, config: dict, study: str | None) -> RunIdentity:
    """Name, group, job type and tags of a run (rules in the module docstring); study defaults to
    config['study']."""
    logging_cfg = _plain(logging_cfg)
    study = study or config.get("study")
    configuration, seed = run_name(run_dir, config), config.get("seed")
    tags = [*(logging_cfg.get("tags") or []), f"seed={seed}"]
    if study:
        tags.append(f"study={study}")
    tags.append(f"config={configuration}")
    unique = dict.fromkeys(wandb_tag(str(tag)) for tag in tags)
    return RunIdentity(name=logging_cfg.get("name") or f"{configuration},seed={seed}",
                       group=logging_cfg.get("group") or configuration, tags=tuple(unique),
                       job_type=str(study) if study else None)


def wandb_tag(tag: str) -> str:
    """The tag within wandb's 64 characters: a longer one keeps its first 57 and 6 hex digits of its hash."""
    if len(tag) <= 64:
        return tag
    return f"{tag[:57]}~{hashlib.sha256(tag.encode()).hexdigest()[:6]}"


def run_name(run_dir: pathlib.Path, config: dict) -> str:
    """The configuration without the seed, e.g. 'steps=4,cov=100,std=10,lr=0.001,bs=16,experiment=quick'."""
    parts = [f"{label}={_format(value)}" for label, key in NAME_KEYS
             if (value := _lookup(config, key)) is not None]
    named = {key for _, key in NAME_KEYS}
    parts += [o for o in identifying_overrides(_hydra_overrides(run_dir)) if override_key(o) not in named]
    return ",".join(parts)


def stored_run_id(run_dir: pathlib.Path, create: bool = False) -> str | None:
    """The wandb id in run_dir/wandb_id.txt; with create, a new one is written when there is none."""
    path = pathlib.Path(run_dir) / ID_FILE
    if path.is_file() and (run_id := path.read_text().strip()):
        return run_id
    if not create:
        return None
    run_id = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))  # wandb's id form
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(run_id + "\n")
    return run_id


def read_metrics(run_dir: pathlib.Path) -> list[dict]:
    """metrics.jsonl as one record per epoch, in epoch order (jepa.runs.read_metrics)."""
    return read_run_metrics(run_dir).records


@contextlib.contextmanager
def _warn_on_error(action: str) -> Iterator[None]:
    try:
        yield
    except Exception as err:  # wandb raises many types; none may stop training
        log.warning("wandb: %s failed (%s: %s); the run folder keeps everything, replay it with "
                    "python -m jepa.tracking.replay", action, type(err).__name__, err)


def _hydra_overrides(run_dir: pathlib.Path) -> list[str]:
    path = pathlib.Path(run_dir) / ".hydra" / "overrides.yaml"
    return [str(o) for o in yaml.safe_load(path.read_text()) or []] if path.is_file() else []


def _lookup(config: dict, dotted: str) -> Any:
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _format(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _plain(cfg) -> dict:
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)
    return dict(cfg or {})
