"""The status of a run, as results.json records it: the one vocabulary every tool reads.

    running   training, or stopped to be resumed (a requeue, a kill): `reason` says which when known
    done      trained every epoch; `final` holds the last epoch's metrics
    failed    stopped by an error (a NaN loss, a crash, a time limit with no requeue left): `reason` says why
    pruned    an Optuna trial stopped early by its pruner: a finished trial, not an error
"""

RUNNING, DONE, FAILED, PRUNED = "running", "done", "failed", "pruned"
STATUSES = (RUNNING, DONE, FAILED, PRUNED)
INVALID = "invalid"  # not a status a run records: a results.json that cannot be read (jepa.runs.folder_state)
FINISHED = (DONE, FAILED, PRUNED)  # nothing more will happen to the run unless it is started again


def is_done(results: dict | None, epochs: int) -> bool:
    """results.json of a run that has trained all `epochs`: starting it again would do nothing."""
    return (isinstance(results, dict) and results.get("status") == DONE
            and isinstance(results.get("epochs_completed"), int) and results["epochs_completed"] >= epochs)


def exit_code(status: str) -> int:
    """The exit code a tracker (wandb) is told: 0 for a run that ended as it should (done, pruned)."""
    return 0 if status in (DONE, PRUNED) else 1
