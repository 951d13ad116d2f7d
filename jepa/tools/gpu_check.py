"""The one-shot GPU check: `python -m jepa.tools.gpu_check --out DIR` on any one-GPU machine.

Within about 8 minutes (`--budget`), each step under its own time limit and written to DIR as it finishes:
    1. environment.json  the GPU, torch, CUDA and cuDNN versions
    2. bench.jsonl       the benchmark of the published default at batch 64 (python -m jepa.tools.bench):
                         the literal reference, exact fp32, the fastest mode without compile (gpu_fast_eager)
                         and with it (gpu_fast) twice: the second run shows what the compile cache saves
    3. train_*/          a short training of the published model (1 epoch of 2,000 generated sequences,
                         offline digits) in exact fp32 and in the fastest mode's math without compile
                         (gpu_fast_eager): epoch time and val mAP
    4. cuda_tests.log    the CUDA tests (tests/test_cuda.py, marker `cuda`) when run from a checkout, with
                         what is left of the budget
and then DIR/summary.md: sequences/s, speed-up, peak memory, TFLOP/s, first-step and compile time,
projected epoch and 50-epoch time, mAP, and each GPU goal of docs/performance.md marked met or not.
A step that fails or runs out of time is reported as such; the rest go on.

Without a CUDA device it refuses, unless `--allow-cpu`: a dry run of every step at tiny sizes on the CPU
(minutes), which checks the machinery and the summary, not the numbers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from .bench import compare, cpu_name, run_group

REPO = Path(__file__).resolve().parents[2]
GPU = {
    "bench": ["experiment=published", "training.device=cuda", "data.batch_size=64"],
    "modes": ["exact", "gpu_fast_eager", "gpu_fast", "gpu_fast"],
    "train": ["experiment=published", "data=generated", "data.digits=builtin", "data.num_train=2000",
              "data.num_val=500", "training.epochs=1", "training.device=cuda"],
    # The fastest mode's math without compile (compile changes rounding only, and would compile the
    # evaluation graphs too): the mAP comparison with exact fp32.
    "train_modes": {"exact": [], "gpu_fast_eager": ["training.mode=fast", "training.precision=bf16",
                                                    "training.channels_last=true"]},
    "limits": {"tests": 180, "bench_run": 150, "bench": 270, "train": 90},
}
TINY = ["experiment=quick", "model.henc=4", "model.hpre=4", "model.dstc=4", "model.steps=2"]
CPU = {
    "bench": [*TINY, "data.batch_size=2"],
    "modes": ["exact", "gpu_fast_eager"],  # compile on a CPU takes minutes: left out of the dry run
    "train": [*TINY, "data.num_train=32", "data.num_val=16", "data.batch_size=8", "training.epochs=1"],
    "train_modes": {"exact": [], "gpu_fast_eager": ["training.mode=fast", "training.precision=bf16"]},
    "limits": {"tests": 180, "bench_run": 300, "bench": 900, "train": 300},
}
# The goals (docs/performance.md), at batch 64 against the literal reference on the same GPU.
SPEEDUP_FASTEST, SPEEDUP_EXACT, MEMORY_FASTEST, FIRST_STEP_S = 5.0, 1.5, 0.5, 30.0


class Check:
    def __init__(self, out: Path, budget_s: float, plan: dict, cpu: bool):
        self.out, self.plan, self.cpu = out, plan, cpu
        self.deadline = time.monotonic() + budget_s
        self.log = (out / "gpu_check.log").open("a")

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def say(self, message: str) -> None:
        line = f"[{datetime.datetime.now():%H:%M:%S}] {message}"
        print(line, flush=True)
        self.log.write(line + "\n")
        self.log.flush()

    def run(self, name: str, cmd: list[str], limit: float, log: Path) -> dict:
        """A step's command under min(limit, what is left of the budget); its output goes to `log`."""
        limit = min(limit, self.remaining())
        if limit < 5:
            self.say(f"{name}: skipped, the budget is spent")
            return {"status": "skipped (budget spent)", "seconds": 0.0}
        self.say(f"{name}: {' '.join(cmd[2:])} (limit {limit:.0f} s)")
        start = time.monotonic()
        with log.open("w") as f:
            try:
                done = run_group(cmd, limit, stdout=f, stderr=subprocess.STDOUT, cwd=REPO)
                status = "ok" if done.returncode == 0 else f"failed (exit {done.returncode})"
            except subprocess.TimeoutExpired:
                status = f"timed out after {limit:.0f} s"
        seconds = time.monotonic() - start
        self.say(f"{name}: {status} in {seconds:.0f} s (log: {log.name})")
        return {"status": status, "seconds": seconds}


