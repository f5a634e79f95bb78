"""Reconstruction and adversarial losses for training the codec.

* :class:`MultiResolutionMelLoss`: log-mel L1 at several FFT sizes (as in HiFi-GAN, Kong et al. 2020, and
  EnCodec, Défossez et al. 2022) plus a multi-resolution STFT magnitude loss (Yamamoto et al. 2020; in the
  log + linear magnitude L1 form of DAC, Kumar et al. 2023).
* :func:`mel_distance` (from :mod:`vqaudio.spectral`, re-exported): one-resolution log-mel L1 per item.
* Hinge adversarial losses (MelGAN, Kumar et al. 2019; EnCodec eqs. 1-2) and EnCodec's relative
  feature-matching loss.

All spectra are computed in float32 with autocast switched off, so the losses behave the same under
``torch.autocast(..., dtype=torch.bfloat16)`` and on any device. Both spectral losses accept a
:class:`Spectra` in place of a signal: the trainer computes the target's STFTs once per step and each
level's prediction's once, and every loss and level reuses them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vqaudio.spectral import (
    Spectra,
    default_n_mels,
    log_mel,
    mel_distance,
    mel_filters,
)

__all__ = [
    "MultiResolutionMelLoss",
    "PhaseLoss",
    "Spectra",
    "default_n_mels",
    "discriminator_loss",
    "feature_matching_loss",
    "generator_adv_loss",
    "mel_distance",
]


def _spectra_pair(pred: Tensor | Spectra, target: Tensor | Spectra) -> tuple[Spectra, Spectra]:
    """Both sides as :class:`Spectra` (signals are wrapped), checked to have the same shape."""
    p = pred if isinstance(pred, Spectra) else Spectra(pred, "pred")
    t = target if isinstance(target, Spectra) else Spectra(target, "target")
    if p.shape != t.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(p.shape)} vs {tuple(t.shape)}")
    return p, t


class _Resolution(nn.Module):
    """Window and mel filters of one STFT resolution, as non-persistent buffers (they move with ``.to``)."""

    window: Tensor
    mel_filters: Tensor

    def __init__(self, n_fft: int, n_mels: int, sample_rate: int) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = n_fft // 4
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("mel_filters", mel_filters(n_fft, n_mels, sample_rate), persistent=False)

    def extra_repr(self) -> str:
        return f"n_fft={self.n_fft}, hop_length={self.hop_length}, n_mels={self.mel_filters.shape[1]}"


class MultiResolutionMelLoss(nn.Module):
    """Multi-resolution spectral reconstruction loss.

    For every FFT size ``n`` (Hann window, hop ``n // 4``) it computes one STFT of prediction and target and
    takes

    * ``mel_weight`` x L1 between log-mel spectrograms (``log(clamp(mel, 1e-5))`` of the magnitude mel, as
      in HiFi-GAN / EnCodec's multi-scale mel loss), and
    * ``stft_weight`` x (L1 between log magnitudes + L1 between linear magnitudes), the multi-resolution
      STFT loss of Parallel WaveGAN (Yamamoto et al. 2020) with DAC's linear-magnitude L1 in place of
      spectral convergence: ``||S_t - S_p||_F / ||S_t||_F`` explodes when a batch is silent. Linear
      magnitudes are divided by the window's L2 norm, so the term's scale does not grow with the FFT size.

    The per-resolution terms are averaged over resolutions. Identical inputs give exactly 0.

    Args:
        sample_rate: audio sample rate in Hz (sets the mel scale).
        fft_sizes: FFT (and window) sizes; each must be at least 4.
        n_mels: mel bands per FFT size; ``None`` picks :func:`default_n_mels` for each.
        mel_weight: weight of the log-mel term.
        stft_weight: weight of the linear-frequency term; ``0`` skips it.
    """

    def __init__(
        self,
        sample_rate: int,
        fft_sizes: Sequence[int] = (256, 512, 1024, 2048),
        n_mels: Sequence[int] | None = None,
        mel_weight: float = 1.0,
        stft_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        fft_sizes = list(fft_sizes)
        if not fft_sizes:
            raise ValueError("fft_sizes must not be empty")
        if any(n < 4 for n in fft_sizes):
            raise ValueError(f"every FFT size must be >= 4, got {fft_sizes}")
        if n_mels is None:
            mels = [default_n_mels(n, sample_rate) for n in fft_sizes]
        else:
            mels = list(n_mels)
            if len(mels) != len(fft_sizes):
                raise ValueError(f"n_mels has {len(mels)} entries but fft_sizes has {len(fft_sizes)}")
            if any(m < 1 for m in mels):
                raise ValueError(f"every n_mels must be >= 1, got {mels}")
        if mel_weight < 0 or stft_weight < 0 or mel_weight + stft_weight == 0:
            raise ValueError(
                f"weights must be >= 0 and not both 0, got mel_weight={mel_weight}, stft_weight={stft_weight}"
            )
        self.sample_rate = sample_rate
        self.mel_weight = float(mel_weight)
        self.stft_weight = float(stft_weight)
        self.resolutions = nn.ModuleList(
            _Resolution(n, m, sample_rate) for n, m in zip(fft_sizes, mels, strict=True)
        )

    def forward(self, pred: Tensor | Spectra, target: Tensor | Spectra) -> Tensor:
        """``pred``, ``target``: ``[B, 1, T]`` or ``[B, T]`` (or their :class:`Spectra`), same shape,
        any ``T >= 1`` -> float32 ``[]``."""
        p, t = _spectra_pair(pred, target)
        with torch.autocast(device_type=p.signal.device.type, enabled=False):
            total = p.signal.new_zeros(())
            for res in self.resolutions:
                assert isinstance(res, _Resolution)
                mag_p = p.magnitude(res.n_fft, res.window)
                mag_t = t.magnitude(res.n_fft, res.window)
                if self.mel_weight > 0:
                    mel_l1 = F.l1_loss(log_mel(mag_p, res.mel_filters), log_mel(mag_t, res.mel_filters))
                    total = total + self.mel_weight * mel_l1
                if self.stft_weight > 0:
                    log_l1 = F.l1_loss(
                        p.log_magnitude(res.n_fft, res.window), t.log_magnitude(res.n_fft, res.window)
                    )
                    lin_l1 = F.l1_loss(mag_p, mag_t) / res.window.float().square().sum().sqrt()
                    total = total + self.stft_weight * (log_l1 + lin_l1)
            return total / len(self.resolutions)


class PhaseLoss(nn.Module):
    """Magnitude-weighted phase loss at several STFT resolutions (after APNet, Ai & Ling 2023).

    APNet's three anti-wrapping phase terms -- instantaneous phase, group delay (phase difference
    between neighbouring bins) and instantaneous frequency (difference between neighbouring frames) --
    written as cosine distances ``1 - cos(phi_pred - phi_target)`` computed from the complex STFTs, so
    no ``angle`` is taken and nothing wraps. Each bin counts in proportion to the target's magnitude
    there: the phase of silence is noise and is not learnt. Identical inputs give 0; each term lies in
    ``[0, 2]`` and the loss is their sum, averaged over resolutions.
    """

    def __init__(self, fft_sizes: Sequence[int] = (256, 512), eps: float = 1e-8) -> None:
        super().__init__()
        if not fft_sizes or any(n < 4 for n in fft_sizes):
            raise ValueError(f"fft_sizes must be a non-empty list of sizes >= 4, got {list(fft_sizes)}")
        self.fft_sizes = [int(n) for n in fft_sizes]
        self.eps = eps
        for n in self.fft_sizes:  # non-persistent buffers: they move with ``.to``, as the mel loss's do
            self.register_buffer(f"window_{n}", torch.hann_window(n), persistent=False)

    def forward(self, pred: Tensor | Spectra, target: Tensor | Spectra) -> Tensor:
        """``pred``, ``target``: ``[B, 1, T]`` or ``[B, T]`` (or their :class:`Spectra`), same shape
        -> float32 ``[]``."""
        p, t = _spectra_pair(pred, target)
        with torch.autocast(device_type=p.signal.device.type, enabled=False):
            total = p.signal.new_zeros(())
            for n_fft in self.fft_sizes:
                window = getattr(self, f"window_{n_fft}")
                sp, st = p.complex(n_fft, window), t.complex(n_fft, window)
                w = t.magnitude(n_fft, window)
                # e^{i (phi_p - phi_t)}; the floor only matters in bins with (almost) no energy
                rel = sp * st.conj() / (p.magnitude(n_fft, window) * w).clamp(min=self.eps)
                ip = ((1 - rel.real) * w).sum() / w.sum().clamp(min=1e-8)
                wf = torch.minimum(w[:, 1:], w[:, :-1])
                gd = ((1 - (rel[:, 1:] * rel[:, :-1].conj()).real) * wf).sum() / wf.sum().clamp(min=1e-8)
                wt = torch.minimum(w[..., 1:], w[..., :-1])
                iaf = ((1 - (rel[..., 1:] * rel[..., :-1].conj()).real) * wt).sum() / wt.sum().clamp(min=1e-8)
                total = total + ip + gd + iaf
            return total / len(self.fft_sizes)


# --- adversarial losses -------------------------------------------------------------------------------


def _check_logits(logits: Sequence[Tensor], name: str) -> None:
    if len(logits) == 0:
        raise ValueError(f"{name} is empty: expected one logits tensor per discriminator")


def discriminator_loss(real_logits: list[Tensor], fake_logits: list[Tensor]) -> Tensor:
    """Hinge loss of the discriminators (MelGAN; EnCodec eq. 2).

    ``mean_k [ mean(relu(1 - D_k(x))) + mean(relu(1 + D_k(x_hat))) ]`` over the K discriminators; each
    logits tensor may have any shape (e.g. ``[B, N_k]``). Zero once real logits are >= 1 and fake ones
    <= -1. Pass fake logits computed from ``x_hat.detach()``.
    """
    _check_logits(real_logits, "real_logits")
    if len(real_logits) != len(fake_logits):
        raise ValueError(f"{len(real_logits)} real logits tensors but {len(fake_logits)} fake ones")
    losses = [
        F.relu(1 - r.float()).mean() + F.relu(1 + f.float()).mean()
        for r, f in zip(real_logits, fake_logits, strict=True)
    ]
    return torch.stack(losses).mean()


def generator_adv_loss(fake_logits: list[Tensor]) -> Tensor:
    """Hinge adversarial loss of the generator (EnCodec eq. 1): ``mean_k mean(relu(1 - D_k(x_hat)))``."""
    _check_logits(fake_logits, "fake_logits")
    return torch.stack([F.relu(1 - f.float()).mean() for f in fake_logits]).mean()


def feature_matching_loss(real_feats: list[list[Tensor]], fake_feats: list[list[Tensor]]) -> Tensor:
    """Relative feature-matching loss (EnCodec eq. 3).

    ``mean_k mean_l mean|D_k^l(x) - D_k^l(x_hat)| / mean|D_k^l(x)|``: averaged over the layers ``l`` of
    each discriminator ``k``, then over discriminators (EnCodec's ``1/(KL)`` sum when every discriminator
    has ``L`` layers). ``real_feats[k][l]`` and ``fake_feats[k][l]`` have the same (any) shape. The
    normaliser is detached (it only sets each layer's scale) and floored at 1e-8.
    """
    if len(real_feats) == 0:
        raise ValueError("real_feats is empty: expected one feature list per discriminator")
    if len(real_feats) != len(fake_feats):
        raise ValueError(f"{len(real_feats)} real feature lists but {len(fake_feats)} fake ones")
    per_disc: list[Tensor] = []
    for k, (real_k, fake_k) in enumerate(zip(real_feats, fake_feats, strict=True)):
        if len(real_k) != len(fake_k) or len(real_k) == 0:
            raise ValueError(
                f"discriminator {k}: {len(real_k)} real feature maps but {len(fake_k)} fake ones"
            )
        terms: list[Tensor] = []
        for real, fake in zip(real_k, fake_k, strict=True):
            if real.shape != fake.shape:
                raise ValueError(
                    f"discriminator {k}: feature shapes differ: {tuple(real.shape)} vs {tuple(fake.shape)}"
                )
            real32, fake32 = real.float(), fake.float()
            scale = real32.detach().abs().mean().clamp(min=1e-8)
            terms.append((real32 - fake32).abs().mean() / scale)
        per_disc.append(torch.stack(terms).mean())
    return torch.stack(per_disc).mean()
