"""The reference's contour labels (docs/model.md §1), computed with scipy.ndimage instead of OpenCV.

Per frame: threshold at (min + max) / 2 (pixel > threshold, like cv2.THRESH_BINARY), take the external
contours (cv2.RETR_EXTERNAL), and mark the 8x8 cell holding each bounding-box centre. Whole stacks of frames
are labelled at once: one 3-D `ndimage.label` call per chunk whose structure never links two frames.
"""
import numpy as np
from scipy import ndimage

GRID = 8  # label maps are GRID x GRID cells
CHUNK_FRAMES = 4096  # frames labelled per ndimage call: bounds the int32 label volume to ~70 MB

# Connectivity inside a frame only (the middle plane of a 3x3x3 structure): OpenCV traces foreground
# 8-connected and background 4-connected, which is what makes "inside a hole" well defined.
_FG_8 = np.zeros((3, 3, 3), bool)
_FG_8[1] = True
_BG_4 = np.zeros((3, 3, 3), bool)
_BG_4[1] = ndimage.generate_binary_structure(2, 1)


def threshold(frames: np.ndarray) -> np.ndarray:
    """[N, H, W] any dtype -> [N, H, W] bool: pixel > (frame min + frame max) / 2 (a flat frame is empty)."""
    f = frames.astype(np.result_type(frames.dtype, np.float32), copy=False)  # exact for uint8, keeps float64
    lo, hi = f.min(axis=(1, 2), keepdims=True), f.max(axis=(1, 2), keepdims=True)
    return f > (lo + hi) / 2


def external_boxes(mask: np.ndarray):
    """Bounding boxes of the external blobs of a [N, H, W] bool stack.

    A blob is external unless it lies in a hole of another blob (cv2.RETR_EXTERNAL). Returns int arrays
    (frame, x, y, w, h), one entry per external blob, w = xmax - xmin + 1 as cv2.boundingRect.
    """
    # Background regions of the zero-padded frame (cv2 pads with zeros too): the one touching the pad is
    # the outside, every other one is a hole of the blob around it.
    padded = np.pad(~mask, ((0, 0), (1, 1), (1, 1)), constant_values=True)
    background, _ = ndimage.label(padded, structure=_BG_4)
    outside_id = background[:, :1, :1]  # the pad ring is one 4-connected region per frame
    # Filling every hole (and whatever lies inside it) leaves exactly one 8-connected region per external
    # blob, with that blob's bounding box: nested blobs vanish into their parent.
    filled = background[:, 1:-1, 1:-1] != outside_id
    regions, _ = ndimage.label(filled, structure=_FG_8)
    objects = ndimage.find_objects(regions)  # per region: (frame, row, column) slices of its bounding box
    spans = np.array([[(s.start, s.stop) for s in obj] for obj in objects], np.int64).reshape(-1, 3, 2)
    t, (y0, y1), (x0, x1) = spans[:, 0, 0], spans[:, 1].T, spans[:, 2].T
    return t, x0, y0, x1 - x0, y1 - y0


def boxes_to_cells(t, x, y, w, h, num_frames: int, image_size: int) -> np.ndarray:
    """Mark each box centre's cell: -> [num_frames, 8, 8] uint8, cell = int((x + w / 2) / image_size * 8)."""
    cx = ((x + w / 2) / image_size * GRID).astype(np.int64)
    cy = ((y + h / 2) / image_size * GRID).astype(np.int64)
    out = np.zeros((num_frames, GRID, GRID), np.uint8)
    out[t, np.clip(cy, 0, GRID - 1), np.clip(cx, 0, GRID - 1)] = 1
    return out


def contour_labels(frames: np.ndarray, image_size: int | None = None, return_counts: bool = False):
    """[N, H, W] frames (uint8 or float) -> [N, 8, 8] uint8 contour labels (and [N] external-blob counts).

    Works on any leading stack of frames; labels CHUNK_FRAMES frames per ndimage call.
    """
    n, size = len(frames), image_size or frames.shape[-1]
    labels = np.empty((n, GRID, GRID), np.uint8)
    counts = np.empty(n, np.int64)
    for a in range(0, n, CHUNK_FRAMES):
        chunk = np.asarray(frames[a:a + CHUNK_FRAMES])
        t, x, y, bw, bh = external_boxes(threshold(chunk))
        labels[a:a + len(chunk)] = boxes_to_cells(t, x, y, bw, bh, len(chunk), size)
        counts[a:a + len(chunk)] = np.bincount(t, minlength=len(chunk))
    return (labels, counts) if return_counts else labels


def contour_agreement(frames: np.ndarray, exact: np.ndarray, num_digits: int) -> dict:
    """How often the contour labels equal exact ones, on [N, H, W] frames with known [N, 8, 8] exact labels.

    Returns fractions of frames: `exact_match` (identical label maps), `merged` (fewer external blobs than
    digits: touching digits fused), `extra` (more blobs than digits: broken strokes).
    """
    labels, counts = contour_labels(frames, return_counts=True)
    same = (labels == (exact > 0)).reshape(len(frames), -1).all(axis=1)
    return {"frames": len(frames), "exact_match": float(same.mean()),
            "merged": float((counts < num_digits).mean()), "extra": float((counts > num_digits).mean())}
