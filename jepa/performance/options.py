"""Speed, memory and numerics options of the training config, applied in one place: `apply_speed_options`.

None of them changes the math of a training step (`training.mode=fast` does, and lives in jepa.losses;
`training.precision` picks the autocast dtype in the trainer). `training.tf32` and `training.deterministic`
choose how the same math is rounded and ordered on CUDA (`apply_numerics`); `training.compile_cache_dir`
keeps torch.compile's compiled code between processes (`compile_cache`). `training.cpu_allocator` is
applied around the whole run (jepa.performance.cpu_allocator).
docs/performance.md has the measurements behind each choice.
"""

import logging
import os
from pathlib import Path

import torch
from omegaconf import DictConfig

from ..models import DetectionHead, PixelDecoder, VideoJEPA

log = logging.getLogger("jepa")

# cuBLAS is deterministic only with a fixed workspace (CUDA docs, "Results reproducibility").
CUBLAS_WORKSPACE = ":4096:8"
DEFAULT_COMPILE_CACHE = Path("~/.cache/jepa/inductor")


def set_tf32(enabled: bool) -> None:
    """TF32 for fp32 matmuls and cuDNN convolutions on CUDA (Ampere and later), or strict IEEE fp32.

    Through the flags Inductor itself reads (torch 2.13 refuses to read them after a mix with the newer
    per-backend `fp32_precision` settings).
    """
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def set_deterministic(enabled: bool) -> None:
    """Deterministic kernels: the same inputs give bitwise the same outputs on the same GPU and software.

    cuDNN picks fixed deterministic algorithms (no benchmark search), cuBLAS gets a fixed workspace, and torch
    warns about any op without a deterministic implementation (warn_only: such an op still runs). Two such
    warnings are expected on CUDA, both from the probes' backward: adaptive_avg_pool2d (atomic adds, but onto
    disjoint windows here, as the latent grid is a multiple of the 8x8 label grid) and nearest interpolation
    by an integer factor; tests/test_cuda.py checks that a stopped and resumed run still ends bitwise equal.
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)  # read when cuBLAS starts
    torch.backends.cudnn.deterministic = enabled
    torch.use_deterministic_algorithms(enabled, warn_only=True)


def apply_numerics(training: DictConfig, device: torch.device) -> None:
    """`training.tf32` and `training.deterministic`: process-wide settings, for ours and the reference alike."""
    set_tf32(training.tf32)
    set_deterministic(training.deterministic)
    if device.type == "cuda":
        # Fixed shapes: pick the fastest convolution algorithms once, unless results must be reproducible.
        torch.backends.cudnn.benchmark = not training.deterministic


def compile_cache(training: DictConfig) -> Path:
    """Point Inductor's caches (FX graphs, AOT autograd, Triton kernels) at `training.compile_cache_dir`.

    The default folder is in the home directory, which a requeued SLURM job sees again on any node, where
    Inductor's own default (/tmp) is lost with the node: a resumed or requeued run then loads its compiled
    code instead of compiling again. TORCHINDUCTOR_CACHE_DIR, when set, wins over the default.
    """
    configured = training.get("compile_cache_dir")
    folder = Path(configured or os.environ.get("TORCHINDUCTOR_CACHE_DIR") or DEFAULT_COMPILE_CACHE).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder.resolve())
    from ..private_apis import inductor_config  # torch._inductor loads only where compile is used

    config = inductor_config()
    config.fx_graph_cache = True
    if hasattr(config, "autograd_cache"):
        config.autograd_cache = True
    return folder


def apply_speed_options(model: VideoJEPA, head: DetectionHead, decoder: PixelDecoder, training: DictConfig) -> None:
    """Apply `training.{tf32, deterministic, activation_checkpointing, channels_last, compile, compile_cache_dir}`.

    Call after the modules are on their device and before the optimiser's first step.
    """
    model.checkpointing = training.activation_checkpointing
    device = next(model.parameters()).device
    on_cuda = device.type == "cuda"
    apply_numerics(training, device)
    if training.channels_last and not on_cuda:
        # No gain measured on CPU, and its oneDNN backward hung now and then in the test suite (torch 2.13).
        log.warning("training.channels_last=true is ignored on CPU (a CUDA option)")
    elif training.channels_last:
        for module in (model, head, decoder):
            module.to(memory_format=torch.channels_last)
    if training.compile:
        compile_cache(training)
        if not on_cuda:
            # Inductor's layout optimisation turns convolutions channels_last, whose oneDNN backward hung
            # now and then on CPU (torch 2.13, about 1 tiny compiled step in 5); keep the layout as it is.
            from ..private_apis import inductor_config  # torch._inductor loads only where compile is used

            inductor_config().layout_optimization = False
        # The encoder and predictor hold nearly all FLOPs; compiling the small heads is not worth its time.
        model.encoder.compile()
        model.predictor.compile()
