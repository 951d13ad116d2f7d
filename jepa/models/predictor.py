"""ResUNet: predicts the next state from the two previous ones (docs/model.md §2)."""

from torch import Tensor, nn

from . import lean
from .activation_checkpointing import checkpointed
from .blocks import ConvBNReLU, ResidualBlock


class ResUNet(nn.Module):
    """A residual U-Net with three 2x downsamplings.

    [N, cin, H, W] -> [N, cout, H, W]; H and W must be divisible by 8.
    """

    def __init__(self, cin: int, hidden: int, cout: int):
        super().__init__()
        h = hidden
        self.stem = ConvBNReLU(cin, h)
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

    def forward(self, x: Tensor, checkpoint_stages: bool = False) -> Tensor:
        """`checkpoint_stages`: keep only each stage's input for backward and recompute the stage (the
        least-memory policy runs this inside a checkpoint of the whole call: one stage's activations at a
        time instead of the whole U-Net's when that call is recomputed)."""
        stage = (lambda fn, module: checkpointed(fn, "full", module)) if checkpoint_stages else (lambda fn, _: fn)
        skips = []
        x = stage(self.stem, self.stem)(x)
        for block in self.down:
            x = stage(block, block)(x)
            skips.append(x)
        x = skips.pop()
        for up, merge in zip(self.up, self.merge, strict=True):
            x = stage(lambda x, skip, up=up, merge=merge: merge(lean.cat([up(x), skip], dim=1)), merge)(x, skips.pop())
        return self.head(x)
