"""Detection-based evaluation of the rollouts (docs/model.md §5): AP per horizon, mAP and two baselines.

Horizon k (0-based) scores frames k+2 .. T-1 as predicted k+1 steps ahead of their last real context
frame. The published protocol averages AP over validation batches for k = 0 .. T-4 (the reference's
`len(preds) - 1` horizons); we also report AP over the whole validation set for every k = 0 .. T-3.
"""

from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .models import DetectionHead, PixelDecoder, VideoJEPA


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Average precision of binary `labels` ranked by `scores`, as sklearn's average_precision_score.

    AP = sum_n (R_n - R_{n-1}) P_n over the distinct score thresholds (ties form one threshold).
    Written out because sklearn's input checks cost more than the sort on the many small per-batch calls.
    Without any positive label AP is 0, as sklearn (the published evaluation) gives: a validation batch without
    a digit then lowers the per-batch mean instead of making mAP NaN.
    """
    scores, labels = np.ravel(scores), np.ravel(labels).astype(bool)
    positives = labels.sum()
    if positives == 0:
        return 0.0
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    # Index of the last element of each group of tied scores.
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    tp = np.cumsum(labels)[last_of_tie]
    precision = tp / (last_of_tie + 1)
    recall_gain = np.diff(np.r_[0, tp]) / positives
    return float(np.sum(recall_gain * precision))


def published_horizons(frames: int) -> int:
    """Horizons scored by the published protocol: the reference's len(preds) - 1 = T - 3."""
    return frames - 3


def all_horizons(frames: int) -> int:
    """Every horizon a T-frame sequence can score with two context frames: T - 2."""
    return frames - 2


class Evaluator:
    """Accumulates per-batch and whole-set AP for the model and both baselines over a validation pass."""

    methods = ("model", "copy_last", "chance")

    def __init__(self, frames: int):
        self.frames = frames
        self.batch_ap: dict[tuple[str, int], list[float]] = defaultdict(list)
        self.pooled: dict[tuple[str, int], list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
        self.probe_sums = defaultdict(float)
        self.sequences = 0

    @torch.no_grad()
    def add_batch(
        self, model: VideoJEPA, head: DetectionHead, decoder: PixelDecoder, video: Tensor, labels: Tensor
    ) -> None:
        """video [B, T, dobs, H, W], labels [B, T, 8, 8]; all modules in eval mode."""
        t = self.frames
        states = model.encode(video)
        rollout = model.rollout_eval(states, steps=all_horizons(t))
        truth_logits = head(states)
        self.probe_sums["det_bce"] += F.binary_cross_entropy_with_logits(truth_logits, labels).item() * len(video)
        self.probe_sums["dec_mse"] += F.mse_loss(decoder(states), video).item() * len(video)
        self.sequences += len(video)

        # AP ranks the raw logits, as the reference does: sigmoid is monotone, so the ranking is the same,
        # except that float32 sigmoid rounds logits above about +5 into ties and would change AP.
        for k, predicted in enumerate(rollout):
            target = labels[:, k + 2 :].cpu().numpy()
            scores = {
                "model": head(predicted),
                # The last real context frame of frame j at horizon k is j - k - 1.
                "copy_last": truth_logits[:, 1 : t - 1 - k],
                "chance": torch.zeros_like(truth_logits[:, k + 2 :]),  # one constant score: AP = positive rate
            }
            for method, s in scores.items():
                s = s.float().cpu().numpy()
                self.pooled[method, k].append((s, target))
                if k < published_horizons(t):
                    self.batch_ap[method, k].append(average_precision(s, target))

    def metrics(self) -> dict[str, float]:
        """Flat `val/...` keys as documented in docs/run_folder.md."""
        out: dict[str, float] = {}
        prefix = {"model": "val/", "copy_last": "val/copy_last/", "chance": "val/chance/"}
        for method in self.methods:
            p = prefix[method]
            published = [float(np.mean(self.batch_ap[method, k])) for k in range(published_horizons(self.frames))]
            for k, ap in enumerate(published):
                out[f"{p}AP_{k}"] = ap
            out[f"{p}mAP"] = float(np.mean(published))
            full = []
            for k in range(all_horizons(self.frames)):
                chunks = self.pooled[method, k]
                s = np.concatenate([c[0].ravel() for c in chunks])
                y = np.concatenate([c[1].ravel() for c in chunks])
                full.append(average_precision(s, y))
                out[f"{p}AP_full_{k}"] = full[-1]
            out[f"{p}mAP_full"] = float(np.mean(full[: published_horizons(self.frames)]))
        for name, total in self.probe_sums.items():
            out[f"val/{name}"] = total / max(self.sequences, 1)
        return out
