"""Measure the data pipeline: `python -m jepa.data [--sequences N] [--digits builtin|mnist] [--root DIR]`.

Prints generation and contour-labelling speed on one core (CPU time, so a busy machine does not skew it),
and how often the reference's contour labels equal the exact ones on generated sequences (docs/model.md §7: ~61%).
"""
import argparse
import sys
import time

import numpy as np

from jepa.config import ConfigError
from jepa.data.digits import load_digits, split_digits
from jepa.data.generator import MovingMNIST, exact_labels
from jepa.data.labels import contour_agreement, contour_labels


def at_least(least: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < least:
            raise argparse.ArgumentTypeError(f"{value} is invalid: an integer >= {least}")
        return value
    parse.__name__ = f"integer >= {least}"
    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jepa.data", description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=at_least(1), default=2000)
    parser.add_argument("--frames", type=at_least(2), default=10)
    parser.add_argument("--digits", default="builtin")
    parser.add_argument("--root", default="data")
    parser.add_argument("--seed", type=at_least(0), default=2025)
    args = parser.parse_args(argv)

    try:
        digits = load_digits(args.digits, args.root, download=False)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    train_digits, _ = split_digits(digits, 0.2)
    ds = MovingMNIST(train_digits, args.sequences, frames=args.frames, seed=args.seed)
    start = time.process_time()
    for i in range(len(ds)):
        ds[i]
    gen_s = time.process_time() - start
    print(f"generation: {len(ds) / gen_s:.0f} sequences/s of {args.frames} frames with exact labels "
          f"(one core, CPU time; {16 / (len(ds) / gen_s) * 1e3:.1f} ms per 16 sequences)")

    videos, exact = [], []
    for i in range(len(ds)):
        video, corners, ids = ds.sequence(i)
        videos.append(video)
        exact.append(exact_labels(corners, ds.centres[ids], ds.image_size))
    frames = (np.concatenate(videos) * 255).round().astype(np.uint8)  # as stored in the canonical file
    start = time.process_time()
    contour_labels(frames)
    label_s = time.process_time() - start
    print(f"contour labels: {len(frames) / label_s:.0f} frames/s "
          f"(the canonical file's 200,000 frames: {200_000 / (len(frames) / label_s):.0f} s, once)")
    stats = contour_agreement(frames, np.concatenate(exact), ds.num_digits)
    print(f"contour == exact on {stats['frames']} frames: {stats['exact_match']:.1%} "
          f"(merged blobs {stats['merged']:.1%}, extra blobs {stats['extra']:.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
