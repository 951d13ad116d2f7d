"""The MLP projector applied to every spatial vector before the losses (docs/model.md §2)."""

from torch import nn


class Projector(nn.Sequential):
    """[N, dstc] -> [N, 4 * dstc]: Linear - BatchNorm1d - ReLU - Linear (no bias)."""

    def __init__(self, dstc: int):
        super().__init__(
            nn.Linear(dstc, 4 * dstc),
            nn.BatchNorm1d(4 * dstc),
            nn.ReLU(inplace=True),
            nn.Linear(4 * dstc, 4 * dstc, bias=False),
        )
