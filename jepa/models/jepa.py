"""The video JEPA: encoder, predictor, projector and the rollouts that tie them together (docs/model.md §2-3).

States are laid out [B, T, C, h, w]: folding time into the batch is then a view, not a copy.
"""

from collections.abc import Callable, Sequence
from functools import partial

import torch
from torch import Tensor, nn

from .activation_checkpointing import POLICIES, checkpointed
from .encoder import ResNet5
from .predictor import ResUNet
from .projector import Projector

CONTEXT = 2  # the predictor sees the states at t-1 and t

# Activation checkpointing of each part for each policy of `VideoJEPA.checkpointing`. "projector" covers
# every projector pass together with the loss terms it feeds (jepa.losses): cheap to recompute (about 1%
# of a step) and 4x wider than the states, so every policy keeps only their inputs. Under "full" each
# predictor call keeps only its input and is recomputed one U-Net stage at a time (ResUNet.forward).
PART_POLICIES = {
    "none": {},
    "lean": {"encoder": "lean", "predictor": "lean", "projector": "full"},
    "selective": {"encoder": "selective", "predictor": "selective", "projector": "full"},
    "full": {"encoder": "full", "predictor": "full", "projector": "full"},
}


class VideoJEPA(nn.Module):
    def __init__(self, dobs: int, henc: int, hpre: int, dstc: int, encoder_strides: Sequence[int] = (1, 1, 1)):
        super().__init__()
        self.encoder = ResNet5(dobs, henc, dstc, encoder_strides)
        self.predictor = ResUNet(CONTEXT * dstc, hpre, dstc)
        self.projector = Projector(dstc)
        # How training keeps activations for backward (models/checkpointing.py): none | selective | full.
        # Set by jepa.performance.apply_speed_options; it never changes a step's numbers.
        self.checkpointing = "none"

    def part(self, name: str, fn: Callable[..., Tensor] | None = None) -> Callable[..., Tensor]:
        """`fn` (by default the submodule `name`) checkpointed as `self.checkpointing` says for that part."""
        assert self.checkpointing in POLICIES, self.checkpointing
        module = getattr(self, name)
        policy = PART_POLICIES[self.checkpointing].get(name, "none")
        if fn is None and name == "predictor" and policy == "full":
            fn = partial(module, checkpoint_stages=True)  # recomputed a stage at a time, see ResUNet
        return checkpointed(fn or module, policy, module)

    def encode(self, video: Tensor) -> Tensor:
        """[B, T, dobs, H, W] -> states [B, T, dstc, h, w]."""
        b, t = video.shape[:2]
        s = self.part("encoder")(video.flatten(0, 1))
        return s.view(b, t, *s.shape[1:])

    def predict_next(self, states: Tensor, first: int = 0, drop_last: bool = True) -> Tensor:
        """One prediction over consecutive pairs.

        From states [B, T, C, h, w], pair (t-1, t) predicts t+1 for t = first+1 .. T-1. The last pair has
        no target; `drop_last` discards its output (the reference still computes it, and in train mode
        its BatchNorm statistics include it). Returns predictions of frames first+2 .. T-1 (or .. T).
        """
        b, t = states.shape[:2]
        pairs = torch.cat([states[:, first : t - 1], states[:, first + 1 :]], dim=2)
        out = self.part("predictor")(pairs.flatten(0, 1))
        out = out.view(b, t - 1 - first, *out.shape[1:])
        return out[:, :-1] if drop_last else out

    def project(self, states: Tensor) -> Tensor:
        """Every spatial vector through the projector: [B, T, C, h, w] -> [B*T*h*w, 4C]."""
        return self.projector(states.movedim(2, -1).flatten(0, -2))

    @torch.no_grad()
    def rollout_eval(self, states: Tensor, steps: int) -> list[Tensor]:
        """Parallel rollout for evaluation (eval mode), keeping every step.

        Returns one tensor per step k = 1..steps: the frames k+1 .. T-1 that step k changes, i.e. every
        frame predicted exactly k steps ahead of its last real context frame, shape [B, T-1-k, C, h, w].
        In eval mode BatchNorm is per-sample, so skipping the frames a step cannot change is exact; it
        computes 36 instead of 72 predictor pairs for T = 10, steps = 8.
        """
        frames = list(states.unbind(1))
        out = []
        for k in range(1, steps + 1):
            # Step k changes frames k+1..T-1, from pairs starting at frame k-1.
            # The last frame's pair has no target, so it is left out rather than computed and dropped.
            new = self.predict_next(torch.stack(frames[:-1], 1), first=k - 1, drop_last=False)
            frames[k + 1 :] = new.unbind(1)
            out.append(new)
        return out
