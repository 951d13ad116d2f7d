"""What a run measures on its validation set after an epoch: AP per horizon, baselines, probe errors, the GIF."""

from contextlib import AbstractContextManager
from pathlib import Path

import torch

from ..data import make_loader
from ..evaluation import Evaluator
from ..models import DetectionHead, PixelDecoder, VideoJEPA
from .environment import to_model_layout
from .rollout_gif import write_rollout_gif

GIF_VIDEOS = 8


def device_batches(loader, device: torch.device):
    """The loader's (video, labels) on `device`, video in the model's [B, T, C, H, W] layout."""
    for video, labels in loader:
        yield to_model_layout(video).to(device, non_blocking=True), labels.to(device, non_blocking=True)


@torch.no_grad()
def evaluate(model: VideoJEPA, head: DetectionHead, decoder: PixelDecoder, dataset, data_cfg, seed: int,
             device: torch.device, autocast: AbstractContextManager) -> dict[str, float]:
    """The validation metrics (jepa.evaluation) of the whole `dataset`, in eval mode."""
    for module in (model, head, decoder):
        module.eval()
    evaluator = Evaluator(data_cfg.frames)
    loader = make_loader(dataset, data_cfg.batch_size, shuffle=False, seed=seed, epoch=0, start_batch=0,
                         num_workers=data_cfg.num_workers)
    with autocast:
        for video, labels in device_batches(loader, device):
            evaluator.add_batch(model, head, decoder, video, labels)
    return evaluator.metrics()


def write_gif(model: VideoJEPA, head: DetectionHead, decoder: PixelDecoder, dataset, device: torch.device,
              path: Path) -> Path:
    """The rollout animation of the first GIF_VIDEOS validation sequences."""
    for module in (model, head, decoder):
        module.eval()
    video = torch.stack([dataset[i][0] for i in range(min(GIF_VIDEOS, len(dataset)))])
    return write_rollout_gif(model, head, decoder, to_model_layout(video).to(device), path)
