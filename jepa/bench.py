"""Training-step benchmark: `python -m jepa.bench [overrides ...] [--impl ours|reference|both] [--json]`.

Times full training steps (forward, backward, Adam) on synthetic batches of the configured shape and
prints sequences/s, ms per step, peak memory, FLOPs per step, achieved GFLOP/s and its ratio to the
fp32 matmul rate measured in the same process. `--impl both` runs our step and the literal reference
(jepa.reference) each in its own process, so peak memory is measured separately, and prints the ratio.

Example, the published default at batch 8: `python -m jepa.bench data.batch_size=8 --impl both`.
"""

import argparse
import json
import resource
import subprocess
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from .config import compose_config
from .losses import match_reference_bn_updates, training_losses
from .models import DetectionHead, PixelDecoder, VideoJEPA
from .reference import Reference, copy_weights
from .trainer import resolve_device


def matmul_gflops(device: torch.device, n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_step(cfg, impl: str, device: torch.device):
    """A closure running one training step of `impl` on a fixed synthetic batch."""
    m, d = cfg.model, cfg.data
    b, t, size = d.batch_size, d.frames, d.image_size
    video = torch.rand(b, t, m.dobs, size, size, device=device)
    labels = (torch.rand(b, t, 8, 8, device=device) < 0.03).float()
    steps, std_c, cov_c = m.steps, cfg.loss.std_coeff, cfg.loss.cov_coeff
    # Both implementations start from the reference's initial weights, so their losses can be compared.
    net = Reference(m.dobs, m.henc, m.hpre, m.dstc, list(m.encoder_strides), size).to(device)
    if impl == "reference":
        video_spec = video.transpose(1, 2).contiguous()  # the reference takes [B, C, T, H, W]
        optimizer = torch.optim.Adam(net.parameters(), lr=cfg.optim.lr)

        def losses():
            return net.step_losses(video_spec, labels, steps, std_c, cov_c)
    else:
        model = VideoJEPA(m.dobs, m.henc, m.hpre, m.dstc, list(m.encoder_strides)).to(device)
        match_reference_bn_updates(model.encoder)
        head, decoder = DetectionHead(m.dstc, m.hpre).to(device), PixelDecoder(m.dstc, m.dobs, size).to(device)
        copy_weights(net, model, head, decoder)
        del net
        params = [*model.parameters(), *head.parameters(), *decoder.parameters()]
        optimizer = torch.optim.Adam(params, lr=cfg.optim.lr)
        fast = cfg.training.mode == "fast"

        def losses():
            return training_losses(model, head, decoder, video, labels, steps, std_c, cov_c, fast=fast)

    def step() -> float:
        out = losses()
        optimizer.zero_grad(set_to_none=True)
        out["total"].backward()
        optimizer.step()
        return out["loss"].item()

    return step


def measure(cfg, impl: str, steps: int, warmup: int) -> dict:
    device = resolve_device(cfg.training.device)
    if cfg.training.threads:
        torch.set_num_threads(cfg.training.threads)
    torch.manual_seed(cfg.seed)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    step = build_step(cfg, impl, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with FlopCounterMode(display=False) as counter:
        first_loss = step()
    for _ in range(max(warmup - 1, 0)):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    seconds = (time.perf_counter() - start) / steps
    flops = counter.get_total_flops()
    matmul = matmul_gflops(device)
    batch = cfg.data.batch_size
    return {
        "impl": impl, "mode": cfg.training.mode, "device": str(device), "threads": torch.get_num_threads(),
        "batch_size": batch, "model": {k: cfg.model[k] for k in ("henc", "hpre", "dstc", "steps")},
        "encoder_strides": list(cfg.model.encoder_strides), "frames": cfg.data.frames,
        "first_loss": first_loss, "ms_per_step": seconds * 1e3, "seq_per_s": batch / seconds,
        "gflop_per_step": flops / 1e9, "gflops_per_s": flops / seconds / 1e9, "matmul_gflops_per_s": matmul,
        "fraction_of_matmul_rate": flops / seconds / 1e9 / matmul,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_rss_above_start_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_before,
        "peak_cuda_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
    }


def table(rows: list[dict]) -> str:
    cols = ["impl", "mode", "ms_per_step", "seq_per_s", "gflop_per_step", "gflops_per_s",
            "fraction_of_matmul_rate", "peak_rss_mb", "peak_cuda_mb"]
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = [" | ".join(cols), " | ".join("---" for _ in cols)]
    lines += [" | ".join(fmt(r.get(c)) for c in cols) for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data.batch_size=8 experiment=quick")
    parser.add_argument("--impl", choices=["ours", "reference", "both"], default="ours")
    parser.add_argument("--steps", type=int, default=3, help="timed steps")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (the first also counts FLOPs)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    cfg = compose_config(args.overrides)
    if args.impl != "both":
        rows = [measure(cfg, args.impl, args.steps, args.warmup)]
    else:
        rows = []
        for impl in ("reference", "ours"):  # separate processes: peak memory is per process
            cmd = [sys.executable, "-m", "jepa.bench", *args.overrides, "--impl", impl, "--json",
                   "--steps", str(args.steps), "--warmup", str(args.warmup)]
            rows.append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)["runs"][0])
    out = {"runs": rows}
    if len(rows) == 2:
        ref, ours = rows
        out["speedup"] = ref["ms_per_step"] / ours["ms_per_step"]
        out["memory_ratio"] = ours["peak_rss_above_start_mb"] / ref["peak_rss_above_start_mb"]
        out["same_first_loss"] = abs(ref["first_loss"] - ours["first_loss"]) <= 1e-4 * abs(ref["first_loss"])
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(table(rows))
        for key in ("speedup", "memory_ratio"):
            if key in out:
                print(f"{key}: {out[key]:.3f}")


if __name__ == "__main__":
    main()
