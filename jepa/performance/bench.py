"""Training-step benchmark against the literal reference: `python -m jepa.performance.bench [overrides ...] [options]`.

Times full training steps (forward, backward, Adam) on a synthetic batch of the configured shape, for the
literal implementation of docs/model.md (jepa.reference, the one tests/test_reference_equivalence.py proves us equal
to) and for ours in one or more modes, and prints for each: ms per step, sequences/s, the speed-up and the
peak-memory ratio against the reference, FLOPs per step, achieved GFLOP/s and its fraction of the fp32
matmul rate measured in the same process, and the losses of each step (ours exact must equal the
reference's up to float rounding).

Every (implementation, mode) runs in its own process, so peak memory is its own. On a shared machine
absolute times drift from minute to minute: `--repeat N` alternates reference and modes N times and
reports the median ratio with its spread.

    python -m jepa.performance.bench data.batch_size=8 --modes exact,fast,selective,full --repeat 2
    python -m jepa.performance.bench data.batch_size=2 --modes exact+compile --impl ours

A mode joins named options with "+" (BENCH_OPTIONS below), e.g. `fast+compile`.
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..config import compose_config
from ..losses import match_reference_bn_updates, training_losses
from ..models import DetectionHead, PixelDecoder, VideoJEPA
from ..reference import Reference, copy_weights
from ..training.environment import resolve_device
from .cpu_allocator import set_cpu_allocator
from .options import apply_speed_options

# The options a mode can join, as config overrides.
BENCH_OPTIONS = {
    "exact": [],
    "fast": ["training.mode=fast"],
    "compile": ["training.compile=true"],
    "channels_last": ["training.channels_last=true"],
    "selective": ["training.activation_checkpointing=selective"],
    "full": ["training.activation_checkpointing=full"],
    "lean": ["training.activation_checkpointing=lean"],
    "caching": ["training.cpu_allocator=caching"],
    "system_malloc": ["training.cpu_allocator=system"],
    "fp16": ["training.precision=fp16"],
    "bf16": ["training.precision=bf16"],
}
AMP_DTYPES = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def mode_overrides(mode: str) -> list[str]:
    unknown = [name for name in mode.split("+") if name not in BENCH_OPTIONS]
    if unknown:
        raise SystemExit(f"unknown mode option(s) {unknown}: choose from {sorted(BENCH_OPTIONS)}, joined with '+'")
    return [o for name in mode.split("+") for o in BENCH_OPTIONS[name]]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(device: torch.device, dtype=None, n: int = 2048, reps: int = 5) -> float:
    """The n x n matmul rate: the yardstick for "how close to this machine's peak"."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype or torch.float32) for _ in range(2))
    a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def build_step(cfg, impl: str, device: torch.device, batch: int | None = None, speed: bool = True):
    """A closure running one training step of `impl` on a fixed synthetic batch; it returns the JEPA loss.

    Both implementations start from the reference's initial weights, so their losses can be compared.
    Ours gets the training config's speed options (jepa.performance) unless `speed` is False; the reference
    always runs as written, in fp32.
    """
    m, d, t = cfg.model, cfg.data, cfg.training
    b, size = batch or d.batch_size, d.image_size
    torch.manual_seed(cfg.seed)
    video = torch.rand(b, d.frames, m.dobs, size, size, device=device)
    labels = (torch.rand(b, d.frames, 8, 8, device=device) < 0.03).float()
    steps, std_c, cov_c = m.steps, cfg.loss.std_coeff, cfg.loss.cov_coeff
    net = Reference(m.dobs, m.henc, m.hpre, m.dstc, list(m.encoder_strides), size).to(device)
    scaler = None
    amp = AMP_DTYPES[t.precision] if impl == "ours" and speed else None
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
        if speed:
            set_cpu_allocator(t.cpu_allocator)  # this process benchmarks one mode: for the rest of it
            apply_speed_options(model, head, decoder, t)
        params = [*model.parameters(), *head.parameters(), *decoder.parameters()]
        optimizer = torch.optim.Adam(params, lr=cfg.optim.lr)
        scaler = torch.amp.GradScaler(device.type, enabled=amp is torch.float16)
        fast = t.mode == "fast"

        def losses():
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                return training_losses(model, head, decoder, video, labels, steps, std_c, cov_c, fast=fast)

    def step() -> float:
        out = losses()
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            out["total"].backward()
            optimizer.step()
        else:
            scaler.scale(out["total"]).backward()
            scaler.step(optimizer)
            scaler.update()
        return out["loss"].item()

    return step


