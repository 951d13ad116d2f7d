"""The speed and memory options change nothing they claim to keep (docs/performance.md).

Activation checkpointing: the same losses, gradients and BatchNorm running statistics as the plain step, in
float64. Fast mode: the same evaluation numbers as exact mode. channels_last is left alone on CPU.
torch.compile: applied to the encoder and predictor, without Inductor's channels_last layout on CPU (whose
backward hung now and then); a compiled step gives the eager step's losses and gradients. The CPU allocator
choice holds while a run trains and is undone after it.
"""

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from jepa import private_apis
from jepa.config import ConfigError
from jepa.losses import jepa_losses, match_reference_bn_updates, training_losses
from jepa.models import DetectionHead, PixelDecoder, VideoJEPA
from jepa.models import lean as lean_module
from jepa.models.activation_checkpointing import checkpointed
from jepa.performance import apply_speed_options
from jepa.performance.cpu_allocator import caching_allocator, cpu_allocator
from jepa.tools.bench import compare, measure, mode_overrides

STEPS, STD, COV = 3, 10.0, 100.0
ROOT = Path(__file__).resolve().parent.parent


def tiny_modules(strides=(2, 1, 1), dtype=torch.double, seed=0):
    torch.manual_seed(seed)
    model = VideoJEPA(1, 4, 4, 4, strides).to(dtype)
    head, decoder = DetectionHead(4, 4).to(dtype), PixelDecoder(4, 1, 32).to(dtype)
    for m in model.modules():  # non-trivial BatchNorm state, so that a mismatch cannot hide
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)
    match_reference_bn_updates(model.encoder)
    return model, head, decoder


def batch(dtype=torch.double, b=2, t=6):
    g = torch.Generator().manual_seed(1)
    video = torch.rand(b, t, 1, 32, 32, dtype=dtype, generator=g)
    labels = (torch.rand(b, t, 8, 8, generator=g) < 0.1).to(dtype)
    return video, labels


def step(modules, fast=False, dtype=torch.double):
    """One training step's losses, gradients and buffers (running statistics)."""
    model, head, decoder = modules
    losses = training_losses(model, head, decoder, *batch(dtype), STEPS, STD, COV, fast=fast)
    losses["total"].backward()
    grads = [p.grad.clone() for m in modules for p in m.parameters()]
    buffers = [b.clone() for m in modules for b in m.buffers()]
    return {k: v.detach() for k, v in losses.items()}, grads, buffers


@pytest.mark.parametrize("policy", ["lean", "selective", "full"])
@pytest.mark.parametrize("strides,fast", [((2, 1, 1), False), ((1, 1, 1), True)])
def test_checkpointing_gives_the_plain_step_exactly(policy, strides, fast):
    plain = step(tiny_modules(strides), fast=fast)
    modules = tiny_modules(strides)
    modules[0].checkpointing = policy
    checkpointed_step = step(modules, fast=fast)
    for key, value in plain[0].items():
        torch.testing.assert_close(checkpointed_step[0][key], value, rtol=0, atol=0, msg=key)
    for ours, ref in zip(checkpointed_step[1], plain[1], strict=True):
        torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14)
    # The recomputation runs BatchNorm in train mode again: its running statistics must move only once.
    for ours, ref in zip(checkpointed_step[2], plain[2], strict=True):
        torch.testing.assert_close(ours, ref, rtol=0, atol=0)


def saved_bytes(fn, lean: bool):
    """(bytes of the distinct tensors autograd keeps for backward of fn(), the recipes kept, fn's output)."""
    storages, recipes = {}, []

    def count(t):  # a tensor, or the tensors a recipe holds
        if isinstance(t, lean_module.BatchNormReLUOutput):
            for x, _, _ in t.terms:
                count(x)
            if t.residual is not None:
                count(t.residual)
        elif isinstance(t, lean_module.Concatenation):
            for part in t.parts:
                count(part)
        else:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()

    pack, unpack = (lean_module._pack, lean_module._unpack) if lean else (lambda t: t, lambda t: t)

    def tally(t):
        packed = pack(t)
        if isinstance(packed, lean_module.Rebuild):
            recipes.append(packed)
        count(packed)
        return packed

    with lean_module.lean_activations() if lean else contextlib.nullcontext():
        with torch.autograd.graph.saved_tensors_hooks(tally, unpack):  # innermost: replaces lean's own hooks
            out = fn()
    return sum(storages.values()), recipes, out


def test_lean_activations_keep_the_batchnorm_inputs_only():
    """The predictor keeps under 2/3 of the activation bytes, and frees every rebuilt tensor."""
    model = tiny_modules(strides=(1, 1, 1))[0]
    x = torch.rand(6, 8, 32, 32, dtype=torch.double)
    plain, plain_recipes, _ = saved_bytes(lambda: model.predictor(x), lean=False)
    lean, recipes, out = saved_bytes(lambda: model.predictor(x), lean=True)
    assert plain_recipes == [] and len(recipes) > 10
    assert lean < 2 / 3 * plain, (lean, plain)
    out.square().sum().backward()
    rebuilt = [r for r in recipes if isinstance(r, lean_module.BatchNormReLUOutput)]
    assert len(rebuilt) > 10
    assert all(r.cached is None for r in rebuilt), "a rebuilt tensor outlived its node's backward"


