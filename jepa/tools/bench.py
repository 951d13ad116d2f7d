"""Training-step benchmark against the literal reference: `python -m jepa.tools.bench [overrides ...] [options]`.

Times full training steps (forward, backward, Adam) on a synthetic batch of the configured shape, for the
literal implementation of docs/model.md (jepa.reference, the one tests/test_reference_equivalence.py proves us equal
to) and for ours in one or more modes, and reports for each run: ms per step, sequences/s, peak memory (GPU:
max_memory_allocated; CPU: peak RSS above the process's start), FLOPs per step, achieved TFLOP/s and its
fraction of the matmul rate measured in the same process in the precision the mode computes in (fp32 or TF32,
bf16, fp16), the time from process start to the end of the first step, the compile time apart from the
steady state, the projected epoch time (data.num_train sequences, or the canonical split's) and the
training.epochs run time, and the losses of each step (ours exact must equal the reference's up to float
rounding: TF32 on a GPU unless training.tf32=false). Then, per mode, the speed-up and the peak-memory ratio
against the reference.

Every (implementation, mode) runs in its own process, so peak memory is its own, under `--time-limit`
seconds: a run that fails or runs out of time is reported as such and the others go on. Each run is
printed as soon as it is measured: a table row, or with `--json` one JSON line (`--out FILE` also appends
the JSON lines to FILE); the per-mode summary comes last. The reference runs with the same process-wide
numerics as ours (training.tf32, training.deterministic, and cuDNN's benchmark search on a GPU).
On a shared machine absolute times drift from minute to minute: `--repeat N` alternates reference and
modes N times and reports the median ratio with its spread.

    python -m jepa.tools.bench data.batch_size=8 --modes exact,fast,selective,full --repeat 2
    python -m jepa.tools.bench data.batch_size=2 --modes exact+compile --impl ours
    python -m jepa.tools.bench data.batch_size=64 training.device=cuda --modes exact,gpu_fast --json

A mode joins named options with "+" (BENCH_OPTIONS below), e.g. `fast+compile`; PRESETS name documented
combinations (`gpu_fast`: the fastest GPU mode candidate).
`jemalloc` and `tcmalloc` run the mode's process with that malloc loaded through LD_PRELOAD (mode_env; the
row's `malloc` names what its process had mapped).
"""

import argparse
import datetime
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode

from ..config import ConfigError, compose_config
from ..config.errors import exit_on_bad_input
from ..data import epoch_sequences
from ..performance.cpu_allocator import PRELOAD_LIBRARIES, preload_library, set_cpu_allocator
from ..performance.device import resolve_device
from ..performance.options import apply_numerics
from ..reference import Reference, copy_weights
from ..studies.cost import epoch_seconds, run_hours
from ..training.learner import AMP_DTYPES, Learner

PROCESS_START = time.time()  # as near the process's start as this module gets: imports come before

# The options a mode can join, as config overrides.
BENCH_OPTIONS = {
    "exact": [],
    "fast": ["training.mode=fast"],
    "compile": ["training.compile=true"],
    "channels_last": ["training.channels_last=true"],
    "selective": ["training.activation_checkpointing=selective"],
    "full": ["training.activation_checkpointing=full"],
    "lean": ["training.activation_checkpointing=lean"],
    "reuse": ["training.cpu_allocator=reuse"],
    "caching": ["training.cpu_allocator=caching"],
    "system_malloc": ["training.cpu_allocator=system"],
    # malloc replaced in the run's process (LD_PRELOAD, mode_env); torch's own allocator choice left alone
    "jemalloc": ["training.cpu_allocator=system"],
    "tcmalloc": ["training.cpu_allocator=system"],
    "fp16": ["training.precision=fp16"],
    "bf16": ["training.precision=bf16"],
    "strict_fp32": ["training.tf32=false"],
    "deterministic": ["training.deterministic=true"],
}
# Named combinations. gpu_fast: the fastest GPU mode candidate (bf16 autocast, channels_last, fast mode,
# torch.compile); gpu_fast_eager: the same without compile (no compile time, first step in seconds).
PRESETS = {
    "gpu_fast": "fast+bf16+channels_last+compile",
    "gpu_fast_eager": "fast+bf16+channels_last",
}