def environment(cpu: bool) -> dict:
    env = {"date": datetime.date.today().isoformat(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
           "python": sys.version.split()[0]}
    if torch.cuda.is_available() and not cpu:
        props = torch.cuda.get_device_properties(0)
        env.update(device=torch.cuda.get_device_name(0), memory_gb=props.total_memory / 1e9,
                   devices_visible=torch.cuda.device_count())
    else:

        env.update(device=f"{cpu_name()} (CPU, {torch.get_num_threads()} threads)")
    return env


def tests_step(check: Check) -> dict:
    tests = REPO / "tests" / "test_cuda.py"
    if not tests.exists():
        check.say("cuda tests: skipped, tests/ is not here (run the check from a checkout)")
        return {"status": "skipped (no tests/ folder: not a checkout)"}
    log = check.out / "cuda_tests.log"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda", "-rs", str(tests)]
    result = check.run("cuda tests", cmd, check.plan["limits"]["tests"], log)
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    result["summary"] = lines[-1].strip("= ") if lines else ""
    return result


def bench_step(check: Check) -> tuple[dict, list[dict]]:
    path = check.out / "bench.jsonl"
    path.unlink(missing_ok=True)
    modes, per_run = check.plan["modes"], check.plan["limits"]["bench_run"]
    cmd = [sys.executable, "-m", "jepa.tools.bench", *check.plan["bench"],
           f"training.compile_cache_dir={check.out / 'inductor'}", "--modes", ",".join(modes),
           "--steps", "3", "--warmup", "2", "--time-limit", str(per_run), "--json", "--out", str(path)]
    result = check.run("bench", cmd, check.plan["limits"]["bench"], check.out / "bench.log")
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return result, [r for r in rows if "impl" in r]


def train_step(check: Check, name: str, extra: list[str]) -> dict:
    folder = check.out / f"train_{name}"
    cmd = [sys.executable, "-m", "jepa.train", *check.plan["train"], *extra, "logging.mode=disabled",
           "training.progress=false", f"training.compile_cache_dir={check.out / 'inductor'}",
           f"hydra.run.dir={folder}"]
    result = check.run(f"training ({name})", cmd, check.plan["limits"]["train"], check.out / f"train_{name}.log")
    path = folder / "results.json"
    if path.exists():
        final = json.loads(path.read_text()).get("final") or {}
        result.update({k: final.get(k) for k in ("val/mAP", "time/train_s", "time/epoch_s", "time/seq_per_s")})
    return result


def f(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def summary(env: dict, tests: dict, bench: dict, rows: list[dict], training: dict[str, dict], cpu: bool) -> str:
    """The Markdown summary of the check."""
    lines = [f"# GPU check: {env['device']}, {env['date']}", ""]
    if cpu:
        lines += ["**Dry run on the CPU at tiny sizes (--allow-cpu): checks the machinery, measures no GPU.**", ""]
    lines += [f"torch {env['torch']}, CUDA {env['cuda']}, cuDNN {env['cudnn']}, Python {env['python']}", "",
              f"CUDA tests: {tests.get('status')}: {tests.get('summary', '')}", "",
              f"## Benchmark ({bench.get('status')}): training steps, synthetic batch, one process per run", ""]
    ref = next((r for r in rows if r["impl"] == "reference" and "error" not in r), None)
    header = ["run", "seq/s", "speed-up", "ms/step", "peak GB", "memory ratio", "TFLOP/s",
              "of matmul rate (precision)", "first step s", "compile s", "epoch s", "50-epoch h", "max rel. loss diff"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    seen: dict[str, int] = {}
    for row in rows:
        seen[row["mode"]] = seen.get(row["mode"], 0) + 1
        name = row["mode"] + (" (cache warm)" if seen[row["mode"]] > 1 else "")
        if "error" in row:
            lines.append(f"| {name} | **{row['error']}** |" + " |" * (len(header) - 2))
            continue
        peak = row["peak_cuda_mb"] if row["peak_cuda_mb"] is not None else row["peak_rss_above_start_mb"]
        ref_peak = None if ref is None else (ref["peak_cuda_mb"] or ref["peak_rss_above_start_mb"])
        diff = compare([{"round": 0, **ref}, {"round": 0, **row}]) if ref and row is not ref else {}
        cells = [name, f(row["seq_per_s"], 4), f(ref and ref["ms_per_step"] / row["ms_per_step"]),
                 f(row["ms_per_step"], 4), f(peak / 1024), f(ref_peak and peak / ref_peak), f(row["tflops_per_s"]),
                 f"{row['fraction_of_matmul_rate']:.3f} ({row['matmul_precision']}, "
                 f"{row['matmul_tflops_per_s']:.3g} TFLOP/s)", f(row.get("first_step_s")), f(row.get("compile_s")),
                 f(row["epoch_s"], 4), f(row["run_h"]),
                 f"{next(iter(diff.values()))['max_rel_loss_diff']:.1e}" if diff else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    if rows and "error" not in rows[0]:
        r0 = rows[0]
        lines += ["", f"Batch {r0['batch_size']}, model {r0['model']}, {r0['frames']} frames; epoch: "
                  f"{r0['epoch_sequences']} sequences; run: {r0['epochs']} epochs (training time only)."]
    lines += ["", "## Short training (1 epoch)", "", "| mode | status | train s | seq/s | val mAP |",
              "|---|---|---|---|---|"]
    for name, r in training.items():
        lines.append(f"| {name} | {r['status']} | {f(r.get('time/train_s'))} | {f(r.get('time/seq_per_s'))} | "
                     f"{f(r.get('val/mAP'), 4)} |")
    lines += ["", "## Goals", ""]
    if cpu:
        lines += ["Computed from the CPU dry run: they show the check works and say nothing about a GPU.", ""]
    lines += [f"- {g}" for g in goals(rows, training)]
    return "\n".join(lines) + "\n"


def goals(rows: list[dict], training: dict[str, dict]) -> list[str]:
    ok = [r for r in rows if "error" not in r]
    ref = next((r for r in ok if r["impl"] == "reference"), None)
    ours = [r for r in ok if r["impl"] == "ours"]
    if ref is None or not ours:
        return ["not measured: the benchmark has no reference or no run of ours"]
    fastest = max(ours, key=lambda r: r["seq_per_s"])
    exact = next((r for r in ours if r["mode"] == "exact"), None)

    def mark(met: bool) -> str:
        return "**met**" if met else "**not met**"

    speed = fastest["seq_per_s"] / ref["seq_per_s"]
    out = [f"fastest mode ({fastest['mode']}) >= {SPEEDUP_FASTEST:g}x the reference: {speed:.2f}x {mark(speed >= 5)}"]
    if exact:
        s = exact["seq_per_s"] / ref["seq_per_s"]
        out.append(f"exact fp32 >= {SPEEDUP_EXACT:g}x: {s:.2f}x {mark(s >= SPEEDUP_EXACT)}")
    if fastest["peak_cuda_mb"] and ref["peak_cuda_mb"]:
        m = fastest["peak_cuda_mb"] / ref["peak_cuda_mb"]
        out.append(f"fastest mode's peak GPU memory <= {MEMORY_FASTEST:g} of the reference's: {m:.3f} "
                   f"{mark(m <= MEMORY_FASTEST)}")
    eager = [r for r in ok if not r.get("compile_s") and r.get("first_step_s") is not None]
    if eager:
        worst = max(r["first_step_s"] for r in eager)
        out.append(f"first training step within {FIRST_STEP_S:g} s without compile: at most {worst:.1f} s "
                   f"{mark(worst < FIRST_STEP_S)}")
    compiled = [r for r in ok if r.get("compile_s") is not None]
    if len(compiled) >= 2:
        cold, warm = compiled[0]["compile_s"], compiled[1]["compile_s"]
        out.append(f"compiled code cached: compile {cold:.0f} s cold, {warm:.0f} s with the cache "
                   f"{mark(warm < cold / 2)}")
    maps = {k: r.get("val/mAP") for k, r in training.items()}
    if len(maps) == 2 and None not in maps.values():
        (a, x), (b, y) = maps.items()
        out.append(f"val mAP after 1 epoch: {a} {x:.4f}, {b} {y:.4f} (difference {y - x:+.4f}; one seed each: "
                   "compare with the seed spread in docs/performance.md)")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jepa.tools.gpu_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for the results and summary.md")
    parser.add_argument("--budget", type=float, default=480, help="seconds for the whole check (default 8 min)")
    parser.add_argument("--allow-cpu", action="store_true", help="without a GPU: a dry run at tiny sizes")
    parser.add_argument("--skip-tests", action="store_true", help="leave out the CUDA tests")
    args = parser.parse_args(argv)
    cpu = not torch.cuda.is_available()
    if cpu and not args.allow_cpu:
        print("no CUDA device visible: the GPU check measures a GPU. Run it on a GPU machine, or pass "
              "--allow-cpu for a dry run of its steps at tiny sizes on the CPU.", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    check = Check(args.out, args.budget, CPU if cpu else GPU, cpu)
    env = environment(cpu)
    (args.out / "environment.json").write_text(json.dumps(env, indent=2))
    check.say(f"GPU check on {env['device']}, torch {env['torch']}, CUDA {env['cuda']}")
    # The measurements first, then the tests with what is left of the budget.
    bench, rows = bench_step(check)
    training = {name: train_step(check, name, extra) for name, extra in check.plan["train_modes"].items()}
    tests = {"status": "skipped (--skip-tests)"} if args.skip_tests else tests_step(check)
    text = summary(env, tests, bench, rows, training, cpu)
    (args.out / "summary.md").write_text(text)
    check.say(f"summary: {args.out / 'summary.md'}")
    print(text)
    failed = [s for s in (tests, bench, *training.values()) if not s["status"].startswith(("ok", "skipped"))]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
