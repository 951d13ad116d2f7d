"""Speed and memory options of the training config, applied in one place: `apply_speed_options`.

None of them changes the math of a training step (`training.mode=fast` does, and lives in jepa.losses).
`training.cpu_allocator` is applied around the whole run (jepa.performance.cpu_allocator).
docs/performance.md has the measurements behind each choice.
"""

import logging

import torch
from omegaconf import DictConfig

from ..models import DetectionHead, PixelDecoder, VideoJEPA

log = logging.getLogger("jepa")


def apply_speed_options(model: VideoJEPA, head: DetectionHead, decoder: PixelDecoder, training: DictConfig) -> None:
    """Apply `training.{activation_checkpointing, channels_last, compile}`.

    Call after the modules are on their device and before the optimiser's first step.
    """
    model.checkpointing = training.activation_checkpointing
    on_cuda = next(model.parameters()).device.type == "cuda"
    if on_cuda:
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest convolution algorithms once
    if training.channels_last and not on_cuda:
        # No gain measured on CPU, and its oneDNN backward hung now and then in the test suite (torch 2.13).
        log.warning("training.channels_last=true is ignored on CPU (a CUDA option)")
    elif training.channels_last:
        for module in (model, head, decoder):
            module.to(memory_format=torch.channels_last)
    if training.compile:
        if not on_cuda:
            # Inductor's layout optimisation turns convolutions channels_last, whose oneDNN backward hung
            # now and then on CPU (torch 2.13, about 1 tiny compiled step in 5); keep the layout as it is.
            from ..private_apis import inductor_config

            inductor_config().layout_optimization = False
        # The encoder and predictor hold nearly all FLOPs; compiling the small heads is not worth its time.
        model.encoder.compile()
        model.predictor.compile()