def mode_options(mode: str) -> list[str]:
    """The option names of a mode, presets expanded: "gpu_fast+lean" -> [fast, bf16, channels_last, compile, lean]."""
    names = [n for name in mode.split("+") for n in PRESETS.get(name, name).split("+")]
    unknown = [name for name in names if name not in BENCH_OPTIONS]
    if unknown:
        raise ConfigError("--modes", mode, f"options from {sorted(BENCH_OPTIONS)} or the presets {sorted(PRESETS)}, "
                          "joined with '+' (unknown: " + ", ".join(unknown) + ")")
    return names


def mode_overrides(mode: str) -> list[str]:
    return [o for name in mode_options(mode) for o in BENCH_OPTIONS[name]]


def mode_env(mode: str) -> dict[str, str]:
    """Environment of a mode's process: LD_PRELOAD of the malloc replacement it names (jemalloc, tcmalloc).
    Raises ConfigError where the library is not installed."""
    kinds = [name for name in mode_options(mode) if name in PRELOAD_LIBRARIES]
    if not kinds:
        return {}
    if len(kinds) > 1:
        raise ConfigError("--modes", mode, "at most one of jemalloc, tcmalloc")
    if (path := preload_library(kinds[0])) is None:
        raise ConfigError("--modes", mode, f"an installed {kinds[0]}: none of {PRELOAD_LIBRARIES[kinds[0]]} found "
                          "(Debian: apt-get install libjemalloc2 libtcmalloc-minimal4)")
    return {"LD_PRELOAD": path}


def matmul_precision(device: torch.device, precision: str, tf32: bool) -> str:
    """The precision a step's matmuls and convolutions mostly run in: the yardstick's precision."""
    if precision != "fp32":
        return precision
    return "tf32" if tf32 and device.type == "cuda" else "fp32"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(device: torch.device, dtype=None, n: int = 2048, reps: int = 5) -> float:
    """The n x n matmul rate: the yardstick for "how close to this machine's peak".

    In fp32 it runs in TF32 when TF32 is on (training.tf32 on a GPU), like the step's own fp32 matmuls.
    """
    if device.type == "cuda":
        reps *= 20  # a 2048^3 matmul takes well under a millisecond on a GPU
    a, b = (torch.randn(n, n, device=device, dtype=dtype or torch.float32) for _ in range(2))
    a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def plain(cfg):
    """cfg without the speed options: eager fp32, no checkpointing (what counts the model's FLOPs)."""
    cfg = OmegaConf.masked_copy(cfg, list(cfg.keys()))
    cfg.training = {**cfg.training, "precision": "fp32", "compile": False, "channels_last": False,
                    "activation_checkpointing": "none"}
    return cfg


