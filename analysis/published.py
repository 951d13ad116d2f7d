"""The published study's numbers and the test of whether a set of runs follows its protocol.

The published cov_coeff x std_coeff table (mean average precision, published model trained 50 epochs on the
canonical Moving MNIST split) only compares with runs computed the same way; `protocol_mismatches` says which
config values of the runs differ from that protocol.
"""

from __future__ import annotations

import math

import pandas as pd

from analysis.group import format_value

COV, STD, STEPS = "loss.cov_coeff", "loss.std_coeff", "model.steps"

# Published val/mAP: rows cov_coeff 1, 10, 100; columns std_coeff 1, 10, 100.
PUBLISHED_COV_STD = {
    (1.0, 1.0): 0.259, (1.0, 10.0): 0.450, (1.0, 100.0): 0.492,
    (10.0, 1.0): 0.448, (10.0, 10.0): 0.424, (10.0, 100.0): 0.487,
    (100.0, 1.0): 0.516, (100.0, 10.0): 0.607, (100.0, 100.0): 0.525,
}
PUBLISHED_METRIC = "val/mAP"
PUBLISHED_BEST = (100.0, 10.0)

# The published protocol, as flat config keys -> value (None: the key must be null). The swept keys
# (cov_coeff, std_coeff) are not part of it; the table's other settings are.
PROTOCOL = {
    "data.source": "canonical",
    "data.labels": "contour",
    "data.split_seed": 2025.0,
    "data.num_val_sequences": 1000.0,
    "data.max_train_sequences": None,
    "data.max_val_sequences": None,
    "data.frames": 10.0,
    "data.image_size": 64.0,
    "data.batch_size": 64.0,
    "model.dobs": 1.0,
    "model.henc": 32.0,
    "model.hpre": 32.0,
    "model.dstc": 16.0,
    "model.encoder_strides": (1.0, 1.0, 1.0),
    "model.steps": 4.0,
    "optim.lr": 1e-3,
    "optim.decoder_lr_scale": 0.1,
    "training.epochs": 50.0,
    "training.precision": "fp32",
    "training.mode": "exact",
}


def _same(value, expected) -> bool:
    if expected is None:
        return value is None or (isinstance(value, float) and math.isnan(value))
    if isinstance(expected, float) and isinstance(value, float):
        return math.isclose(value, expected, rel_tol=1e-9)
    return value == expected


def protocol_mismatches(runs: pd.DataFrame, protocol: dict = PROTOCOL) -> list[str]:
    """'key = value (published: expected)' for every protocol key some run differs on; [] when all match.

    A key missing from the runs' configs counts as a mismatch (the protocol cannot be confirmed)."""
    out = []
    for key, expected in protocol.items():
        if key not in runs:
            out.append(f"{key} not recorded (published: {format_value(expected)})")
            continue
        values = {v if not isinstance(v, list) else tuple(v) for v in runs[key].tolist()}
        wrong = sorted({format_value(v) for v in values if not _same(v, expected)})
        if wrong:
            out.append(f"{key} = {', '.join(wrong)} (published: {format_value(expected)})")
    return out


def published_cov_std(rows: str, cols: str):
    """A function (row value, column value) -> published mAP or None, for a cov_coeff x std_coeff table in
    either orientation; None when the table is some other pivot."""
    if {rows, cols} != {COV, STD}:
        return None

    def lookup(row, col):
        cov, std = (row, col) if rows == COV else (col, row)
        try:
            return PUBLISHED_COV_STD.get((float(cov), float(std)))
        except (TypeError, ValueError):
            return None

    return lookup


def published_table_markdown() -> str:
    """The published cov x std table as Markdown."""
    stds = sorted({s for _, s in PUBLISHED_COV_STD})
    covs = sorted({c for c, _ in PUBLISHED_COV_STD})
    lines = ["| cov_coeff \\ std_coeff | " + " | ".join(format_value(s) for s in stds) + " |",
             "|---|" + "---:|" * len(stds)]
    for cov in covs:
        cells = [f"{PUBLISHED_COV_STD[cov, s]:.3f}" for s in stds]
        lines.append(f"| {format_value(cov)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