def step_flops(cfg, impl: str, device: torch.device) -> float:
    """FLOPs of one step at the configured batch: counted on a plain eager batch-1 step, times the batch.

    Every FLOP of the step is linear in the batch. Counting without the speed options gives the model's
    FLOPs: what checkpointing recomputes is not counted as work done.
    """
    with FlopCounterMode(display=False) as counter:
        build_step(cfg, impl, device, batch=1, speed=False)()
    return counter.get_total_flops() * cfg.data.batch_size


def usage():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_stime, r.ru_minflt


def measure(cfg, impl: str, mode: str, steps: int, warmup: int) -> dict:
    """One implementation in one mode, in this process."""
    t = cfg.training
    device = resolve_device(t.device)
    if t.threads:
        torch.set_num_threads(t.threads)
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    step = build_step(cfg, impl, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    amp = AMP_DTYPES[t.precision] if impl == "ours" else None
    matmul_before = matmul_gflops(device, amp)
    start = time.perf_counter()
    warm_losses = [step() for _ in range(max(warmup, 2 if t.compile and impl == "ours" else 1))]
    warmup_s = time.perf_counter() - start
    sync(device)
    sys0, faults0 = usage()
    times, losses = [], []
    for _ in range(steps):
        start = time.perf_counter()
        losses.append(step())
        sync(device)
        times.append(time.perf_counter() - start)
    sys1, faults1 = usage()
    matmul_after = matmul_gflops(device, amp)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    del step
    flops = step_flops(cfg, impl, device)  # after the peak is read: its own batch-1 step must not count
    seconds = statistics.median(times)
    matmul = (matmul_before + matmul_after) / 2
    batch = cfg.data.batch_size
    return {
        "impl": impl, "mode": mode if impl == "ours" else "reference", "device": str(device),
        "threads": torch.get_num_threads(), "batch_size": batch,
        "model": {k: cfg.model[k] for k in ("henc", "hpre", "dstc", "steps")},
        "encoder_strides": list(cfg.model.encoder_strides), "frames": cfg.data.frames,
        "precision": t.precision if impl == "ours" else "fp32",
        "losses": warm_losses + losses, "warmup_s": warmup_s, "step_s": times,
        "ms_per_step": seconds * 1e3, "seq_per_s": batch / seconds,
        "gflop_per_step": flops / 1e9, "gflops_per_s": flops / seconds / 1e9,
        "matmul_gflops_per_s": [matmul_before, matmul_after],
        "fraction_of_matmul_rate": flops / seconds / 1e9 / matmul,
        "sys_s_per_step": (sys1 - sys0) / steps, "minor_faults_per_step": (faults1 - faults0) / steps,
        "peak_rss_mb": peak_rss, "peak_rss_above_start_mb": peak_rss - rss_start,
        "peak_cuda_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
    }


def peak_mb(row: dict) -> float:
    return row["peak_cuda_mb"] if row["peak_cuda_mb"] is not None else row["peak_rss_above_start_mb"]


def compare(rows: list[dict]) -> dict:
    """Per mode: median and range over rounds of the speed-up and memory ratio against the reference."""
    rounds = sorted({r["round"] for r in rows})
    refs = {r["round"]: r for r in rows if r["impl"] == "reference"}
    out = {}
    for mode in dict.fromkeys(r["mode"] for r in rows if r["impl"] == "ours"):
        ours = {r["round"]: r for r in rows if r["mode"] == mode}
        both = [k for k in rounds if k in refs and k in ours]
        if not both:
            continue
        speedups = [refs[k]["ms_per_step"] / ours[k]["ms_per_step"] for k in both]
        # In one process (tests) the second measurement cannot raise the process's peak: no memory ratio.
        memory = [peak_mb(ours[k]) / peak_mb(refs[k]) for k in both if peak_mb(refs[k]) > 0] or [float("nan")]
        # Same initial weights and batch: every step's loss must agree up to float rounding (exact mode).
        loss_diff = max(
            abs(a - b) / abs(b) for k in both for a, b in zip(ours[k]["losses"], refs[k]["losses"], strict=True)
        )
        out[mode] = {
            "speedup": statistics.median(speedups), "speedup_range": [min(speedups), max(speedups)],
            "memory_ratio": statistics.median(memory), "memory_ratio_range": [min(memory), max(memory)],
            "max_rel_loss_diff": loss_diff,
        }
    return out


COLUMNS = ["round", "impl", "mode", "ms_per_step", "seq_per_s", "gflop_per_step", "gflops_per_s",
           "matmul_gflops_per_s", "fraction_of_matmul_rate", "peak_mb", "sys_s_per_step", "warmup_s"]


def table(rows: list[dict], summary: dict) -> str:
    def fmt(v):
        if isinstance(v, list):
            return "-".join(f"{x:.3g}" for x in v)
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    lines = [" | ".join(COLUMNS), " | ".join("---" for _ in COLUMNS)]
    lines += [" | ".join(fmt(peak_mb(r) if c == "peak_mb" else r.get(c)) for c in COLUMNS) for r in rows]
    lines += ["", "mode | speedup (median, range) | memory ratio (median, range) | max rel. loss diff",
              "--- | --- | --- | ---"]
    lines += [f"{mode} | {s['speedup']:.2f} ({fmt(s['speedup_range'])}) | {s['memory_ratio']:.3f} "
              f"({fmt(s['memory_ratio_range'])}) | {s['max_rel_loss_diff']:.1e}" for mode, s in summary.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data.batch_size=8 experiment=quick")
    parser.add_argument("--impl", choices=["ours", "reference", "both"], default="both")
    parser.add_argument("--modes", default="exact", help="comma-separated modes of ours, e.g. exact,fast+compile")
    parser.add_argument("--repeat", type=int, default=1, help="rounds alternating reference and modes")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per run (their median is reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (2 at least with compile)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)  # one run, for the driver
    args = parser.parse_args(argv)
    modes = args.modes.split(",")
    if args.in_process:
        cfg = compose_config([*args.overrides, *mode_overrides(modes[0])])
        print(json.dumps(measure(cfg, args.impl, modes[0], args.steps, args.warmup)))
        return
    runs = ([("reference", "exact")] if args.impl != "ours" else [])
    runs += [("ours", mode) for mode in modes] if args.impl != "reference" else []
    for _, mode in runs:
        compose_config([*args.overrides, *mode_overrides(mode)])  # refuse a bad config before any run
    rows = []
    for round_ in range(args.repeat):
        for impl, mode in runs:
            cmd = [sys.executable, "-m", "jepa.performance.bench", *args.overrides, "--impl", impl, "--modes", mode,
                   "--steps", str(args.steps), "--warmup", str(args.warmup), "--in-process"]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-4000:]}")
            rows.append({"round": round_, **json.loads(done.stdout.strip().splitlines()[-1])})
            if not args.json:
                print(f"round {round_} {impl} {mode}: {rows[-1]['ms_per_step']:.0f} ms/step", file=sys.stderr)
    summary = compare(rows)
    if args.json:
        print(json.dumps({"runs": rows, "summary": summary}, indent=2))
    else:
        print(table(rows, summary))


if __name__ == "__main__":
    main()