def build_step(cfg, impl: str, device: torch.device, batch: int | None = None, speed: bool = True):
    """A closure running one training step of `impl` on a fixed synthetic batch; it returns the JEPA loss.

    Ours is the trainer's own step (jepa.training.learner.Learner.step). Both implementations start from the
    reference's initial weights, so their losses can be compared. Ours gets the training config's speed
    options (jepa.performance) unless `speed` is False; the reference always runs as written, in fp32.
    """
    m, d, t = cfg.model, cfg.data, cfg.training
    b, size = batch or d.batch_size, d.image_size
    torch.manual_seed(cfg.seed)
    video = torch.rand(b, d.frames, m.dobs, size, size, device=device)
    labels = (torch.rand(b, d.frames, 8, 8, device=device) < 0.03).float()
    net = Reference(m.dobs, m.henc, m.hpre, m.dstc, list(m.encoder_strides), size).to(device)
    if impl == "ours":
        if speed:
            set_cpu_allocator(t.cpu_allocator)  # this process benchmarks one mode: for the rest of it
        learner = Learner(cfg if speed else plain(cfg), device)
        copy_weights(net, *learner.modules)
        del net
        return lambda: learner.step(video, labels)["loss"].item()
    if speed:
        apply_numerics(t, device)  # process-wide rounding and kernel choice: the same as ours
    video_spec = video.transpose(1, 2).contiguous()  # the reference takes [B, C, T, H, W]
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.optim.lr)

    def step() -> float:
        out = net.step_losses(video_spec, labels, m.steps, cfg.loss.std_coeff, cfg.loss.cov_coeff)
        optimizer.zero_grad(set_to_none=True)
        out["total"].backward()
        optimizer.step()
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


def timed(step, device: torch.device, count: int) -> tuple[list[float], list[float]]:
    """(losses, seconds) of `count` steps, each waited for on the device."""
    losses, times = [], []
    for _ in range(count):
        start = time.perf_counter()
        losses.append(step())
        sync(device)
        times.append(time.perf_counter() - start)
    return losses, times


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
    precision = t.precision if impl == "ours" else "fp32"
    amp = AMP_DTYPES[precision]
    compiled = bool(t.compile) and impl == "ours"
    warm_losses, warm_times = timed(step, device, max(warmup, 2 if compiled else 1))
    first_step_end = time.time() - sum(warm_times[1:])  # the end of the first step
    sys0, faults0 = usage()
    losses, times = timed(step, device, steps)
    sys1, faults1 = usage()
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_cuda = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    del step
    if device.type == "cuda":
        torch.cuda.empty_cache()
    # The yardstick after the timed steps, so that its buffers do not count in the peak.
    matmul = [matmul_gflops(device, amp) for _ in range(2)]
    flops = step_flops(cfg, impl, device)  # after the peak is read: its own batch-1 step must not count
    seconds = statistics.median(times)
    batch = cfg.data.batch_size
    seq_per_s = batch / seconds
    return {
        "impl": impl, "mode": mode if impl == "ours" else "reference", "options": mode_overrides(mode)
        if impl == "ours" else [], "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "torch": torch.__version__, "cuda": torch.version.cuda, "date": datetime.date.today().isoformat(),
        "threads": torch.get_num_threads(), "batch_size": batch,
        "model": {k: cfg.model[k] for k in ("henc", "hpre", "dstc", "steps")},
        "encoder_strides": list(cfg.model.encoder_strides), "frames": cfg.data.frames,
        "precision": precision, "tf32": bool(t.tf32), "deterministic": bool(t.deterministic),
        "losses": warm_losses + losses, "warmup_step_s": warm_times, "warmup_s": sum(warm_times),
        "step_s": times, "ms_per_step": seconds * 1e3, "seq_per_s": seq_per_s,
        "first_step_end": first_step_end,
        # What the first steps took beyond the steady state: compilation (and cuDNN's algorithm search).
        "compile_s": max(0.0, sum(warm_times) - len(warm_times) * seconds) if compiled else None,
        "gflop_per_step": flops / 1e9, "tflops_per_s": flops / seconds / 1e12,
        "matmul_precision": matmul_precision(device, precision, t.tf32),
        "matmul_tflops_per_s": statistics.mean(matmul) / 1e3,
        "fraction_of_matmul_rate": flops / seconds / 1e9 / statistics.mean(matmul),
        "epoch_sequences": epoch_sequences(cfg.data), "epoch_s": epoch_seconds(cfg.data, seq_per_s),
        "epochs": t.epochs, "run_h": run_hours(cfg, seq_per_s),
        "sys_s_per_step": (sys1 - sys0) / steps, "minor_faults_per_step": (faults1 - faults0) / steps,
        "peak_rss_mb": peak_rss, "peak_rss_above_start_mb": peak_rss - rss_start, "peak_cuda_mb": peak_cuda,
    }


