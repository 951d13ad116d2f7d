"""Lean activations: keep a BatchNorm-ReLU's input for backward and rebuild its output when asked.

A plain conv - BN - ReLU - conv chain keeps two full-size tensors per BatchNorm for backward: the BN input
(the conv output, for BN's gradient) and the ReLU output (for ReLU's gradient and the next conv's weight
gradient). The ReLU output is an elementwise function of the BN input and the forward's batch
statistics, so only the BN input needs keeping. `batch_norm_relu` runs BN (plus an optional second BN or
residual, as a residual block ends) and the ReLU as one autograd node that keeps the BN inputs, and tags
its output with a `Rebuild`; inside `lean_activations()`, wherever a later op saves that output for
backward, autograd stores the recipe instead, and backward rebuilds the tensor (one elementwise pass)
the first time it is needed, sharing it with the node's own ReLU gradient. `cat` does the same for the
U-Net's concatenations of an upsampled map with its skip (a copy to rebuild).

Used by `training.activation_checkpointing=lean` (jepa.models.jepa.PART_POLICIES): at the published default
it keeps about half the activation bytes at the speed of the plain step (docs/performance.md).

BatchNorm runs the native kernels forwards and backwards (same batch statistics, same running-statistics
update), so forward values equal the plain modules' bit for bit; backward sees the rebuilt tensors, equal
to the forward's up to float rounding (tests/test_speed.py compares in float64).
"""

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

_TAG = "_jepa_rebuild"  # attribute of a tensor made by batch_norm_relu: its Rebuild
_depth = 0  # how many lean_activations() contexts are open


class Rebuild:
    """A tensor that backward rebuilds instead of keeping; calling it gives the tensor."""

    __slots__ = ()

    def __call__(self) -> Tensor:
        raise NotImplementedError


class BatchNormReLUOutput(Rebuild):
    """relu(sum of x * scale + shift over the terms [+ residual]), made by `batch_norm_relu`.

    `residual` is a tensor or a Rebuild. The rebuilt tensor is cached until the node that made it runs
    its backward (which then clears it); every op that saved it runs its backward before that node does.
    """

    __slots__ = ("terms", "residual", "dtype", "cached")

    def __init__(
        self, terms: list[tuple[Tensor, Tensor, Tensor]], residual: "Tensor | Rebuild | None", dtype: torch.dtype
    ):
        self.terms, self.residual, self.dtype, self.cached = terms, residual, dtype, None

    def pre_activation(self) -> Tensor:
        (x, scale, shift), *rest = self.terms
        out = torch.addcmul(shift, x, scale)
        for x, scale, shift in rest:
            out.add_(torch.addcmul(shift, x, scale))
        if self.residual is not None:
            out.add_(_unpack(self.residual))
        return out.to(self.dtype)  # the forward's dtype under mixed precision (statistics are fp32)

    def __call__(self) -> Tensor:
        if self.cached is None:
            self.cached = self.pre_activation().relu_()
        return self.cached


class Concatenation(Rebuild):
    """torch.cat(parts, dim), made by `cat`; parts are tensors or Rebuilds. Rebuilt at every call (no
    node of ours runs its backward to release a cache), a copy."""

    __slots__ = ("parts", "dim")

    def __init__(self, parts: "list[Tensor | Rebuild]", dim: int):
        self.parts, self.dim = parts, dim

    def __call__(self) -> Tensor:
        return torch.cat([_unpack(part) for part in self.parts], self.dim)


def _pack(t: Tensor) -> "Tensor | Rebuild":
    return getattr(t, _TAG, None) or t


def _kept(t: Tensor) -> "Tensor | Rebuild":
    """What a recipe holds of its input `t`: t's own recipe if it has one, else t (out of the graph)."""
    return getattr(t, _TAG, None) or t.detach()


def _unpack(packed: "Tensor | Rebuild") -> Tensor:
    return packed() if isinstance(packed, Rebuild) else packed


@contextmanager
def lean_activations() -> Iterator[None]:
    """Autograd keeps recipes instead of the outputs of `batch_norm_relu` run inside this context."""
    global _depth
    _depth += 1
    try:
        with torch.autograd.graph.saved_tensors_hooks(_pack, _unpack):
            yield
    finally:
        _depth -= 1


