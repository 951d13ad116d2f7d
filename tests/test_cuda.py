"""The GPU path on a CUDA device: every precision and mode trains, exact mode equals the reference up to TF32
rounding, a deterministic run resumes bitwise, the fastest mode's peak memory is at most half the
reference's, and a local sweep runs on the GPU.

Marked `cuda` and skipped where no CUDA device is visible (CI); `python -m jepa.tools.gpu_check` runs
them on a GPU machine. Sizes are small so that the whole file takes a minute or two on one GPU.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from jepa.config import compose_config
from jepa.data import make_loader
from jepa.performance.options import set_deterministic, set_tf32
from jepa.tools.bench import build_step, mode_overrides, run_one
from jepa.training import StopRequested, Trainer
from jepa.training.epoch_eval import device_batches
from tests.conftest import TINY
from tests.test_train import StopAfter

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible"),
]
REPO = Path(__file__).resolve().parents[1]
ON_GPU = [*TINY, "training.device=cuda"]
# The published model (henc 32, hpre 32, dstc 16, steps 4) on ten 64x64 frames, at a small batch.
PUBLISHED = ["experiment=published", "training.device=cuda", "data.batch_size=16"]


@pytest.fixture(autouse=True)
def torch_defaults():
    """apply_numerics sets process-wide switches: put the defaults back after each test."""
    yield
    set_tf32(True)
    set_deterministic(False)
    torch.backends.cudnn.benchmark = False


def one_step(cfg, tmp_path: Path) -> tuple[Trainer, dict]:
    trainer = Trainer(cfg, tmp_path)
    loader = make_loader(trainer.train_ds, cfg.data.batch_size, shuffle=True, seed=cfg.seed, drop_last=True)
    video, labels = next(device_batches(loader, trainer.device))
    return trainer, trainer.train_step(video, labels)


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("mode", ["exact", "fast", "fast+channels_last", "strict_fp32+deterministic"])
def test_one_training_step_in_each_precision_and_mode(tmp_path, precision, mode):
    cfg = compose_config([*ON_GPU, f"training.precision={precision}", *mode_overrides(mode)])
    trainer, losses = one_step(cfg, tmp_path)
    assert trainer.device.type == "cuda" and next(trainer.learner.model.parameters()).is_cuda
    assert all(math.isfinite(v.item()) for v in losses.values()), losses
    assert trainer.learner.scaler.is_enabled() == (precision == "fp16")
    if precision == "fp16":
        assert trainer.learner.scaler.get_scale() > 0


def test_the_fastest_preset_trains_compiled(tmp_path):
    cfg = compose_config([*ON_GPU, *mode_overrides("gpu_fast"), f"training.compile_cache_dir={tmp_path / 'cache'}"])
    trainer, losses = one_step(cfg, tmp_path / "run")
    assert trainer.learner.model.encoder._compiled_call_impl is not None
    assert all(math.isfinite(v.item()) for v in losses.values())
    assert any((tmp_path / "cache").iterdir())  # compiled code kept for the next process


@pytest.mark.parametrize("tf32,rtol", [(True, 1e-2), (False, 1e-4)])
def test_exact_mode_gives_the_reference_losses(tf32, rtol):
    """Three steps from the same weights on the same batch; TF32 rounds both to about 1e-3."""
    cfg = compose_config([*PUBLISHED, "data.batch_size=4", f"training.tf32={str(tf32).lower()}"])
    device = torch.device("cuda")
    reference = build_step(cfg, "reference", device)
    ref_losses = [reference() for _ in range(3)]
    del reference
    ours = build_step(cfg, "ours", device)
    our_losses = [ours() for _ in range(3)]
    for a, b in zip(our_losses, ref_losses, strict=True):
        assert abs(a - b) <= rtol * abs(b), (our_losses, ref_losses)




def comparable(record: dict) -> dict:
    return {k: v for k, v in record.items() if not k.startswith("time/")}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_deterministic_run_stopped_and_resumed_ends_with_the_same_metrics(tmp_path, precision):
    cfg = compose_config([*ON_GPU, "training.deterministic=true", f"training.precision={precision}"])
    straight = Trainer(cfg, tmp_path / "straight").fit()
    with pytest.raises(StopRequested):
        StopAfter(cfg, tmp_path / "resumed").fit()
    resumed = Trainer(cfg, tmp_path / "resumed").fit()
    assert resumed["resumed"] == 1 and resumed["global_step"] == straight["global_step"]
    assert comparable(resumed["final"]) == comparable(straight["final"])


def test_peak_memory_and_time_to_first_step_against_the_reference():
    """Each in its own process: the fastest eager mode at most half the reference's peak, first step in 30 s."""
    runs = [("reference", "exact"), ("ours", "exact"), ("ours", "gpu_fast_eager")]
    rows = {f"{impl} {mode}": run_one(PUBLISHED, impl, mode, steps=2, warmup=1, time_limit=180) for impl, mode in runs}
    assert not [r["error"] for r in rows.values() if "error" in r]
    ref = rows["reference exact"]["peak_cuda_mb"]
    assert rows["ours exact"]["peak_cuda_mb"] <= ref
    assert rows["ours gpu_fast_eager"]["peak_cuda_mb"] <= 0.5 * ref, {k: r["peak_cuda_mb"] for k, r in rows.items()}
    assert all(r["first_step_s"] < 30 for r in rows.values()), {m: r["first_step_s"] for m, r in rows.items()}


def test_two_config_local_sweep_on_the_gpu(tmp_path):
    sweep = tmp_path / "cov_std"
    args = ["+sweeps=cov_std", *ON_GPU, "loss.cov_coeff=1,100", "loss.std_coeff=10", f"hydra.sweep.dir={sweep}"]
    proc = subprocess.run([sys.executable, "-m", "jepa.train", *args], capture_output=True, text=True, timeout=600,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 runs: 2 done" in proc.stdout
    results = [json.loads(p.read_text()) for p in sweep.glob("*/results.json")]
    assert len(results) == 2 and all(r["status"] == "done" and r["device"].startswith("cuda") for r in results)