def test_lean_path_is_off_in_eval_and_without_gradients():
    model = tiny_modules()[0]
    x = torch.rand(2, 8, 16, 16, dtype=torch.double)
    with lean_module.lean_activations():
        with torch.no_grad():
            assert not hasattr(model.predictor(x), lean_module._TAG)
        model.eval()
        assert not hasattr(model.predictor(x), lean_module._TAG)
        model.train()
        assert hasattr(model.encoder(x[:, :1]), lean_module._TAG)


def test_recomputation_would_move_running_stats_twice_without_the_guard(monkeypatch):
    """The guard in checkpointing.py is what keeps the statistics: without it they move again."""
    import jepa.models.activation_checkpointing as ckpt

    plain = step(tiny_modules())[2]
    modules = tiny_modules()
    modules[0].checkpointing = "full"
    monkeypatch.setattr(ckpt, "frozen_running_stats", lambda module: contextlib.nullcontext())
    unguarded = step(modules)[2]
    assert any(not torch.equal(a, b) for a, b in zip(unguarded, plain, strict=True))


def test_checkpointed_function_is_the_module_without_autograd():
    model = tiny_modules()[0]
    x = torch.rand(3, 8, 16, 16, dtype=torch.double)
    with torch.no_grad():
        torch.testing.assert_close(checkpointed(model.predictor, "full", model.predictor)(x), model.predictor(x))


