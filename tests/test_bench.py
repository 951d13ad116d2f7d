"""The GPU path on the CPU: numerics switches, the compile cache, presets, one step in each precision and mode,
the streaming benchmark and its time limit, and the GPU check's summary (tests/test_cuda.py runs on a GPU)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from jepa.config import ConfigError
from jepa.data import make_loader
from jepa.performance.cpu_allocator import preload_library
from jepa.performance.options import apply_numerics, compile_cache, set_deterministic, set_tf32
from jepa.tools import bench, gpu_check
from jepa.tools.bench import measure, mode_env, mode_options, mode_overrides, run_group, run_one
from jepa.training import Trainer
from jepa.training.epoch_eval import device_batches
from tests.conftest import TINY


@pytest.fixture
def torch_defaults():
    yield
    set_tf32(True)
    set_deterministic(False)


@pytest.mark.parametrize("kind", ["jemalloc", "tcmalloc"])
def test_malloc_modes_preload_an_installed_library_into_their_process(kind):
    path = preload_library(kind)
    if path is None:
        pytest.skip(f"{kind} is not installed here (Debian: apt-get install libjemalloc2 libtcmalloc-minimal4)")
    assert Path(path).is_file()
    assert mode_env(kind) == {"LD_PRELOAD": path} and mode_env("exact") == mode_env("caching") == {}
    assert mode_overrides(kind) == ["training.cpu_allocator=system"]  # no mallopt tuning under it
    probe = "from jepa.tools.bench import loaded_malloc; print(loaded_malloc())"
    mapped = subprocess.run([sys.executable, "-c", probe],
                            env={**os.environ, **mode_env(kind)}, capture_output=True, text=True, check=True)
    assert mapped.stdout.strip() == Path(path).name
    with pytest.raises(ConfigError, match="at most one"):
        mode_env("jemalloc+tcmalloc")


def test_presets_expand_to_their_options():
    assert mode_options("gpu_fast") == ["fast", "bf16", "channels_last", "compile"]
    assert mode_options("gpu_fast_eager+deterministic") == ["fast", "bf16", "channels_last", "deterministic"]
    assert "training.tf32=false" in mode_overrides("exact+strict_fp32")
    with pytest.raises(ConfigError, match="--modes='gpu_slow' is invalid: .*presets.*unknown: gpu_slow"):
        mode_overrides("gpu_slow")



@pytest.mark.parametrize("args, says", [
    (["--modes", "bogus"], "--modes='bogus' is invalid"),
    (["--modes", ""], "--modes='' is invalid"),
    (["--steps", "0"], "--steps=0 is invalid: an integer >= 1"),
    (["--warmup", "-1"], "--warmup=-1 is invalid: an integer >= 0"),
    (["--repeat", "0"], "--repeat=0 is invalid: an integer >= 1"),
    (["--time-limit", "-1"], "--time-limit=-1.0 is invalid"),
    (["--out", "DIR"], "--out='DIR' is invalid: a file in an existing folder"),
    (["model.hencc=3"], "model.hencc is not a key of the config: did you mean model.henc"),
    (["training.epochs=-1"], "training.epochs=-1 is invalid"),
])
def test_bench_refuses_bad_arguments_before_any_run(tmp_path, capsys, args, says):
    """Exit 2 with one line naming the bad value, before any run starts (nothing is printed to stdout)."""
    args = [a.replace("DIR", str(tmp_path)) for a in args]
    assert bench.main([*TINY, *args]) == 2
    out, err = capsys.readouterr()
    assert says.replace("DIR", str(tmp_path)) in err and err.startswith("configuration error: ") and out == ""

def test_strict_fp32_and_deterministic_switches(tiny_cfg, torch_defaults, monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    apply_numerics(tiny_cfg("training.tf32=false", "training.deterministic=true").training, torch.device("cpu"))
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert torch.get_float32_matmul_precision() == "highest"
    assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    apply_numerics(tiny_cfg().training, torch.device("cpu"))
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert torch.backends.cuda.matmul.fp32_precision == "tf32" and torch.backends.cudnn.conv.fp32_precision == "tf32"
    assert not torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.deterministic


def test_compile_cache_points_inductor_at_the_configured_folder(tiny_cfg, tmp_path, monkeypatch):
    import torch._inductor.config as inductor_config

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setattr(inductor_config, "fx_graph_cache", False)
    folder = compile_cache(tiny_cfg(f"training.compile_cache_dir={tmp_path / 'c'}").training)
    assert folder.is_dir() and os.environ["TORCHINDUCTOR_CACHE_DIR"] == str((tmp_path / "c").resolve())
    assert inductor_config.fx_graph_cache
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    assert cache_dir() == str((tmp_path / "c").resolve())  # where Inductor writes its FX graphs and kernels
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "env"))
    assert compile_cache(tiny_cfg().training) == tmp_path / "env"  # null: the environment's, else ~/.cache


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_one_cpu_training_step_in_each_precision_and_mode(tiny_cfg, tmp_path, precision, mode):
    cfg = tiny_cfg(f"training.precision={precision}", f"training.mode={mode}")
    trainer = Trainer(cfg, tmp_path)
    loader = make_loader(trainer.train_ds, cfg.data.batch_size, shuffle=True, seed=cfg.seed, drop_last=True)
    before = [p.detach().clone() for p in trainer.learner.model.parameters()]
    losses = trainer.train_step(*next(device_batches(loader, trainer.device)))
    assert all(torch.isfinite(v) for v in losses.values())
    assert trainer.learner.scaler.is_enabled() == (precision == "fp16")  # fp16 scales its gradients
    moved = any(not torch.equal(a, p) for a, p in zip(before, trainer.learner.model.parameters(), strict=True))
    # fp16 gradients at the GradScaler's initial scale (2^16) may overflow: the step is then skipped, scale halved.
    assert moved or (precision == "fp16" and trainer.learner.scaler.get_scale() < 2.0**16)


def test_measure_reports_throughput_memory_and_projections(tiny_cfg):
    cfg = tiny_cfg(*mode_overrides("gpu_fast_eager"), "data.batch_size=2")
    row = measure(cfg, "ours", "gpu_fast_eager", steps=1, warmup=1)
    assert row["precision"] == "bf16" and row["matmul_precision"] == "bf16" and row["device"] == "cpu"
    assert row["options"] == ["training.mode=fast", "training.precision=bf16", "training.channels_last=true"]
    assert row["tflops_per_s"] > 0 and row["fraction_of_matmul_rate"] > 0 and row["peak_rss_mb"] > 0
    assert row["epoch_sequences"] == 32 and row["epoch_s"] == pytest.approx(32 / row["seq_per_s"])
    assert row["run_h"] == pytest.approx(2 * row["epoch_s"] / 3600) and row["compile_s"] is None
    assert row["first_step_end"] <= time.time()


def test_a_run_past_its_time_limit_is_reported_and_its_processes_end():
    start = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        run_group([sys.executable, "-c", "import time; time.sleep(60)"], 1)
    assert time.monotonic() - start < 30
    row = run_one(TINY, "ours", "exact", steps=1, warmup=1, time_limit=0.5)
    assert row["error"] == "timed out after 0.5 s" and row["mode"] == "exact"


def test_bench_prints_each_run_as_it_finishes(monkeypatch, capsys, tmp_path):
    finished = []

    def fake_run(overrides, impl, mode, steps, warmup, time_limit):
        out = capsys.readouterr().out  # what was printed before this run started
        finished.append(out.count("\n"))
        if mode == "fast":
            return {"impl": impl, "mode": mode, "error": f"timed out after {time_limit:g} s"}
        return {"impl": impl, "mode": mode if impl == "ours" else "reference", "ms_per_step": 10.0,
                "seq_per_s": 100.0, "losses": [1.0], "peak_cuda_mb": None, "peak_rss_above_start_mb": 5.0}

    monkeypatch.setattr(bench, "run_one", fake_run)
    out = tmp_path / "bench.jsonl"
    rc = bench.main([*TINY, "--modes", "exact,fast,bf16", "--time-limit", "7", "--json", "--out", str(out)])
    assert rc == 1  # one run timed out, the others were measured
    assert finished == [0, 1, 1, 1]  # each run's line was out before the next run started
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r.get("mode") for r in lines[:4]] == ["reference", "exact", "fast", "bf16"]
    assert lines[2]["error"] == "timed out after 7 s"
    assert set(lines[4]["summary"]) == {"exact", "bf16"}


def rows_for_summary():
    common = {"impl": "ours", "batch_size": 64, "model": {"steps": 4}, "frames": 10, "epoch_sequences": 18000,
              "epochs": 50, "peak_rss_above_start_mb": 0.0, "matmul_precision": "tf32", "matmul_tflops_per_s": 47.0,
              "tflops_per_s": 25.0, "fraction_of_matmul_rate": 0.5, "first_step_s": 12.0, "compile_s": None}

    def row(mode, seq, peak, **extra):
        ms = 64 / seq * 1e3
        return {**common, "mode": mode, "seq_per_s": seq, "ms_per_step": ms, "peak_cuda_mb": peak,
                "epoch_s": 18000 / seq, "run_h": 50 * 18000 / seq / 3600, "losses": [1.0, 1.0], **extra}

    return [row("reference", 119.0, 56000.0, impl="reference"), row("exact", 190.0, 50000.0),
            row("gpu_fast", 700.0, 20000.0, compile_s=80.0), row("gpu_fast", 710.0, 20000.0, compile_s=5.0)]


def test_gpu_check_summary_marks_each_goal():
    env = {"device": "Some GPU", "date": "2026-12-04", "torch": "2.x", "cuda": "13", "cudnn": 1, "python": "3"}
    training = {"exact": {"status": "ok", "val/mAP": 0.30}, "gpu_fast": {"status": "ok", "val/mAP": 0.29}}
    text = gpu_check.summary(env, {"status": "ok", "summary": "19 passed"}, {"status": "ok"}, rows_for_summary(),
                             training, cpu=False)
    assert "# GPU check: Some GPU, 2026-12-04" in text and "gpu_fast (cache warm)" in text
    assert "5.97x **met**" in text  # 710 / 119
    assert "exact fp32 >= 1.5x: 1.60x **met**" in text
    assert "0.357 **met**" in text and "compile 80 s cold, 5 s with the cache **met**" in text
    assert "first training step within 30 s without compile: at most 12.0 s **met**" in text
    assert "difference -0.0100" in text


def test_gpu_check_refuses_without_a_gpu(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible")
    assert gpu_check.main(["--out", str(tmp_path)]) == 2
    assert "no CUDA device visible" in capsys.readouterr().err and not any(tmp_path.iterdir())


@pytest.mark.slow  # a few minutes on 2 cores: 3 benchmark processes and 2 short trainings
def test_gpu_check_dry_run_on_the_cpu_writes_its_summary(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible: the dry run is for machines without one")
    assert gpu_check.main(["--out", str(tmp_path), "--allow-cpu", "--skip-tests"]) == 0
    text = (tmp_path / "summary.md").read_text()
    assert "Dry run on the CPU" in text and "| gpu_fast_eager |" in text and "val mAP after 1 epoch" in text
    assert len((tmp_path / "bench.jsonl").read_text().splitlines()) == 4  # 3 runs and the summary


@pytest.mark.slow  # compiles a tiny model twice on the CPU: minutes
def test_a_second_process_loads_the_compiled_code_from_the_cache(tmp_path):
    overrides = [*TINY, "data.batch_size=2", f"training.compile_cache_dir={tmp_path / 'cache'}"]
    cold = run_one(overrides, "ours", "exact+compile", steps=1, warmup=2, time_limit=1200)
    assert "error" not in cold, cold["error"]
    assert (tmp_path / "cache" / "fxgraph").is_dir() and any((tmp_path / "cache" / "fxgraph").iterdir())
    warm = run_one(overrides, "ours", "exact+compile", steps=1, warmup=2, time_limit=1200)
    assert warm["compile_s"] < cold["compile_s"] / 2, (cold["compile_s"], warm["compile_s"])
    assert warm["losses"] == cold["losses"]


def test_the_gpu_fast_experiment_is_the_published_default_with_the_bench_preset():
    from jepa.config import compose_config

    preset = compose_config(["experiment=published", "training.device=cuda", *mode_overrides("gpu_fast")])
    assert compose_config(["experiment=gpu_fast"]) == preset