def loaded_malloc() -> str:
    """The malloc replacement mapped into this process (a PRELOAD_LIBRARIES library), else 'libc'."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "unknown"
    names = [name for names in PRELOAD_LIBRARIES.values() for name in names]
    return next((name for name in names if f"/{name}" in maps), "libc")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "cpu"


def peak_mb(row: dict) -> float:
    return row["peak_cuda_mb"] if row["peak_cuda_mb"] is not None else row["peak_rss_above_start_mb"]


def compare(rows: list[dict]) -> dict:
    """Per mode: median and range over rounds of the speed-up and memory ratio against the reference."""
    rows = [r for r in rows if "error" not in r]
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
        # Compiled modes take one more warm-up step: compare the steps both ran.
        loss_diff = max(
            abs(a - b) / abs(b) for k in both for a, b in zip(ours[k]["losses"], refs[k]["losses"], strict=False)
        )
        out[mode] = {
            "speedup": statistics.median(speedups), "speedup_range": [min(speedups), max(speedups)],
            "memory_ratio": statistics.median(memory), "memory_ratio_range": [min(memory), max(memory)],
            "max_rel_loss_diff": loss_diff,
        }
    return out


COLUMNS = ["round", "impl", "mode", "ms_per_step", "seq_per_s", "peak_mb", "tflops_per_s", "malloc", "matmul_precision",
           "fraction_of_matmul_rate", "first_step_s", "compile_s", "epoch_s", "run_h"]
SUMMARY_COLUMNS = ["mode", "speedup (median, range)", "memory ratio (median, range)", "max rel. loss diff"]


def fmt(v) -> str:
    if isinstance(v, list):
        return "-".join(f"{x:.3g}" for x in v)
    return f"{v:.3g}" if isinstance(v, float) else "-" if v is None else str(v)


def table_header() -> str:
    return "\n".join([" | ".join(COLUMNS), " | ".join("---" for _ in COLUMNS)])


def table_row(row: dict) -> str:
    if "error" in row:
        return " | ".join([str(row["round"]), row["impl"], row["mode"], f"**{row['error']}**"]
                          + ["" for _ in COLUMNS[4:]])
    return " | ".join(fmt(peak_mb(row) if c == "peak_mb" else row.get(c)) for c in COLUMNS)


def summary_table(summary: dict) -> str:
    lines = [" | ".join(SUMMARY_COLUMNS), " | ".join("---" for _ in SUMMARY_COLUMNS)]
    lines += [f"{mode} | {s['speedup']:.2f} ({fmt(s['speedup_range'])}) | {s['memory_ratio']:.3f} "
              f"({fmt(s['memory_ratio_range'])}) | {s['max_rel_loss_diff']:.1e}" for mode, s in summary.items()]
    return "\n".join(lines)


def table(rows: list[dict], summary: dict) -> str:
    return "\n".join([table_header(), *map(table_row, rows), "", summary_table(summary)])


def run_group(cmd: list[str], timeout: float | None, **kwargs) -> subprocess.CompletedProcess:
    """subprocess.run in a process group of its own: on timeout the whole group goes (compile workers too)."""
    with subprocess.Popen(cmd, start_new_session=True, **kwargs) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def run_one(overrides: list[str], impl: str, mode: str, steps: int, warmup: int, time_limit: float | None) -> dict:
    """One (impl, mode) in its own process; a failure or a timeout comes back as a row with an `error`."""
    cmd = [sys.executable, "-m", "jepa.tools.bench", *overrides, "--impl", impl, "--modes", mode,
           "--steps", str(steps), "--warmup", str(warmup), "--in-process"]
    env = {**os.environ, **mode_env(mode)} if impl == "ours" else None
    mode = mode if impl == "ours" else "reference"
    start = time.time()
    try:
        done = run_group(cmd, time_limit, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    except subprocess.TimeoutExpired:
        return {"impl": impl, "mode": mode, "error": f"timed out after {time_limit:g} s", "wall_s": time.time() - start}
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"{' '.join(cmd)} failed:\n{done.stderr[-4000:]}", file=sys.stderr, flush=True)
        return {"impl": impl, "mode": mode, "error": f"failed (exit {done.returncode}): {last[:200]}",
                "wall_s": time.time() - start}
    row = json.loads(done.stdout.strip().splitlines()[-1])
    # From the command's start (interpreter and imports included) to the end of the first training step.
    row["first_step_s"] = row.pop("first_step_end") - start
    row["wall_s"] = time.time() - start
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data.batch_size=8 experiment=quick")
    parser.add_argument("--impl", choices=["ours", "reference", "both"], default="both")
    parser.add_argument("--modes", default="exact", help="comma-separated modes of ours, e.g. exact,gpu_fast")
    parser.add_argument("--repeat", type=int, default=1, help="rounds alternating reference and modes")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per run (their median is reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (2 at least with compile)")
    parser.add_argument("--time-limit", type=float, default=None, help="seconds per run; a run past it is "
                        "reported as timed out and the others go on")
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of table rows")
    parser.add_argument("--out", type=Path, help="also append each run's JSON line to this file as it finishes")
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)  # one run, for the driver
    args = parser.parse_args(argv)
    modes = args.modes.split(",")
    if args.in_process:
        return _measure_in_process(args, modes[0])
    return exit_on_bad_input(lambda: _run_all(args, _planned_runs(args, modes)), args.overrides)


def _measure_in_process(args, mode: str) -> int:
    cfg = compose_config([*args.overrides, *mode_overrides(mode)])
    row = measure(cfg, args.impl, mode, args.steps, args.warmup)
    row["malloc"] = loaded_malloc()
    print(json.dumps(row))
    return 0


def _planned_runs(args, modes: list[str]) -> list[tuple[str, str]]:
    """The (impl, mode) runs of one round, every argument and config checked before any runs."""
    for option, value, least in (("--steps", args.steps, 1), ("--warmup", args.warmup, 0),
                                 ("--repeat", args.repeat, 1)):
        if value < least:
            raise ConfigError(option, value, f"an integer >= {least}")
    if args.time_limit is not None and not args.time_limit > 0:
        raise ConfigError("--time-limit", args.time_limit, "a number of seconds > 0")
    if args.out is not None and (args.out.is_dir() or not args.out.parent.is_dir()):
        raise ConfigError("--out", str(args.out), "a file in an existing folder (JSON lines are appended to it)")
    runs = ([("reference", "exact")] if args.impl != "ours" else [])
    runs += [("ours", mode) for mode in modes] if args.impl != "reference" else []
    for _, mode in runs:
        compose_config([*args.overrides, *mode_overrides(mode)])  # refuse a bad config before any run
        mode_env(mode)  # and a missing malloc library
    return runs


def _run_all(args, runs: list[tuple[str, str]]) -> int:
    if not args.json:
        print(table_header(), flush=True)
    rows = []
    for round_ in range(args.repeat):
        for impl, mode in runs:
            row = {"round": round_, **run_one(args.overrides, impl, mode, args.steps, args.warmup, args.time_limit)}
            rows.append(row)
            line = json.dumps(row)
            if args.out:
                with args.out.open("a") as f:
                    f.write(line + "\n")
            print(line if args.json else table_row(row), flush=True)
    summary = compare(rows)
    if args.json:
        print(json.dumps({"summary": summary}), flush=True)
    else:
        print("\n" + summary_table(summary), flush=True)
    if args.out:
        with args.out.open("a") as f:
            f.write(json.dumps({"summary": summary}) + "\n")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
