"""Optuna search over run configurations: parallel (local processes or a SLURM array), prunable, resumable.

`spec` (the sweep file and its up-front checks), `worker` (trials, pruning, killed-worker retry), `launch`
(study folder, workers), `summary` (trials.csv, best.json, plots), `__main__` (the CLI). See docs/optuna.md.
"""
