"""What learns in a run: the JEPA and its two probes on one device, their optimiser, the precision they
compute in, one training step, and the state a checkpoint keeps of them."""

from contextlib import nullcontext

import torch
from omegaconf import DictConfig

from ..losses import match_reference_bn_updates, training_losses
from ..models import DetectionHead, PixelDecoder, VideoJEPA
from ..performance import apply_speed_options

AMP_DTYPES = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
PARTS = ("model", "head", "decoder", "optimizer", "scaler")  # what a checkpoint holds of a learner


class Learner:
    def __init__(self, cfg: DictConfig, device: torch.device):
        self.cfg, self.device = cfg, device
        m, t = cfg.model, cfg.training
        self.model = VideoJEPA(m.dobs, m.henc, m.hpre, m.dstc, list(m.encoder_strides))
        self.head = DetectionHead(m.dstc, m.hpre)
        self.decoder = PixelDecoder(m.dstc, m.dobs, cfg.data.image_size)
        match_reference_bn_updates(self.model.encoder)
        for module in self.modules:
            module.to(device)
        apply_speed_options(self.model, self.head, self.decoder, t)
        self.optimizer = torch.optim.Adam([{"params": module.parameters()} for module in self.modules])
        self.set_learning_rates()
        self.amp_dtype = AMP_DTYPES[t.precision]
        self.scaler = torch.amp.GradScaler(device.type, enabled=t.precision == "fp16")

    @property
    def modules(self) -> tuple[VideoJEPA, DetectionHead, PixelDecoder]:
        return (self.model, self.head, self.decoder)

    def set_learning_rates(self) -> None:
        """The config's rates: optim.lr for the JEPA and the detection head, scaled for the pixel decoder."""
        lr = self.cfg.optim.lr
        for group, group_lr in zip(self.optimizer.param_groups, (lr, lr, lr * self.cfg.optim.decoder_lr_scale),
                                   strict=True):
            group["lr"] = group_lr

    def autocast(self):
        return nullcontext() if self.amp_dtype is None else torch.autocast(self.device.type, dtype=self.amp_dtype)

    def step(self, video: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """One training step on video [B, T, C, H, W], labels [B, T, 8, 8]; returns its losses (detached)."""
        cfg = self.cfg
        for module in self.modules:
            module.train()
        with self.autocast():
            losses = training_losses(self.model, self.head, self.decoder, video, labels, cfg.model.steps,
                                     cfg.loss.std_coeff, cfg.loss.cov_coeff, fast=cfg.training.mode == "fast")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(losses.pop("total")).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {k: v.detach().float() for k, v in losses.items()}

    def state_dict(self) -> dict:
        return {name: getattr(self, name).state_dict() for name in PARTS}

    def load_state_dict(self, state: dict) -> None:
        """Raises (KeyError, RuntimeError, ValueError) when `state` does not fit these modules."""
        for name in PARTS:
            getattr(self, name).load_state_dict(state[name])
        self.set_learning_rates()  # the config's, not the state's (they differ only under allow_config_change)
