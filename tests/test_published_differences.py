"""The small differences from the published code that docs/model.md §9 decides, each with its figures."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from jepa.data.labels import threshold
from jepa.losses import training_losses
from jepa.models import DetectionHead, PixelDecoder, VideoJEPA
from jepa.reference import Reference


def both_losses(logit: float, target: float, dtype=torch.float32) -> tuple[float, float, float, float]:
    """(ours, published, our gradient, published gradient) of one cell's detection loss."""
    ours = torch.tensor([logit], dtype=dtype, requires_grad=True)
    theirs = torch.tensor([logit], dtype=dtype, requires_grad=True)
    y = torch.tensor([target], dtype=dtype)
    a = F.binary_cross_entropy_with_logits(ours, y)
    b = F.binary_cross_entropy(torch.sigmoid(theirs), y)
    a.backward()
    b.backward()
    return a.item(), b.item(), ours.grad.item(), theirs.grad.item()


@pytest.mark.parametrize("logit, rel", [(5, 1e-6), (10, 1e-4), (15, 2e-2)])
def test_detection_loss_agrees_with_bce_of_sigmoid_below_saturation(logit, rel):
    ours, published, grad, published_grad = both_losses(logit, 0.0)
    assert ours == pytest.approx(logit + np.log1p(np.exp(-logit)), rel=1e-6)  # softplus(logit)
    assert published == pytest.approx(ours, rel=rel) and published_grad == pytest.approx(grad, rel=1e-3)


def test_detection_loss_parts_where_float32_sigmoid_rounds_to_one():
    assert torch.sigmoid(torch.tensor(16.6)).item() < 1 and torch.sigmoid(torch.tensor(16.7)).item() == 1
    assert both_losses(20, 0.0) == pytest.approx((20, 100, 1, 0))  # published: clamped log, no gradient
    assert both_losses(-20, 1.0) == pytest.approx((20, 20, -1, -1))  # a positive cell parts only near -100
    ours, published, _, _ = both_losses(30, 0.0, torch.float64)  # float64 (the equivalence tests) still agrees
    assert published == pytest.approx(ours, rel=1e-3)


def test_projector_batchnorm_moves_5_times_a_step_here_and_9_in_the_published_loop():
    torch.manual_seed(0)
    video, labels = torch.rand(2, 10, 1, 32, 32), (torch.rand(2, 10, 8, 8) < 0.1).float()
    model, head, decoder = VideoJEPA(1, 4, 4, 4, (2, 1, 1)), DetectionHead(4, 4), PixelDecoder(4, 1, 32)
    training_losses(model, head, decoder, video, labels, steps=4, std_coeff=10, cov_coeff=100)
    reference = Reference(1, 4, 4, 4, (2, 1, 1), 32)
    reference.step_losses(video.transpose(1, 2), labels, steps=4, std_coeff=10, cov_coeff=100)
    ours = [m for m in model.projector.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    theirs = [m for m in reference.projector.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert [m.num_batches_tracked.item() for m in ours] == [5]
    assert [m.num_batches_tracked.item() for m in theirs] == [9]


def test_contour_threshold_does_not_wrap_where_the_published_uint8_sum_does():
    frame = np.full((1, 64, 64), 10, np.uint8)
    frame[0, 20:30, 20:30] = 250
    with np.errstate(over="ignore"):
        published = (frame[0].min() + frame[0].max()) / 2  # uint8 scalars: 260 wraps to 4
    assert published == 2.0
    mask = threshold(frame)
    assert mask.sum() == 100 and mask[0, 20:30, 20:30].all()  # ours: threshold 130, only the bright square
    frame[frame == 10] = 0  # a real Moving MNIST frame (minimum 0): both thresholds are 125
    assert (frame[0].min() + frame[0].max()) / 2 == 125.0 and threshold(frame).sum() == 100