def test_fast_mode_evaluates_exactly_as_exact_mode():
    """In eval mode BatchNorm is per sample: predicting only what a step changes is then exact."""
    model = tiny_modules(strides=(1, 1, 1))[0].eval()
    video, _ = batch(t=8)
    with torch.no_grad():
        states = model.encode(video)
        exact = jepa_losses(model, states, 5, STD, COV)
        fast = jepa_losses(model, states, 5, STD, COV, fast=True)
    torch.testing.assert_close(fast.pred, exact.pred, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(fast.total, exact.total, rtol=1e-12, atol=1e-14)


def test_fast_mode_trains_through_the_same_encoder_pass_and_fewer_pairs():
    modules = tiny_modules()
    calls = []
    modules[0].predictor.register_forward_hook(lambda m, inp, out: calls.append(len(inp[0])))
    exact = step(modules)[0]
    exact_pairs, calls[:] = sum(calls), []
    fast = step(modules, fast=True)[0]
    b, t = 2, 6
    assert exact_pairs == STEPS * b * (t - 1)
    assert sum(calls) == b * sum(t - 1 - k for k in range(1, STEPS + 1))
    torch.testing.assert_close(fast["vc"], exact["vc"])


def test_channels_last_is_a_cuda_option_left_alone_on_cpu(tiny_cfg, caplog):
    modules = tiny_modules(dtype=torch.float)
    apply_speed_options(*modules, tiny_cfg("training.channels_last=true").training)
    conv = next(m for m in modules[0].modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous()
    assert "channels_last=true is ignored on CPU" in caplog.text


def test_compile_wraps_the_encoder_and_predictor_keeping_the_layout_on_cpu(tiny_cfg, monkeypatch):
    inductor_config = private_apis.inductor_config()
    monkeypatch.setattr(inductor_config, "layout_optimization", True)
    model, head, decoder = tiny_modules(dtype=torch.float)
    apply_speed_options(model, head, decoder, tiny_cfg("training.compile=true").training)
    assert model.encoder._compiled_call_impl is not None and model.predictor._compiled_call_impl is not None
    assert head._compiled_call_impl is None and decoder._compiled_call_impl is None
    assert inductor_config.layout_optimization is False  # no channels_last convolutions on CPU


@pytest.mark.slow  # Inductor compiles the encoder and predictor (about a minute on 2 cores)
def test_a_compiled_training_step_gives_the_eager_step(tiny_cfg, monkeypatch):
    monkeypatch.setattr(private_apis.inductor_config(), "layout_optimization", True)
    eager = step(tiny_modules(dtype=torch.float), dtype=torch.float)
    compiled_modules = tiny_modules(dtype=torch.float)
    apply_speed_options(*compiled_modules, tiny_cfg("training.compile=true").training)
    compiled = step(compiled_modules, dtype=torch.float)
    for key, value in eager[0].items():
        torch.testing.assert_close(compiled[0][key], value, rtol=1e-4, atol=1e-5, msg=key)
    for ours, ref in zip(compiled[1], eager[1], strict=True):
        torch.testing.assert_close(ours, ref, rtol=1e-3, atol=1e-4)


FAULTS_SCRIPT = """
import json, os, resource, torch
from jepa.performance.cpu_allocator import cpu_allocator

torch.set_num_threads(1)

def faults():  # minor page faults of five 64 MB allocations, each filled then freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        x = torch.ones(16 << 20)
        del x
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

def resident_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

def held_mb():  # memory still resident after a 256 MB block (larger than any freed one) is filled and freed
    before = resident_mb()
    x = torch.ones(64 << 20)
    del x
    return resident_mb() - before

faults()
plain, plain_held = faults(), held_mb()
with cpu_allocator("reuse") as kind:
    faults()  # the first allocation in the kept heap faults once
    kept, kept_held = faults(), held_mb()
    inside = resident_mb()
print(json.dumps({"kind": kind, "plain": plain, "kept": kept, "plain_held": plain_held, "kept_held": kept_held,
                  "released": inside - resident_mb()}))
"""


def test_reuse_keeps_freed_memory_while_a_run_trains_and_gives_it_back_after():
    """In a process of its own: inside the block freed memory is kept (no page faults, still resident);
    leaving it gives the kept memory back to the system and the C library its default thresholds."""
    out = subprocess.run([sys.executable, "-c", FAULTS_SCRIPT], capture_output=True, text=True, timeout=120,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout.splitlines()[-1])
    pages = 5 * (64 << 20) // 4096  # every page of every allocation zero-filled again by the kernel
    assert found["kind"] == "reuse"
    assert found["plain"] > pages / 2 and found["kept"] <= pages / 5 + 100, found  # at most one heap growth
    assert found["plain_held"] < 32, found  # the default returns a freed large block at once
    assert found["kept_held"] > 100, found  # reuse keeps it for the next step
    assert found["released"] > 100, found  # leaving the block gives the kept memory back


@pytest.mark.slow  # builds the C++ allocator once (about a minute), then torch caches it
@pytest.mark.skipif(shutil.which("ninja") is None or shutil.which("c++") is None,
                    reason="the caching allocator is built with a C++ compiler and ninja; .ci/run installs both")
def test_caching_allocator_reuses_freed_blocks_while_a_run_trains():
    stats = caching_allocator().stats
    with cpu_allocator("caching") as kind:
        assert kind == "caching"
        x = torch.ones(4 << 20)  # 16 MB: served by the caching allocator
        reserved = stats()[2]
        del x
        for _ in range(3):
            y = torch.full((4 << 20,), 2.0)
            assert stats()[2] == reserved and float(y.sum()) == 2.0 * (4 << 20)  # the freed block came back
            del y
        assert torch.equal(torch.arange(10).float() @ torch.ones(10), torch.tensor(45.0))  # small: default
        kept = torch.ones(4 << 20)  # handed out by the caching allocator, freed after it is uninstalled
    in_use = stats()[0]
    z = torch.ones(4 << 20)  # after the block: torch's own allocator again
    assert stats()[0] == in_use and float(z.sum()) == 4 << 20
    del kept
    assert stats()[0] == in_use - (16 << 20)  # a block outliving the allocator's scope is still released


@pytest.mark.parametrize(
    "override,key",
    [
        ("training.activation_checkpointing=some", "training.activation_checkpointing"),
        ("training.cpu_allocator=jemalloc", "training.cpu_allocator"),
        ("training.compile=1", "training.compile"),
        ("training.tf32=1", "training.tf32"),
        ("training.deterministic=yes", "training.deterministic"),
        ("training.compile_cache_dir=''", "training.compile_cache_dir"),
    ],
)
def test_bad_speed_or_numerics_option_is_refused(tiny_cfg, override, key):
    with pytest.raises(ConfigError, match=key):
        tiny_cfg(override)


def test_lean_activations_with_compile_are_refused(tiny_cfg):
    with pytest.raises(ConfigError, match="activation_checkpointing='lean'.*training.compile=true"):
        tiny_cfg("training.activation_checkpointing=lean", "training.compile=true")


def test_bench_measures_one_mode_and_compares(tiny_cfg):
    cfg = tiny_cfg(*mode_overrides("fast+selective"), "data.batch_size=2")
    ours = measure(cfg, "ours", "fast+selective", steps=1, warmup=1)
    ref = measure(cfg, "reference", "exact", steps=1, warmup=1)
    assert ours["gflop_per_step"] < ref["gflop_per_step"]  # fast mode and a single encoder pass
    for row in (ours, ref):
        assert row["ms_per_step"] > 0 and row["matmul_tflops_per_s"] > 0 and row["peak_rss_mb"] > 0
    summary = compare([{"round": 0, **ref}, {"round": 0, **ours}])
    assert set(summary) == {"fast+selective"} and summary["fast+selective"]["speedup"] > 0
    with pytest.raises(ConfigError, match="unknown: warp"):
        mode_overrides("exact+warp")
