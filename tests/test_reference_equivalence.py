"""Our single-encode training step computes exactly what a literal reading of docs/model.md §2-4 computes.

jepa.reference is that literal reading (three encoder passes per step, targets projected at every
unroll step, 3D-conv detection head). Ours must give the same losses, the same gradients and the same
BatchNorm running statistics.
"""

import pytest
import torch
from torch import nn

from jepa.losses import match_reference_bn_updates, training_losses
from jepa.models import DetectionHead, PixelDecoder, VideoJEPA
from jepa.reference import Reference, copy_weights


def param_grads(modules):
    return [p.grad.reshape(-1) for m in modules for p in m.parameters()]


@pytest.mark.parametrize("strides,steps", [((1, 1, 1), 3), ((2, 1, 1), 1), ((2, 2, 1), 4)])
def test_single_encode_step_equals_literal_reference(strides, steps):
    torch.manual_seed(0)
    dobs, henc, hpre, dstc, size, b, t = 1, 4, 4, 4, 32, 3, 6
    reference = Reference(dobs, henc, hpre, dstc, strides, size).double()
    model = VideoJEPA(dobs, henc, hpre, dstc, strides).double()
    head, decoder = DetectionHead(dstc, hpre).double(), PixelDecoder(dstc, dobs, size).double()
    # Give BatchNorm non-trivial affine parameters and running stats, so a mismatch cannot hide.
    for m in reference.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    for m in (reference.det1, reference.det2, reference.dec1, reference.dec2):
        nn.init.normal_(m.weight, std=0.2)
        nn.init.normal_(m.bias, std=0.1)
    copy_weights(reference, model, head, decoder)
    match_reference_bn_updates(model.encoder)

    video = torch.rand(b, dobs, t, size, size, dtype=torch.double)  # the [B, C, T, H, W] layout of docs/model.md
    labels = (torch.rand(b, t, 8, 8) < 0.1).double()

    ref_losses = reference.step_losses(video, labels, steps, std_coeff=10.0, cov_coeff=100.0)
    ours = training_losses(model, head, decoder, video.transpose(1, 2).contiguous(), labels, steps, 10.0, 100.0)
    for key, value in ref_losses.items():
        torch.testing.assert_close(ours[key], value, rtol=1e-10, atol=1e-12, msg=lambda m, key=key: f"{key}: {m}")

    ref_losses["total"].backward()
    ours["total"].backward()
    ref_modules = [reference.encoder, reference.predictor, reference.projector,
                   nn.ModuleList([reference.det1, reference.det2]), nn.ModuleList([reference.dec1, reference.dec2])]
    for ref_g, our_g in zip(param_grads(ref_modules),
                            param_grads([model.encoder, model.predictor, model.projector, head, decoder]), strict=True):
        torch.testing.assert_close(our_g, ref_g, rtol=1e-9, atol=1e-12)

    # Running statistics: the encoder's moved three times in the reference, once (with matched momentum) here.
    for ref, our in ((reference.encoder, model.encoder), (reference.predictor, model.predictor)):
        ref_bufs = [v for k, v in ref.state_dict().items() if "running" in k]
        our_bufs = [v for k, v in our.state_dict().items() if "running" in k]
        assert len(ref_bufs) == len(our_bufs) > 0
        for rb, ob in zip(ref_bufs, our_bufs, strict=True):
            torch.testing.assert_close(ob, rb, rtol=1e-10, atol=1e-12)


def test_fast_mode_differs_only_through_predictor_batch_statistics():
    """With the predictor's BatchNorm on fixed statistics (eval mode, the rest training), fast and exact
    mode give the same losses and gradients to float64 rounding; with batch statistics they differ."""
    torch.manual_seed(1)
    model = VideoJEPA(1, 4, 4, 4, (2, 2, 1)).double()
    head, decoder = DetectionHead(4, 4).double(), PixelDecoder(4, 1, 32).double()
    video = torch.rand(2, 6, 1, 32, 32, dtype=torch.double)
    labels = (torch.rand(2, 6, 8, 8) < 0.1).double()

    def losses_and_grads(fast: bool):
        for module in (model, head, decoder):
            module.zero_grad(set_to_none=True)
        out = training_losses(model, head, decoder, video, labels, 3, 10.0, 100.0, fast=fast)
        out["total"].backward()
        return {k: v.detach() for k, v in out.items()}, [p.grad.clone() for p in model.parameters()]

    model.train()
    exact, _ = losses_and_grads(fast=False)
    fast, _ = losses_and_grads(fast=True)
    torch.testing.assert_close(fast["vc"], exact["vc"])  # same encoder pass
    assert abs(float(fast["pred"] - exact["pred"])) > 1e-6  # the pairs not computed moved batch statistics

    model.predictor.eval()  # BatchNorm per sample: what fast mode leaves out can no longer matter
    exact, exact_grads = losses_and_grads(fast=False)
    fast, fast_grads = losses_and_grads(fast=True)
    for key in exact:
        torch.testing.assert_close(fast[key], exact[key], rtol=1e-12, atol=1e-14, msg=key)
    for ours, ref in zip(fast_grads, exact_grads, strict=True):
        torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-13)
