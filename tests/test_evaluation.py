import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from jepa.evaluation import Evaluator, average_precision
from jepa.models import DetectionHead, PixelDecoder, VideoJEPA


@pytest.mark.parametrize("seed", range(5))
def test_average_precision_equals_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.random(2000) < 0.1
    scores = rng.integers(0, 20, 2000) / 20  # many ties
    assert average_precision(scores, labels) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    scores = rng.random(2000)
    assert average_precision(scores, labels) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)


def test_constant_score_ap_is_the_positive_rate():
    labels = np.array([1, 0, 0, 0, 1, 0, 0, 0])
    assert average_precision(np.full(8, 0.5), labels) == pytest.approx(0.25)


def test_no_positive_label_gives_zero_ap_as_sklearn_does():
    with pytest.warns(UserWarning):  # sklearn warns, then returns 0
        published = average_precision_score(np.zeros(3), np.array([0.1, 0.5, 0.9]))
    assert average_precision(np.array([0.1, 0.5, 0.9]), np.zeros(3)) == published == 0.0


def literal_rollout(model, states, steps):
    """docs/model.md §5 as written: every step predicts all frames 2..T-1 from the previous step's sequence."""
    preds, p = [], states
    for _ in range(steps):
        new = model.predict_next(p)
        preds.append(new)
        p = torch.cat([states[:, :2], new], dim=1)
    return preds


def test_eval_rollout_keeps_exactly_the_scored_frames_of_the_literal_rollout():
    torch.manual_seed(0)
    model = VideoJEPA(1, 4, 4, 4, (2, 2, 1)).double().eval()
    with torch.no_grad():
        # Non-trivial running statistics so eval-mode BatchNorm is not the identity.
        model.train()
        model.encode(torch.rand(4, 10, 1, 64, 64, dtype=torch.double))
        model.eval()
        states = model.encode(torch.rand(3, 10, 1, 64, 64, dtype=torch.double))
        ours = model.rollout_eval(states, steps=8)
        literal = literal_rollout(model, states, 8)
    assert len(ours) == 8
    for k in range(8):  # horizon k keeps positions k.. of step k+1: frames k+2 .. T-1
        assert ours[k].shape[1] == 10 - 2 - k
        torch.testing.assert_close(ours[k], literal[k][:, k:], rtol=1e-10, atol=1e-12)


class OracleHead(DetectionHead):
    """A 'detection head' that reads the label stored in channel 0 of each state: AP is then exactly 1."""

    def forward(self, states):
        return states[:, :, 0, :8, :8] * 20 - 10


class CopyModel(VideoJEPA):
    """A predictor that copies the last state, so predictions are copy-last and both methods agree."""

    def predict_next(self, states, first=0, drop_last=True):
        out = states[:, first + 1 :]
        return out[:, :-1] if drop_last else out

    def encode(self, video):
        return video


def test_evaluator_metric_keys_horizons_and_baselines():
    torch.manual_seed(0)
    b, t = 6, 10
    labels = (torch.rand(b, t, 8, 8) < 0.1).double()
    video = torch.zeros(b, t, 1, 8, 8, dtype=torch.double)
    video[:, :, 0] = labels  # the 'state' carries the label map
    evaluator = Evaluator(t)
    model = CopyModel(1, 2, 2, 2)
    head = OracleHead(1, 2)
    decoder = PixelDecoder(1, 1, 8).double()
    evaluator.add_batch(model, head, decoder, video, labels)
    evaluator.add_batch(model, head, decoder, video, labels)
    m = evaluator.metrics()
    published = [f"val/AP_{k}" for k in range(7)]
    assert set(published) <= m.keys() and "val/AP_7" not in m
    assert {f"val/AP_full_{k}" for k in range(8)} <= m.keys()
    # Copying the last state through the head is the copy-last baseline, by construction.
    for k in range(7):
        assert m[f"val/AP_{k}"] == pytest.approx(m[f"val/copy_last/AP_{k}"])
    # Chance is the positive rate of the scored frames.
    for k in range(7):
        assert m[f"val/chance/AP_{k}"] == pytest.approx(labels[:, k + 2 :].mean().item())
    assert m["val/mAP"] == pytest.approx(np.mean([m[k] for k in published]))
    assert m["val/mAP_full"] == pytest.approx(np.mean([m[f"val/AP_full_{k}"] for k in range(7)]))
    assert m["val/dec_mse"] > 0 and m["val/det_bce"] > 0


