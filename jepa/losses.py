"""The JEPA losses (docs/model.md §3): variance-covariance regulariser and multi-step rollout prediction."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .models import DetectionHead, PixelDecoder, VideoJEPA
from .models.jepa import CONTEXT


def at_least_fp32(x: Tensor) -> Tensor:
    """Losses are computed in fp32 (or better) even when the network runs in fp16/bf16."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def std_term(z: Tensor, eps: float = 1e-4) -> Tensor:
    """Mean over features of relu(1 - sqrt(var + eps)); z is [N, D]."""
    return F.relu(1 - torch.sqrt(z.var(dim=0) + eps)).mean()


def cov_term(z: Tensor) -> Tensor:
    """Mean of the squared off-diagonal entries of the covariance of z [N, D]."""
    n, d = z.shape
    z = z - z.mean(dim=0)
    cov = (z.T @ z) / (n - 1)
    off_diag_sq = cov.pow(2).sum() - cov.diagonal().pow(2).sum()
    return off_diag_sq / (d * (d - 1))


def vc_terms(z: Tensor) -> tuple[Tensor, Tensor]:
    """(std, cov) terms of the projected states z [N, D], in fp32 or better."""
    with torch.autocast(z.device.type, enabled=False):
        z = at_least_fp32(z)
        return std_term(z), cov_term(z)


@dataclass
class JEPALosses:
    total: Tensor  # vc + pred, what the JEPA minimises
    vc: Tensor
    std: Tensor
    cov: Tensor
    pred: Tensor


def jepa_losses(
    model: VideoJEPA, states: Tensor, steps: int, std_coeff: float, cov_coeff: float, fast: bool = False
) -> JEPALosses:
    """VC regulariser on the projected states plus the parallel multi-step prediction loss.

    states: [B, T, C, h, w] with gradients. The projected states serve both the VC terms and, at every
    step, the prediction target: the reference projects them again at each step, which in train mode gives
    the same values and the same gradient, so once is enough.

    fast=True predicts only what a step can change, as the evaluation rollout does: step k computes the
    T-1-k pairs that give frames k+1..T-1 (frames 2..k are the same function of the same inputs as at the
    step before, so their earlier predictions, with their gradients, are kept) and never the last pair,
    whose output has no target. 26 instead of 36 predictor pairs for T = 10, steps = 4. Not identical in
    training: the predictor's BatchNorm batch statistics then cover only the pairs computed.
    """
    target = model.part("projector", model.project)(states)
    std, cov = model.part("projector", vc_terms)(target)
    vc = std_coeff * std + cov_coeff * cov
    prediction_loss = model.part("projector", lambda p, target: F.mse_loss(model.project(p), target))
    pred = states.new_zeros(())
    p = states
    for k in range(1, steps + 1):
        if fast:
            p = torch.cat([p[:, : k + 1], model.predict_next(p[:, :-1], first=k - 1, drop_last=False)], dim=1)
        else:
            p = torch.cat([states[:, :CONTEXT], model.predict_next(p)], dim=1)
        pred = pred + prediction_loss(p, target) / steps
    return JEPALosses(total=vc + pred, vc=vc, std=std, cov=cov, pred=pred)


# The reference encodes each batch three times in train mode (once for the JEPA, once per probe), so its
# encoder's BatchNorm running statistics move three times per step with the same batch statistics.
# Encoding once with momentum 1 - (1 - m)^3 leaves exactly the same running statistics.
REFERENCE_ENCODER_PASSES = 3


def match_reference_bn_updates(encoder: torch.nn.Module, passes: int = REFERENCE_ENCODER_PASSES) -> None:
    """Set every BatchNorm momentum m to 1 - (1 - m)^passes: one update then equals `passes` updates."""
    for m in encoder.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.momentum is not None:
            m.momentum = 1 - (1 - m.momentum) ** passes


def training_losses(
    model: VideoJEPA,
    head: DetectionHead,
    decoder: PixelDecoder,
    video: Tensor,
    labels: Tensor,
    steps: int,
    std_coeff: float,
    cov_coeff: float,
    fast: bool = False,
) -> dict[str, Tensor]:
    """Everything one training step minimises, from one encoder pass.

    video [B, T, dobs, H, W], labels [B, T, 8, 8]. The probes read detached states: they learn to read
    the encoder and never move it. Returns `total` (what to backpropagate) and each term.
    """
    states = model.encode(video)
    jepa = jepa_losses(model, states, steps, std_coeff, cov_coeff, fast=fast)
    detached = states.detach()
    det_bce = F.binary_cross_entropy_with_logits(at_least_fp32(head(detached)), labels)
    dec_mse = F.mse_loss(at_least_fp32(decoder(detached)), video)
    return {
        "total": jepa.total + det_bce + dec_mse,
        "loss": jepa.total, "vc": jepa.vc, "std": jepa.std, "cov": jepa.cov, "pred": jepa.pred,
        "det_bce": det_bce, "dec_mse": dec_mse,
    }
