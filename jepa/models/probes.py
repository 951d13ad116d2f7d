"""The two probes trained on detached encodings (docs/model.md §4); they never move the encoder.

States are laid out [B, T, C, h, w] (time next to batch, so folding time into the batch is a view).
"""

import torch.nn.functional as F
from torch import Tensor, nn


def init_probe(module: nn.Module) -> None:
    """Truncated-normal weights (std 0.02) and zero biases, as the reference probes."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class DetectionHead(nn.Module):
    """Digit-location logits on an 8x8 grid per frame.

    [B, T, dstc, h, w] -> [B, T, 8, 8] (logits; sigmoid gives the location map).
    The reference's 3D convs have kernel (1, 3, 3): per-frame 2D convs compute the same thing.
    """

    grid = 8

    def __init__(self, dstc: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(dstc, hidden, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(hidden, 1, 3, padding=1)
        )
        init_probe(self)

    def forward(self, states: Tensor) -> Tensor:
        b, t = states.shape[:2]
        x = F.adaptive_avg_pool2d(states.flatten(0, 1), self.grid)
        return self.net(x).view(b, t, self.grid, self.grid)


class PixelDecoder(nn.Module):
    """Reconstructs frames from states: [B, T, dstc, h, w] -> [B, T, dobs, H, W].

    3x3 conv - ReLU - 3x3 conv, as the reference. With a strided encoder the state grid is smaller than the
    frame: the hidden features are upsampled (nearest) between the two convs, so the wide first conv runs
    at the state's resolution rather than the frame's.
    """

    def __init__(self, dstc: int, dobs: int, image_size: int, hidden: int = 16):
        super().__init__()
        self.image_size = image_size
        self.conv1 = nn.Conv2d(dstc, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, dobs, 3, padding=1)
        init_probe(self)

    def forward(self, states: Tensor) -> Tensor:
        b, t = states.shape[:2]
        x = F.relu(self.conv1(states.flatten(0, 1)))
        if x.shape[-1] != self.image_size:
            x = F.interpolate(x, size=self.image_size, mode="nearest")
        out = self.conv2(x)
        return out.view(b, t, *out.shape[1:])
