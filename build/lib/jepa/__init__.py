"""Video JEPA on Moving MNIST: data, model, losses, probes, evaluation and the Hydra trainer."""

__version__ = "0.1.0"
