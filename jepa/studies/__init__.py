"""Studies: sweeps of runs launched locally or on SLURM (launchers, manifest, job states, status) and the
Optuna search (jepa.studies.search). The sweep definitions themselves are the YAML files of sweeps/."""
