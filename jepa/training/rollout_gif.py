"""The rollout animation: ground truth, decoded rollout and detection heat-map over it (docs/model.md §5)."""

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from ..atomic_write import atomic_write
from ..models import DetectionHead, PixelDecoder, VideoJEPA

SCALE = 2  # pixels per frame pixel in the GIF


@torch.no_grad()
def rollout_frames(
    model: VideoJEPA, head: DetectionHead, decoder: PixelDecoder, video: Tensor
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Truth, decoded full rollout and detection map for video [B, T, 1, H, W]; each [B, T, H, W] in [0, 1].

    The rollout keeps the two context frames and every later frame at its furthest prediction (T - 2 steps).
    """
    states = model.encode(video)
    predictions = model.rollout_eval(states, steps=video.shape[1] - 2)
    # Frame j's last update is at step j - 1, the first entry of that step's output.
    rolled = torch.stack([states[:, 0], states[:, 1]] + [p[:, 0] for p in predictions], dim=1)
    decoded = decoder(rolled)[:, :, 0].clamp(0, 1)
    size = video.shape[-1]
    heat = torch.sigmoid(head(rolled))
    heat = F.interpolate(heat, size=size, mode="nearest")
    return video[:, :, 0].cpu().numpy(), decoded.cpu().numpy(), heat.cpu().numpy()


def compose_frames(truth: np.ndarray, decoded: np.ndarray, heat: np.ndarray) -> list[Image.Image]:
    """One RGB image per time step: rows truth / decoded / heat-map (red) over decoded; one column per video."""
    b, t, h, w = truth.shape
    images = []
    for i in range(t):
        def grey(a, i=i):
            return np.repeat(a[:, i, :, :, None], 3, axis=-1)

        overlay = grey(decoded) * 0.6
        overlay[..., 0] = np.maximum(overlay[..., 0], heat[:, i])
        rows = [grey(truth), grey(decoded), overlay]
        grid = np.concatenate([np.concatenate(list(r), axis=1) for r in rows], axis=0)
        pixels = (grid * 255).round().astype(np.uint8)
        img = Image.fromarray(pixels, "RGB")
        images.append(img.resize((img.width * SCALE, img.height * SCALE), Image.NEAREST))
    return images


def write_rollout_gif(
    model: VideoJEPA, head: DetectionHead, decoder: PixelDecoder, video: Tensor, path: Path, ms_per_frame: int = 300
) -> Path:
    images = compose_frames(*rollout_frames(model, head, decoder, video))
    atomic_write(path, lambda f: images[0].save(f, format="GIF", save_all=True, append_images=images[1:],
                                                duration=ms_per_frame, loop=0))
    return path
