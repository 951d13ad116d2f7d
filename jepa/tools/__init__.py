"""Tools above the studies: the benchmark against the literal reference (`python -m jepa.tools.bench`) and the
one-shot GPU check (`python -m jepa.tools.gpu_check --out DIR`). They build their training step from the
trainer's own (jepa.training.learner)."""
