"""A deliberately literal implementation of docs/model.md §2-4, for the equality test and the benchmark only.

Written the long way on purpose: [B, C, T, H, W] tensors, the encoder run three times per training step
(once for the JEPA, once per probe, both in train mode), the targets projected again at every unroll step,
3D convs in the detection head. jepa.losses.training_losses must compute exactly the same numbers
(tests/test_reference_equivalence.py); jepa.tools.bench measures how much faster it does so.
"""

import torch
import torch.nn.functional as F
from torch import nn


def fold(x):  # [B, C, T, H, W] -> [(B T), C, H, W]
    b, c, t, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w), b, t


def unfold(x, b, t):  # [(B T), C, H, W] -> [B, C, T, H, W]
    return x.reshape(b, t, *x.shape[1:]).permute(0, 2, 1, 3, 4)


class RefBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.proj = None
        if stride != 1 or cin != cout:
            self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (x if self.proj is None else self.proj(x)))


class RefEncoder(nn.Module):
    def __init__(self, dobs, henc, dstc, strides):
        super().__init__()
        self.conv = nn.Conv2d(dobs, henc, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(henc)
        self.b1 = RefBlock(henc, henc, strides[0])
        self.b2 = RefBlock(henc, 2 * henc, strides[1])
        self.b3 = RefBlock(2 * henc, dstc, strides[2])

    def forward(self, video):  # [B, C, T, H, W]
        x, b, t = fold(video)
        x = self.b3(self.b2(self.b1(F.relu(self.bn(self.conv(x))))))
        return unfold(x, b, t)


class RefUNet(nn.Module):
    def __init__(self, cin, h, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, h, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(h)
        self.e1, self.e2 = RefBlock(h, h), RefBlock(h, 2 * h, 2)
        self.e3, self.e4 = RefBlock(2 * h, 4 * h, 2), RefBlock(4 * h, 8 * h, 2)
        self.u3 = nn.ConvTranspose2d(8 * h, 4 * h, 2, 2)
        self.u2 = nn.ConvTranspose2d(4 * h, 2 * h, 2, 2)
        self.u1 = nn.ConvTranspose2d(2 * h, h, 2, 2)
        self.d3, self.d2, self.d1 = RefBlock(8 * h, 4 * h), RefBlock(4 * h, 2 * h), RefBlock(2 * h, h)
        self.out = nn.Conv2d(h, cout, 1)

    def forward(self, x):
        x1 = self.e1(F.relu(self.bn(self.conv(x))))
        x2 = self.e2(x1)
        x3 = self.e3(x2)
        x4 = self.e4(x3)
        y = self.d3(torch.cat([self.u3(x4), x3], 1))
        y = self.d2(torch.cat([self.u2(y), x2], 1))
        y = self.d1(torch.cat([self.u1(y), x1], 1))
        return self.out(y)


class Reference(nn.Module):
    def __init__(self, dobs, henc, hpre, dstc, strides, image_size):
        super().__init__()
        self.encoder = RefEncoder(dobs, henc, dstc, strides)
        self.predictor = RefUNet(2 * dstc, hpre, dstc)
        self.projector = nn.Sequential(
            nn.Linear(dstc, 4 * dstc), nn.BatchNorm1d(4 * dstc), nn.ReLU(), nn.Linear(4 * dstc, 4 * dstc, bias=False)
        )
        self.det1 = nn.Conv3d(dstc, hpre, (1, 3, 3), padding=(0, 1, 1))
        self.det2 = nn.Conv3d(hpre, 1, (1, 3, 3), padding=(0, 1, 1))
        self.dec1 = nn.Conv2d(dstc, 16, 3, padding=1)
        self.dec2 = nn.Conv2d(16, dobs, 3, padding=1)
        self.image_size = image_size

    def project(self, s):  # every spatial vector of [B, C, T, H, W]
        return self.projector(s.permute(0, 2, 3, 4, 1).reshape(-1, s.shape[1]))

    def step_losses(self, video, labels, steps, std_coeff, cov_coeff):
        """video [B, C, T, H, W] as in docs/model.md; labels [B, T, 8, 8]."""
        s = self.encoder(video)
        z = self.project(s)
        std = torch.mean(F.relu(1 - torch.sqrt(z.var(dim=0) + 1e-4)))
        zc = z - z.mean(0)
        cov = zc.T @ zc / (z.shape[0] - 1)
        off = cov[~torch.eye(cov.shape[0], dtype=torch.bool)]
        cov_loss = off.pow(2).mean()
        vc = std_coeff * std + cov_coeff * cov_loss
        pred = 0
        p = s
        for _ in range(steps):
            pairs = torch.cat([p[:, :, :-1], p[:, :, 1:]], dim=1)
            x, b, t = fold(pairs)
            out = unfold(self.predictor(x), b, t)[:, :, :-1]
            p = torch.cat([s[:, :, :2], out], dim=2)
            pred = pred + F.mse_loss(self.project(p), self.project(s)) / steps
        with torch.no_grad():  # the reference encodes again for each probe, in train mode
            s_det = self.encoder(video)
        b, c, t, h, w = s_det.shape
        pooled = unfold(F.adaptive_avg_pool2d(fold(s_det)[0], 8), b, t)
        logits = self.det2(F.relu(self.det1(pooled)))[:, 0]  # [B, T, 8, 8]
        det_bce = F.binary_cross_entropy(torch.sigmoid(logits), labels)
        with torch.no_grad():
            s_dec = self.encoder(video)
        x = F.relu(self.dec1(fold(s_dec)[0]))
        if x.shape[-1] != self.image_size:  # a strided encoder: back to the frame size before the last conv
            x = F.interpolate(x, size=self.image_size, mode="nearest")
        frames = unfold(self.dec2(x), b, t)
        dec_mse = F.mse_loss(frames, video)
        jepa = vc + pred
        return {"total": jepa + det_bce + dec_mse, "loss": jepa, "vc": vc, "std": std, "cov": cov_loss,
                "pred": pred, "det_bce": det_bce, "dec_mse": dec_mse}


def copy_weights(reference: Reference, model, head, decoder):
    """Load the reference's weights into ours, module by module, in registration order."""
    pairs = [
        (reference.encoder, model.encoder), (reference.predictor, model.predictor),
        (reference.projector, model.projector), (nn.ModuleList([reference.det1, reference.det2]), head),
        (nn.ModuleList([reference.dec1, reference.dec2]), decoder),
    ]
    for ref, ours in pairs:
        ref_state, our_state = ref.state_dict(), ours.state_dict()
        assert len(ref_state) == len(our_state)
        our_state = {k: v.reshape(our_state[k].shape) for k, v in zip(our_state, ref_state.values(), strict=True)}
        ours.load_state_dict(our_state)