def static_scene_metrics(head: DetectionHead, seed: int) -> tuple[dict, torch.Tensor]:
    """Metrics of the copying model on a static scene (every frame the same 8x8 cells), and its labels.

    Both the copying model and copy-last score each frame with the head's logits of that very frame."""
    torch.manual_seed(seed)
    b, t = 4, 10
    labels = (torch.rand(b, 1, 8, 8) < 0.1).double().expand(b, t, 8, 8).contiguous()
    video = torch.zeros(b, t, 1, 8, 8, dtype=torch.double)
    video[:, :, 0] = labels
    evaluator = Evaluator(t)
    evaluator.add_batch(CopyModel(1, 2, 2, 2), head, PixelDecoder(1, 1, 8).double(), video, labels)
    return evaluator.metrics(), labels


def test_static_scene_is_perfectly_predicted_by_copy_last():
    m, labels = static_scene_metrics(OracleHead(1, 2), seed=1)
    assert m["val/mAP"] == pytest.approx(1.0) and m["val/copy_last/mAP"] == pytest.approx(1.0)
    assert m["val/chance/mAP"] == pytest.approx(labels.mean().item())


class SaturatedHead(DetectionHead):
    """Logits far above +5: positive cells 22, negative cells 18. float32 sigmoid rounds both to 1.0."""

    def forward(self, states):
        return states[:, :, 0, :8, :8] * 4 + 18


def test_ap_ranks_the_raw_logits_not_their_float32_sigmoid():
    # float32 sigmoid ties the two logits, so ranking sigmoid scores would give AP = the positive rate.
    assert torch.sigmoid(torch.tensor([18.0, 22.0])).tolist() == [1.0, 1.0]
    m, labels = static_scene_metrics(SaturatedHead(1, 2), seed=2)
    assert m["val/mAP"] == pytest.approx(1.0) and m["val/copy_last/mAP"] == pytest.approx(1.0)
    assert m["val/mAP_full"] == pytest.approx(1.0)
    assert m["val/chance/mAP"] == pytest.approx(labels.mean().item())


def test_a_batch_without_any_digit_scores_zero_and_keeps_map_finite():
    """Two validation batches, the second without a positive cell: its AP is 0 at every horizon, so the
    published per-batch mean is half the first batch's, and the whole-set AP is unaffected by the ranking."""
    torch.manual_seed(3)
    b, t = 4, 10
    labels = (torch.rand(b, 1, 8, 8) < 0.1).double().expand(b, t, 8, 8).contiguous()  # static: copying is exact
    video = torch.zeros(b, t, 1, 8, 8, dtype=torch.double)
    video[:, :, 0] = labels
    args = (CopyModel(1, 2, 2, 2), OracleHead(1, 2), PixelDecoder(1, 1, 8).double())
    evaluator = Evaluator(t)
    evaluator.add_batch(*args, video, labels)
    evaluator.add_batch(*args, torch.zeros_like(video), torch.zeros_like(labels))
    m = evaluator.metrics()
    assert all(np.isfinite(v) for v in m.values())
    for k in range(7):  # the oracle scores AP 1 on the first batch and 0 on the empty one
        assert m[f"val/AP_{k}"] == pytest.approx(0.5)
        assert m[f"val/AP_full_{k}"] == pytest.approx(1.0)
    assert m["val/mAP"] == pytest.approx(0.5) and m["val/chance/mAP"] == pytest.approx(labels.mean().item() / 2)