def lean_enabled(module: nn.Module) -> bool:
    """Whether `module` takes its lean path: inside lean_activations(), in train mode, recording gradients."""
    return _depth > 0 and module.training and torch.is_grad_enabled()


def _batch_norm_train(x: Tensor, bn: nn.modules.batchnorm._BatchNorm) -> tuple[Tensor, Tensor, Tensor]:
    """Train-mode BatchNorm exactly as nn.BatchNorm runs it: (output, batch mean, batch inverse std)."""
    momentum = bn.momentum
    if bn.track_running_stats:
        bn.num_batches_tracked.add_(1)
        if momentum is None:  # cumulative moving average
            momentum = 1.0 / float(bn.num_batches_tracked)
    return torch.native_batch_norm(x, bn.weight, bn.bias, bn.running_mean, bn.running_var, True, momentum, bn.eps)


class _BatchNormReLU(torch.autograd.Function):
    """relu(bn_1(x_1) [+ bn_2(x_2)] [+ residual]); inputs (norms, made, residual, x_1, w_1, b_1, ...)."""

    @staticmethod
    def forward(ctx, norms, made, residual, *tensors):
        out, terms, stats = None, [], []
        for bn, (x, weight, bias) in zip(norms, zip(*[iter(tensors)] * 3, strict=True), strict=True):
            y, mean, invstd = _batch_norm_train(x, bn)
            out = y if out is None else out.add_(y)
            x, shape = x.detach(), [1, x.shape[1]] + [1] * (x.dim() - 2)
            scale = weight * invstd
            terms.append((x, scale.view(shape), (bias - mean * scale).view(shape)))
            stats.append((x, weight, mean, invstd, bn.eps))
        if residual is not None:
            out.add_(residual)
        out.relu_()
        kept_residual = None if residual is None else _kept(residual)
        ctx.rebuild = BatchNormReLUOutput(terms, kept_residual, out.dtype)
        ctx.stats, ctx.has_residual = stats, residual is not None
        made.append(ctx.rebuild)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        rebuild: BatchNormReLUOutput = ctx.rebuild
        out = rebuild.cached if rebuild.cached is not None else rebuild.pre_activation()
        grad = torch.ops.aten.threshold_backward(grad_out, out, 0)  # ReLU's gradient: zero where out <= 0
        rebuild.cached = ctx.rebuild = None
        grads = []
        for x, weight, mean, invstd, eps in ctx.stats:
            grads += torch.ops.aten.native_batch_norm_backward(
                grad, x, weight, None, None, mean, invstd, True, eps, [True, True, True]
            )
        ctx.stats = None
        return None, None, grad if ctx.has_residual else None, *grads


def batch_norm_relu(
    x: Tensor,
    bn: nn.modules.batchnorm._BatchNorm,
    x2: Tensor | None = None,
    bn2: nn.modules.batchnorm._BatchNorm | None = None,
    residual: Tensor | None = None,
) -> Tensor:
    """relu(bn(x) [+ bn2(x2)] [+ residual]) in train mode, keeping x (and x2), not the output, for backward.

    The norms must be affine and track running statistics (every BatchNorm of this project does).
    """
    norms = [bn] if bn2 is None else [bn, bn2]
    tensors = [x, bn.weight, bn.bias] + ([] if bn2 is None else [x2, bn2.weight, bn2.bias])
    assert all(n.affine and n.track_running_stats for n in norms), "batch_norm_relu needs affine, tracking norms"
    made: list[BatchNormReLUOutput] = []
    out = _BatchNormReLU.apply(norms, made, residual, *tensors)
    setattr(out, _TAG, made[0])
    return out


def cat(tensors: list[Tensor], dim: int) -> Tensor:
    """torch.cat; inside lean_activations(), when recording gradients, its output is kept as a recipe."""
    out = torch.cat(tensors, dim)
    if _depth > 0 and torch.is_grad_enabled():
        setattr(out, _TAG, Concatenation([_kept(t) for t in tensors], dim))
    return out
