"""Replay run folders into wandb: exactly one clean wandb run per run folder.

    python -m jepa.tracking.replay RUN_OR_SWEEP_FOLDER... [--project P] [--entity E] [--study S]
                              [--mode online|offline] [--dir DIR] [--include-running] [--dry-run]

Each run folder (a folder holding config.yaml and metrics.jsonl or results.json, found anywhere under the
given paths) becomes the wandb run of the id in its wandb_id.txt (a new id is stored when the run never
had one): its config.yaml, every metrics.jsonl record once in epoch order at step = epoch, the final
rollout.gif, and the status, reason and best epoch of results.json. A run whose results.json still says
`running` may be training right now (or waiting to be requeued), so it is skipped; with
--include-running it is replayed as failed with status `incomplete` (for a job that was killed).

Name, group, job type and tags follow the same rules as the training run's (jepa.tracking.run_identity on
config.yaml, .hydra/overrides.yaml and the config's `study`; --study overrides that). --mode offline
(for tests, or to `wandb sync` later) writes the replay under --dir, by default run_dir/wandb_replay/,
which is rebuilt on every replay. Why replaying beats `wandb sync` of the offline folders: see
jepa/tracking/wandb_run.py.
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import shutil
import sys
from dataclasses import dataclass, field

import yaml

from jepa.runs import RunFolder, find_run_folders, runs_problem
from jepa.runs.status import FINISHED
from jepa.tracking.wandb_run import (
    RunIdentity,
    WandbTracker,
    read_metrics,
    run_identity,
    start_run,
    stored_run_id,
)

REPLAY_DIR = "wandb_replay"


@dataclass
class Replay:
    """Everything one run folder replays into wandb."""

    run_dir: pathlib.Path
    run_id: str | None  # None: the run never had wandb; a new id is stored when it is replayed
    project: str | None
    entity: str | None
    identity: RunIdentity
    config: dict
    records: list[dict]
    gif: pathlib.Path | None
    status: str
    reason: str | None
    summary: dict = field(default_factory=dict)

    def describe(self) -> str:
        epochs = f"epochs {self.records[0]['epoch']}..{self.records[-1]['epoch']}" if self.records else "no epochs"
        return (f"{self.run_dir}: id={self.run_id or '(new)'} {self.entity or '-'}/{self.project} "
                f"name={self.identity.name} group={self.identity.group} job_type={self.identity.job_type} "
                f"tags={','.join(self.identity.tags)} "
                f"{epochs} ({len(self.records)} records) gif={'yes' if self.gif else 'no'} status={self.status}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if problem := runs_problem(args.paths):  # a mistyped folder is an error, not a silent no-op
        print(f"python -m jepa.tracking.replay: error: {problem}", file=sys.stderr)
        return 2
    run_dirs = find_run_folders(args.paths)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")  # wandb errors, as warnings
    failures = 0
    for run_dir in run_dirs:
        try:
            plan = plan_replay(run_dir, project=args.project, entity=args.entity, study=args.study)
            if plan.status == "incomplete" and not args.include_running:
                print(f"skipping {run_dir}: results.json says running (pass --include-running if it was killed)")
                continue
            print(("would replay " if args.dry_run else "replaying ") + plan.describe(), flush=True)
            if not args.dry_run:
                print(f"  wrote {replay(plan, mode=args.mode, wandb_dir=args.dir)}", flush=True)
        except Exception as err:  # one bad run folder must not stop the others
            failures += 1
            print(f"  {run_dir} failed: {type(err).__name__}: {err}", file=sys.stderr)
    return 1 if failures else 0


def plan_replay(run_dir: pathlib.Path, project: str | None = None, entity: str | None = None,
                study: str | None = None) -> Replay:
    """Read a run folder into a Replay; writes nothing."""
    config_path = run_dir / "config.yaml"
    config = yaml.safe_load(config_path.read_text())  # as written: OmegaConf reads a bare word as an empty map
    if not isinstance(config, dict) or not config:
        raise ValueError(f"{config_path} is not a run's config (a mapping of config keys)")
    logging_cfg = config.get("logging") or {}
    if not isinstance(logging_cfg, dict):
        raise ValueError(f"{config_path}: logging is {logging_cfg!r}, not a mapping")
    results = RunFolder(run_dir).read_results() or {}  # a bad results.json is named with its way out
    status = results.get("status", "running")
    best = results.get("best") or {}
    summary = {"best/epoch": best.get("epoch"), "best/val/mAP": best.get("val/mAP"),
               "wall_time_s": results.get("wall_time_s"), "resumed": results.get("resumed")}
    gif = run_dir / "rollout.gif"
    return Replay(
        run_dir=run_dir,
        run_id=stored_run_id(run_dir),
        project=project or logging_cfg.get("project"),
        entity=entity or logging_cfg.get("entity"),
        identity=run_identity(logging_cfg, run_dir, config, study),
        config=config,
        records=read_metrics(run_dir),
        gif=gif if gif.is_file() else None,
        status=status if status in FINISHED else "incomplete",
        reason=results.get("reason") if status != "running" else "results.json says running: killed or unfinished",
        summary={key: value for key, value in summary.items() if value is not None},
    )


def replay(plan: Replay, mode: str = "online", wandb_dir: pathlib.Path | None = None) -> pathlib.Path:
    """Write the plan as one wandb run; returns the local folder wandb wrote."""
    if wandb_dir is None:
        wandb_dir = plan.run_dir / REPLAY_DIR
        shutil.rmtree(wandb_dir, ignore_errors=True)  # ours alone: keep only the latest replay
    run = start_run(
        mode=mode, wandb_dir=pathlib.Path(wandb_dir), run_id=plan.run_id or stored_run_id(plan.run_dir, create=True),
        project=plan.project, entity=plan.entity, identity=plan.identity, config=plan.config,
    )
    tracker = WandbTracker(run)
    for record in plan.records:
        tracker.log_epoch(record)
    if plan.gif and plan.records:
        tracker.log_gif(plan.gif, plan.records[-1]["epoch"])
    tracker.finish(plan.status, plan.reason, summary=plan.summary)
    return pathlib.Path(run.dir).parent


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m jepa.tracking.replay", description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", type=pathlib.Path, help="run folders or sweep folders")
    parser.add_argument("--project", help="wandb project (default: logging.project of each run's config)")
    parser.add_argument("--entity", help="wandb entity (default: logging.entity of each run's config)")
    parser.add_argument("--study", help="study (sweep) name for job type and tags (default: the config's study)")
    parser.add_argument("--mode", choices=("online", "offline"), default="online",
                        help="online uploads now; offline writes a local run to `wandb sync` later")
    parser.add_argument("--dir", type=pathlib.Path, help=f"where wandb writes (default: run_dir/{REPLAY_DIR})")
    parser.add_argument("--include-running", action="store_true",
                        help="also replay runs whose results.json says running (killed jobs), as incomplete")
    parser.add_argument("--dry-run", action="store_true", help="print what would be replayed; write nothing")
    return parser


if __name__ == "__main__":
    sys.exit(main())
