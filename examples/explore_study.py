# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exploring a study with `analysis.load_runs`
#
# A worked example of the analysis API beyond `python -m analysis`: read a study's run folders into pandas,
# make a pivot of your own and a figure of your own. It is a jupytext "percent" notebook: open it in Jupyter
# with jupytext (`pip install jupytext`, then open the .py file as a notebook), or run it as a script:
#
# ```bash
# python examples/explore_study.py multirun/cov_std [figure.png]
# ```
#
# Any study folder works (`multirun/<study>`, an Optuna search's folder, several sweeps' parent folder).

# %%
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # writes files; in Jupyter, drop this line to see the figure inline
import matplotlib.pyplot as plt  # noqa: E402

from analysis import load_runs  # noqa: E402
from analysis.group import ap_keys, config_label, select_records, varying_keys  # noqa: E402

# In Jupyter sys.argv holds the kernel's own arguments ("-f ..."): set STUDY by hand there.
args = [a for a in sys.argv[1:] if not a.startswith("-")] if Path(sys.argv[0]).suffix == ".py" else []
STUDY = Path(args[0]) if args else Path("multirun/cov_std")
FIGURE = Path(args[1]) if len(args) > 1 else Path("ap_by_horizon.png")

# %% [markdown]
# ## Load
# `load_runs` returns a `Sweep`: `runs` (one row per run: status, reason, every config key flattened with
# dots) and `epochs` (one row per run and evaluated epoch: every metric of `metrics.jsonl`).

# %%
sweep = load_runs([STUDY])
runs = sweep.runs
print(f"{len(runs)} runs in {STUDY}:", runs["status"].value_counts().to_dict())

# %% [markdown]
# ## The final record of every finished run, with its configuration
# `select_records` joins each finished run's last evaluated epoch with its config (one row per run).
# `varying_keys` names the configuration keys that vary: what the study is about (the seed, and keys that
# only say how a run executes, never count).

# %%
table = select_records(sweep, "val/mAP")
varying = varying_keys(table, sweep.config_keys)
print("varying keys:", varying or "none (one configuration)")
table["configuration"] = [config_label(row, varying, {k: k for k in varying}) for row in table.to_dict("records")]

# %% [markdown]
# ## A custom pivot: final mAP per configuration (rows) and seed (columns), with the mean over seeds

# %%
pivot = table.pivot_table(index="configuration", columns="seed", values="val/mAP", aggfunc="first")
pivot["mean"] = pivot.mean(axis=1)
pivot = pivot.sort_values("mean", ascending=False)
print(pivot.round(3).to_string())

# %% [markdown]
# ## A custom figure: AP against the prediction horizon, each configuration's mean over seeds, with the
# copy-last baseline of the best configuration dashed.

# %%
horizons = ap_keys(table.columns)  # [(k, "val/AP_k"), ...]: AP k + 1 frames ahead
ahead = [k + 1 for k, _ in horizons]
fig, ax = plt.subplots(figsize=(6, 4))
for name, group in table.groupby("configuration"):
    ax.plot(ahead, [group[column].mean() for _, column in horizons], marker="o", label=name)
best = table[table["configuration"] == pivot.index[0]]
ax.plot(ahead, [best[f"val/copy_last/AP_{k}"].mean() for k, _ in horizons], "k--",
        label="copy-last (best configuration)")
ax.set(xlabel="frames ahead", ylabel="AP (final epoch, mean over seeds)", title=STUDY.name)
ax.legend(fontsize=7)
fig.tight_layout()
fig.savefig(FIGURE, dpi=120)
print(f"figure: {FIGURE}")
