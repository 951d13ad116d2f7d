"""Model parts: encoder, predictor, projector, the JEPA that joins them, and the probes."""

from .jepa import VideoJEPA
from .probes import DetectionHead, PixelDecoder

__all__ = ["VideoJEPA", "DetectionHead", "PixelDecoder"]
