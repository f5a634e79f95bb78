"""Speaker encoder: reference audio -> an embedding in the space of the decoder's speaker table.

A small x-vector-like network (Snyder et al., 2018: frame-level convolutions, statistics pooling,
an utterance-level projection) on log-mel features.  It is trained to regress the speaker table's
embedding of the reference's speaker, so at inference a clip of a voice never seen in training gives
a conditioning vector the decoder understands (any-to-any conversion, as in AutoVC, Qian et al., 2019).
"""

from __future__ import annotations

import torch
import torchaudio
from torch import Tensor, nn

__all__ = ["SpeakerAdversary", "SpeakerEncoder", "grad_reverse"]


class SpeakerEncoder(nn.Module):
    """Audio ``[B, 1, T]`` (or ``[B, T]``) at ``sample_rate`` -> embedding ``[B, dim]``.

    Args:
        sample_rate: audio rate in Hz.
        dim: output size (the model's ``speaker_dim``).
        channels: width of the frame-level convolutions.
        n_mels: mel bands of the 25 ms / 10 ms log-mel front end.
    """

    def __init__(self, sample_rate: int, dim: int, channels: int = 128, n_mels: int = 40) -> None:
        super().__init__()
        win = max(16, round(0.025 * sample_rate))
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate,
            n_fft=1 << (win - 1).bit_length(),
            win_length=win,
            hop_length=max(1, round(0.010 * sample_rate)),
            n_mels=n_mels,
        )
        self.frames = nn.Sequential(
            nn.Conv1d(n_mels, channels, 5, padding=2),
            nn.ReLU(),
            nn.BatchNorm1d(channels),
            nn.Conv1d(channels, channels, 3, dilation=2, padding=2),
            nn.ReLU(),
            nn.BatchNorm1d(channels),
            nn.Conv1d(channels, channels, 3, dilation=3, padding=3),
            nn.ReLU(),
            nn.BatchNorm1d(channels),
        )
        self.project = nn.Sequential(nn.Linear(2 * channels, channels), nn.ReLU(), nn.Linear(channels, dim))

    def forward(self, wav: Tensor) -> Tensor:
        x = wav.reshape(wav.shape[0], -1).float()
        with torch.autocast(device_type=x.device.type, enabled=False):
            feats = torch.log(self.mel(x) + 1e-5)
        feats = feats - feats.mean(dim=-1, keepdim=True)  # per-utterance mean normalisation (CMN)
        h = self.frames(feats)
        stats = torch.cat([h.mean(dim=-1), h.std(dim=-1, unbiased=False)], dim=1)
        return self.project(stats)


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:  # type: ignore[override]
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return -ctx.scale * grad, None


def grad_reverse(x: Tensor, scale: float) -> Tensor:
    """Identity forward; the gradient is multiplied by ``-scale`` backwards (Ganin & Lempitsky, 2015)."""
    return _GradReverse.apply(x, scale)  # type: ignore[no-any-return]


class SpeakerAdversary(nn.Module):
    """Speaker classifier on a level's quantised latents, trained through gradient reversal.

    The classifier learns to name the speaker of a segment from its codes' vectors ``[B, D, frames]``
    (frame-level convolutions, logits averaged over time); the reversed gradient pushes the encoder to
    make that impossible, i.e. to keep the speaker out of the codes (domain-adversarial training as used
    for speaker-invariant content codes, e.g. Chou et al., 2018).  Training only: conversion never
    calls it.

    Args:
        code_dim: the level's code dimension.
        num_speakers: classes.
        scale: gradient-reversal strength (``model.speaker_adversary``).
        channels: hidden width.
    """

    def __init__(self, code_dim: int, num_speakers: int, scale: float, channels: int = 128) -> None:
        super().__init__()
        self.scale = scale
        self.net = nn.Sequential(
            nn.Conv1d(code_dim, channels, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv1d(channels, channels, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv1d(channels, num_speakers, 1),
        )

    def speaker_tensors(self) -> list[str]:
        """State-dict names (in this module) of the output layer's tensors, one row per speaker."""
        last = len(self.net) - 1
        return [f"net.{last}.weight", f"net.{last}.bias"]

    def forward(self, z: Tensor, speaker: Tensor) -> tuple[Tensor, Tensor]:
        """Cross-entropy loss and accuracy (both scalars) of predicting ``speaker`` ``[B]`` from ``z``,
        over the items whose index is not negative (-1: a voice with no table row; 0 when none is)."""
        logits = self.net(grad_reverse(z.float(), self.scale)).mean(dim=-1)
        known = speaker >= 0
        ce = nn.functional.cross_entropy(logits, speaker.clamp_min(0), reduction="none")
        count = known.sum().clamp_min(1)
        loss = (ce * known).sum() / count
        accuracy = ((logits.argmax(dim=-1) == speaker) & known).sum() / count
        return loss, accuracy.float().detach()
