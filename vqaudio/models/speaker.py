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

__all__ = ["SpeakerEncoder"]


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
