"""ResNet5: the per-frame encoder (docs/model.md §2)."""

from collections.abc import Sequence

from torch import Tensor, nn

from .blocks import ConvBNReLU, ResidualBlock


class ResNet5(nn.Module):
    """Stem conv + three residual blocks, applied to every frame independently.

    [N, dobs, H, W] -> [N, dstc, H / s, W / s], s = the product of `strides`.
    Time is folded into N by the caller.
    """

    def __init__(self, dobs: int, henc: int, dstc: int, strides: Sequence[int] = (1, 1, 1)):
        super().__init__()
        s1, s2, s3 = strides
        self.stem = ConvBNReLU(dobs, henc)
        self.blocks = nn.Sequential(
            ResidualBlock(henc, henc, s1),
            ResidualBlock(henc, 2 * henc, s2),
            ResidualBlock(2 * henc, dstc, s3),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(self.stem(x))
