"""What a study will cost before it is submitted: `python -m jepa.studies cost [overrides] --seq-per-s N`.

The study's runs are composed as the sweep composes them: Hydra's multirun overrides (`+sweeps=cov_std`,
`+sweeps=[cov_std,seeds]`, `loss.cov_coeff=1,10`) expanded by Hydra's own sweeper parser into one override
list per run, each composed into its config. A run's training time is
    epochs x training sequences / throughput,
with the throughput measured by `python -m jepa.tools.bench` on the GPU the study will use (pass its
sequences/s, or `--bench FILE` with the bench's JSON lines: the fastest run of the matching mode is taken).
Evaluation, data loading and start-up are not counted: the projection is a lower bound on GPU-hours.

    python -m jepa.studies cost +sweeps=cov_std --seq-per-s 119
    python -m jepa.studies cost +sweeps=[cov_std,seeds] experiment=published --bench bench.jsonl --mode exact
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from ..config import ConfigError, compose_config
from ..config.errors import exit_on_bad_input
from ..data import epoch_sequences


def epoch_seconds(data: DictConfig, seq_per_s: float) -> float:
    return epoch_sequences(data) / seq_per_s


def run_hours(cfg: DictConfig, seq_per_s: float) -> float:
    return cfg.training.epochs * epoch_seconds(cfg.data, seq_per_s) / 3600


def sweep_runs(overrides: list[str]) -> list[list[str]]:
    """The override list of each run of a multirun command line, in the order Hydra's basic sweeper runs them.

    The sweep files' `hydra.sweeper.params` and the command line's comma lists are expanded alike, as
    the basic sweeper does (command-line values win over a sweep file's for the same key).
    """
    parser = OverridesParser.create()
    parsed = parser.parse_overrides(overrides)
    # Hydra's node is only readable inside a Hydra context: compose the fixed part of the line with it.
    params = sweeper_params([o.input_line for o in parsed if not o.is_sweep_override()])
    line = {o.key_or_group: o for o in parsed}
    for key, value in params.items():
        if key not in line:
            line[key] = parser.parse_override(f"{key}={value}")
    axes = []
    for override in line.values():
        if override.is_sweep_override():
            axes.append([f"{override.get_key_element()}={v}" for v in override.sweep_string_iterator()])
        else:
            axes.append([override.input_line])
    return [list(run) for run in itertools.product(*axes)]


def sweeper_params(overrides: list[str]) -> dict[str, str]:
    """`hydra.sweeper.params` of the sweep files named by `+sweeps=...` on the command line."""
    cfg = compose_config(overrides, check=False, with_hydra=True)
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    return {str(k): str(v) for k, v in params.items()}


@dataclass
class RunCost:
    overrides: list[str]
    epochs: int
    train_sequences: int
    epoch_s: float
    hours: float
    shape: dict  # what the throughput depends on: batch size, model widths and rollout steps


def shape_of(cfg: DictConfig) -> dict:
    return {"batch_size": cfg.data.batch_size, **{k: cfg.model[k] for k in ("henc", "hpre", "dstc", "steps")}}


def study_cost(overrides: list[str], seq_per_s: float) -> list[RunCost]:
    """Each run of the study with its projected training time at `seq_per_s` sequences per second."""
    if not seq_per_s > 0:
        raise ConfigError("--seq-per-s", seq_per_s, "a throughput > 0 sequences/s")
    out = []
    for run in sweep_runs(overrides):
        cfg = compose_config(run)
        out.append(RunCost(run, cfg.training.epochs, epoch_sequences(cfg.data), epoch_seconds(cfg.data, seq_per_s),
                           run_hours(cfg, seq_per_s), shape_of(cfg)))
    return out


def bench_throughput(path: Path, mode: str | None = None) -> tuple[float, dict]:
    """The highest sequences/s among the bench's JSON lines in `path` (of `mode` when given), and its row."""
    valid = "a file of JSON lines written by `python -m jepa.tools.bench --json`"
    try:
        lines = Path(path).read_text().splitlines()
        runs = [r for r in (json.loads(line) for line in lines if line.strip().startswith("{")) if "seq_per_s" in r]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError("--bench", str(path), f"{valid} ({exc})") from None
    if not runs:
        raise ConfigError("--bench", str(path), f"{valid}; it holds no bench run")
    rows = [r for r in runs if mode is None or r.get("mode") == mode]
    if not rows:
        modes = ", ".join(sorted({str(r.get("mode")) for r in runs}))
        raise ConfigError("--mode", mode, f"a mode measured in {path}: {modes}")
    best = max(rows, key=lambda r: r["seq_per_s"])
    return best["seq_per_s"], best


def format_cost(costs: list[RunCost], seq_per_s: float, source: str, measured: dict | None = None) -> str:
    """The table of runs; with `measured` (the bench row's shape), runs of another shape are marked *."""
    lines = [f"{len(costs)} runs at {seq_per_s:.4g} sequences/s ({source}); training time only, a lower bound:",
             "HOURS  EPOCHS  SEQ/EPOCH  EPOCH_S  RUN"]
    other = False
    for c in costs:
        mark = "*" if measured is not None and c.shape != measured else " "
        other |= mark == "*"
        lines.append(f"{c.hours:5.2f}{mark} {c.epochs:6d}  {c.train_sequences:9d}  {c.epoch_s:7.1f}  "
                     + " ".join(c.overrides))
    lines.append(f"total: {sum(c.hours for c in costs):.2f} GPU-hours")
    if other:
        lines.append(f"* batch size, widths or steps differ from the measured run ({measured}): "
                     "its throughput is only an estimate for these runs")
    return "\n".join(lines)


def main(args) -> int:
    """The `cost` subcommand of `python -m jepa.studies` (jepa.studies.status builds its parser); a bad
    value exits 2 with one line."""
    return exit_on_bad_input(lambda: _report(args), args.overrides)


def _report(args) -> int:
    measured = None
    if args.bench is not None:
        seq_per_s, row = bench_throughput(args.bench, args.mode)
        source = f"{row.get('impl')} {row.get('mode')} on {row.get('device_name') or row.get('device')}, {args.bench}"
        measured = {"batch_size": row.get("batch_size"), **(row.get("model") or {})}
    elif args.seq_per_s is not None:
        seq_per_s, source = args.seq_per_s, "given"
    else:
        raise ConfigError("--seq-per-s", None, "give the throughput: --seq-per-s N, or --bench FILE (JSON lines "
                          "of python -m jepa.tools.bench --json)")
    costs = study_cost(args.overrides, seq_per_s)
    if args.json:
        print(json.dumps({"seq_per_s": seq_per_s, "source": source, "measured": measured,
                          "total_hours": sum(c.hours for c in costs), "runs": [c.__dict__ for c in costs]}, indent=2))
    else:
        print(format_cost(costs, seq_per_s, source, measured))
    return 0
