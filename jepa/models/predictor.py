"""ResUNet: predicts the next state from the two previous ones (SPEC §2)."""

import torch
from torch import Tensor, nn

from .blocks import ResidualBlock, conv3x3


class ResUNet(nn.Module):
    """A residual U-Net with three 2x downsamplings.

    [N, cin, H, W] -> [N, cout, H, W]; H and W must be divisible by 8.
    """

    def __init__(self, cin: int, hidden: int, cout: int):
        super().__init__()
        h = hidden
        self.stem = nn.Sequential(conv3x3(cin, h), nn.BatchNorm2d(h), nn.ReLU(inplace=True))
        self.down = nn.ModuleList(
            [
                ResidualBlock(h, h, 1),
                ResidualBlock(h, 2 * h, 2),
                ResidualBlock(2 * h, 4 * h, 2),
                ResidualBlock(4 * h, 8 * h, 2),
            ]
        )
        # Each up stage halves the channels, joins the skip of the same size, and mixes back down.
        self.up = nn.ModuleList(
            [nn.ConvTranspose2d(c, c // 2, 2, stride=2) for c in (8 * h, 4 * h, 2 * h)]
        )
        self.merge = nn.ModuleList([ResidualBlock(c, c // 2) for c in (8 * h, 4 * h, 2 * h)])
        self.head = nn.Conv2d(h, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        x = self.stem(x)
        for block in self.down:
            x = block(x)
            skips.append(x)
        x = skips.pop()
        for up, merge in zip(self.up, self.merge):
            x = merge(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)
