"""Benchmark: write a synthetic sweep of N run folders and time loading it (and the whole report).

    python -m analysis.loading_speed [--runs 1000] [--epochs 50] [--repeat 3] [--report]
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from analysis.load import load_runs

GRID = {"loss.cov_coeff": [1, 10, 100, 200], "loss.std_coeff": [1, 10, 100, 200],
        "optim.lr": [1e-3, 1e-4, 5e-4], "data.batch_size": [32, 64], "model.steps": [1, 2, 4, 8]}
SEEDS = [1, 1000, 10000]


def _config(values: dict, seed: int) -> dict:
    """A config shaped like conf/config.yaml, resolved, with `values` ('a.b': v) set."""
    config = {"seed": seed, "data": {"source": "canonical", "root": "/data", "batch_size": 64, "frames": 10},
              "model": {"dobs": 1, "henc": 32, "hpre": 32, "dstc": 16, "encoder_strides": [1, 1, 1], "steps": 4},
              "loss": {"std_coeff": 10.0, "cov_coeff": 100.0}, "optim": {"lr": 1e-3, "decoder_lr_scale": 0.1},
              "training": {"epochs": 50, "device": "cuda"}, "logging": {"mode": "offline", "group": "bench"}}
    for key, value in values.items():
        section, name = key.split(".")
        config[section][name] = value
    return config


def _record(epoch: int, rng: np.random.Generator) -> dict:
    """One metrics.jsonl line with the contract's keys and plausible numbers."""
    ap = np.sort(rng.uniform(0.2, 0.7, 8))[::-1]
    record = {"epoch": epoch, "global_step": epoch * 282}
    record |= {f"train/{k}": float(rng.uniform(0.1, 2)) for k in
               ("loss", "vc", "std", "cov", "pred", "det_bce", "dec_mse")}
    record |= {f"val/AP_{k}": float(ap[k]) for k in range(7)} | {"val/mAP": float(ap[:7].mean())}
    record |= {f"val/AP_full_{k}": float(ap[k]) for k in range(8)} | {"val/mAP_full": float(ap[:7].mean())}
    for base in ("copy_last", "chance"):
        record |= {f"val/{base}/AP_{k}": 0.1 for k in range(7)} | {f"val/{base}/mAP": 0.1}
    record |= {"val/det_bce": 0.3, "val/dec_mse": 0.01, "time/train_s": 30.0, "time/eval_s": 3.0,
               "time/epoch_s": 33.0, "time/seq_per_s": 600.0}
    return record


def write_sweep(root: Path, n_runs: int, epochs: int, seed: int = 0) -> None:
    """n_runs run folders under root, cycling through GRID x SEEDS, all finished."""
    rng = np.random.default_rng(seed)
    combos = itertools.cycle(itertools.product(*GRID.values(), SEEDS))
    for i, combo in zip(range(n_runs), combos, strict=False):
        *values, run_seed = combo
        path = root / f"run_{i:05d}"
        path.mkdir(parents=True)
        (path / "config.yaml").write_text(yaml.safe_dump(_config(dict(zip(GRID, values, strict=True)), run_seed)))
        records = [_record(e, rng) for e in range(1, epochs + 1)]
        (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        results = {"status": "done", "reason": None, "seed": run_seed, "epochs": epochs,
                   "epochs_completed": epochs, "final": records[-1],
                   "best": max(records, key=lambda r: r["val/mAP"])}
        (path / "results.json").write_text(json.dumps(results))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3, help="timed loads; the best and the median are printed")
    parser.add_argument("--report", action="store_true", help="also time build_report on the sweep")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "sweep"
        write_sweep(root, args.runs, args.epochs)
        seconds = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            sweep = load_runs([root])
            seconds.append(time.perf_counter() - start)
        print(f"load_runs: {len(sweep.runs)} runs, {len(sweep.epochs)} epoch rows in {min(seconds):.2f} s "
              f"(best of {args.repeat}; median {np.median(seconds):.2f} s)")
        if args.report:
            import matplotlib

            matplotlib.use("Agg")
            from analysis.report import build_report

            start = time.perf_counter()
            build_report([root], rows="loss.cov_coeff", cols="loss.std_coeff")
            print(f"build_report: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
