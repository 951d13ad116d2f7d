"""The building blocks shared by the encoder and the predictor (docs/model.md §2): the residual block and the stem."""

from torch import Tensor, nn

from .lean import batch_norm_relu, lean_enabled


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class ResidualBlock(nn.Module):
    """3x3 conv(stride) - BN - ReLU - 3x3 conv - BN, plus a shortcut, then ReLU.

    The shortcut is a strided 1x1 conv + BN when the shape changes, else the identity.
    [N, cin, H, W] -> [N, cout, ceil(H / stride), ceil(W / stride)]
    """

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(cin, cout, stride), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = conv3x3(cout, cout), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: Tensor) -> Tensor:
        if lean_enabled(self):
            out = batch_norm_relu(self.conv1(x), self.bn1)
            if isinstance(self.shortcut, nn.Identity):
                return batch_norm_relu(self.conv2(out), self.bn2, residual=x)
            conv, bn = self.shortcut
            return batch_norm_relu(self.conv2(out), self.bn2, conv(x), bn)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ConvBNReLU(nn.Sequential):
    """The stem of the encoder and the predictor: 3x3 conv (no bias) - BN - ReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__(conv3x3(cin, cout), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    def forward(self, x: Tensor) -> Tensor:
        if lean_enabled(self):
            conv, bn, _ = self
            return batch_norm_relu(conv(x), bn)
        return super().forward(x)
