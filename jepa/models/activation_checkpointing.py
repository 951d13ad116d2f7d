"""Activation checkpointing that leaves a train-mode step's numbers unchanged, BatchNorm included.

Recomputing a segment in backward runs its BatchNorms again in train mode: the same batch statistics
(same input), but PyTorch would move the running statistics a second time. `frozen_running_stats` puts
them back after each recomputation, so losses, gradients and running statistics equal those of the plain
step exactly (tests/test_speed.py).

Policies (docs/performance.md has the measurements):
- "lean": not checkpointing proper; autograd keeps BatchNorm inputs and rebuilds BatchNorm-ReLU outputs
  and U-Net concatenations from them when backward needs them (models/lean.py). Full speed.
- "selective": keep the outputs of convolutions and matmuls, recompute BatchNorm, ReLU, additions and
  concatenations (memory-bound, a few per cent of the step) in backward. About 40% less activation memory.
- "full": keep only the segment's input and recompute the whole segment (one more forward of it).
"""

from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import CheckpointPolicy, checkpoint, create_selective_checkpoint_contexts

from ..config.schema import CHECKPOINTING_POLICIES as POLICIES
from .lean import lean_activations

# What "selective" keeps: the compute-bound ops. Everything else in a segment is recomputed.
_KEPT_OPS = {torch.ops.aten.convolution.default, torch.ops.aten.mm.default, torch.ops.aten.addmm.default}


def _keep_compute_bound(ctx, op, *args, **kwargs) -> CheckpointPolicy:
    return CheckpointPolicy.MUST_SAVE if op in _KEPT_OPS else CheckpointPolicy.PREFER_RECOMPUTE


@contextmanager
def frozen_running_stats(module: nn.Module):
    """Restore every BatchNorm running statistic of `module` on exit: a recomputation must not move them."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    saved = [[b.clone() for b in (m.running_mean, m.running_var, m.num_batches_tracked)] for m in norms]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, values in zip(norms, saved, strict=True):
                for buffer, value in zip((m.running_mean, m.running_var, m.num_batches_tracked), values, strict=True):
                    buffer.copy_(value)


@contextmanager
def _both(first, second):
    with first, second:
        yield


def checkpointed(fn: Callable[..., Any], policy: str, module: nn.Module) -> Callable[..., Any]:
    """`fn` with its activations kept as `policy` (one of POLICIES) says when autograd records.

    `module` holds the BatchNorms that `fn` runs: their running statistics are restored after a
    recomputation.
    """
    if policy == "none":
        return fn
    if policy == "lean":
        def run_lean(*inputs: Tensor) -> Any:
            with lean_activations():
                return fn(*inputs)

        return run_lean
    if policy not in POLICIES:
        raise ValueError(f"activation checkpointing policy {policy!r}: one of {POLICIES}")

    def contexts():
        forward, recompute = (
            create_selective_checkpoint_contexts(_keep_compute_bound) if policy == "selective"
            else (nullcontext(), nullcontext())
        )
        # The statistics are saved and restored outside the selective mode, which would intercept the copies.
        return forward, _both(frozen_running_stats(module), recompute)

    def run(*inputs: Tensor) -> Any:
        if not torch.is_grad_enabled():
            return fn(*inputs)
        # No randomness in these modules: skipping the RNG stash saves a copy of the CPU generator state.
        return checkpoint(fn, *inputs, use_reentrant=False, context_fn=contexts, preserve_rng_state=False)

    return run
