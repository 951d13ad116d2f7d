"""Speed options of the training config (`training.compile`, `training.channels_last`), applied in one place.

None of them changes the math of a training step; see README "Performance" for what each buys.
"""

import torch
from omegaconf import DictConfig

from .models import DetectionHead, PixelDecoder, VideoJEPA


def apply_speed_options(model: VideoJEPA, head: DetectionHead, decoder: PixelDecoder, training: DictConfig) -> None:
    if training.channels_last:
        for module in (model, head, decoder):
            module.to(memory_format=torch.channels_last)
    if training.compile:
        # The encoder and predictor hold nearly all FLOPs; compiling the small heads is not worth its time.
        model.encoder.compile()
        model.predictor.compile()
