"""Reconstruction and adversarial losses for training the codec.

* :class:`MultiResolutionMelLoss`: log-mel L1 at several FFT sizes (as in HiFi-GAN, Kong et al. 2020, and
  EnCodec, Défossez et al. 2022) plus a multi-resolution STFT magnitude loss (Yamamoto et al. 2020; in the
  log + linear magnitude L1 form of DAC, Kumar et al. 2023).
* :func:`mel_distance`: one-resolution log-mel L1 per item, for validation and benchmarks.
* Hinge adversarial losses (MelGAN, Kumar et al. 2019; EnCodec eqs. 1-2) and EnCodec's relative
  feature-matching loss.

All spectra are computed in float32 with autocast switched off, so the losses behave the same under
``torch.autocast(..., dtype=torch.bfloat16)`` and on any device. Both spectral losses accept a
:class:`Spectra` in place of a signal: the trainer computes the target's STFTs once per step and each
level's prediction's once, and every loss and level reuses them.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
import torchaudio.functional as AF
from torch import Tensor, nn

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

_LOG_FLOOR = 1e-5  # magnitudes below this are clamped before the log (HiFi-GAN, DAC)


def _mel_filters(n_fft: int, n_mels: int, sample_rate: int) -> Tensor:
    """Triangular HTK mel filters ``[n_fft // 2 + 1, n_mels]``, the ones ``torchaudio.transforms.MelScale``
    builds (0 Hz to Nyquist, no area normalisation)."""
    return AF.melscale_fbanks(n_fft // 2 + 1, 0.0, sample_rate / 2, n_mels, sample_rate)


def default_n_mels(n_fft: int, sample_rate: int) -> int:
    """Number of mel bands used for one FFT size: ``min(80, n_fft // 8)``, lowered until no filter is empty.

    Small FFTs have too few low-frequency bins for 80 triangular filters; an empty filter is a constant
    band that only wastes compute (and makes torchaudio warn). At 16 kHz this gives 32/64/80/80 bands for
    FFT sizes 256/512/1024/2048.
    """
    n_mels = max(1, min(80, n_fft // 8))
    while n_mels > 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fb = _mel_filters(n_fft, n_mels, sample_rate)
        if bool((fb.amax(dim=0) > 0).all()):
            break
        n_mels -= 1
    return n_mels


def _as_batch(x: Tensor, name: str) -> Tensor:
    """``[B, 1, T]`` or ``[B, T]`` -> float32 ``[B, T]``."""
    if x.dim() == 3:
        if x.shape[1] != 1:
            raise ValueError(f"{name} must be mono [B, 1, T] or [B, T], got shape {tuple(x.shape)}")
        x = x[:, 0]
    elif x.dim() != 2:
        raise ValueError(f"{name} must be [B, 1, T] or [B, T], got shape {tuple(x.shape)}")
    if x.shape[-1] < 1:
        raise ValueError(f"{name} is empty (T = 0)")
    return x.float()


def _check_pair(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    return _as_batch(pred, "pred"), _as_batch(target, "target")


def _stft(x: Tensor, n_fft: int, hop_length: int, window: Tensor) -> Tensor:
    """Centred complex STFT of ``x`` ``[B, T]`` -> ``[B, n_fft // 2 + 1, frames]`` (complex64).

    Frames are centred with reflect padding when the signal is long enough (``T > n_fft // 2``) and with
    zeros otherwise, so any ``T >= 1`` gives at least one frame.
    """
    mode = "reflect" if x.shape[-1] > n_fft // 2 else "constant"
    return torch.stft(
        x.float(),
        n_fft,
        hop_length=hop_length,
        win_length=window.shape[-1],
        window=window.float(),
        center=True,
        pad_mode=mode,
        return_complex=True,
    )


def _stft_magnitude(x: Tensor, n_fft: int, hop_length: int, window: Tensor) -> Tensor:
    """Magnitude of :func:`_stft`: ``[B, n_fft // 2 + 1, frames]`` (float32)."""
    return _stft(x, n_fft, hop_length, window).abs()


class Spectra:
    """The centred STFTs (Hann window of ``n``, hop ``n // 4``) of one batch of signals, each computed once.

    Every spectral loss here uses that definition, so one :class:`Spectra` of the target serves the mel
    loss, the phase loss and every level's loss in a training step, and one of a level's prediction
    serves both losses of that level (the target's STFTs used to be computed 5 times per level).

    Args:
        x: ``[B, 1, T]`` or ``[B, T]`` signals (kept as float32 ``[B, T]`` in ``signal``).
    """

    def __init__(self, x: Tensor, name: str = "signal") -> None:
        self.signal = _as_batch(x, name)
        self._complex: dict[int, Tensor] = {}
        self._magnitude: dict[int, Tensor] = {}
        self._log_magnitude: dict[int, Tensor] = {}

    @property
    def shape(self) -> torch.Size:
        return self.signal.shape

    def select(self, items: Tensor | None) -> Spectra:
        """The spectra of batch rows ``items`` (``None``: this object): what is computed is sliced, not
        recomputed, and whatever the subset computes later is its own."""
        if items is None:
            return self
        sub = Spectra(self.signal.index_select(0, items))
        for mine, theirs in (
            (self._complex, sub._complex),
            (self._magnitude, sub._magnitude),
            (self._log_magnitude, sub._log_magnitude),
        ):
            theirs.update({n: x.index_select(0, items) for n, x in mine.items()})
        return sub

    def complex(self, n_fft: int, window: Tensor) -> Tensor:
        """``[B, n_fft // 2 + 1, frames]`` complex64 (see :func:`_stft`); ``window`` has ``n_fft`` points."""
        if n_fft not in self._complex:
            with torch.autocast(device_type=self.signal.device.type, enabled=False):
                self._complex[n_fft] = _stft(self.signal, n_fft, n_fft // 4, window)
        return self._complex[n_fft]

    def magnitude(self, n_fft: int, window: Tensor) -> Tensor:
        """``|complex(n_fft)|`` ``[B, n_fft // 2 + 1, frames]`` float32."""
        if n_fft not in self._magnitude:
            self._magnitude[n_fft] = self.complex(n_fft, window).abs()
        return self._magnitude[n_fft]

    def log_magnitude(self, n_fft: int, window: Tensor) -> Tensor:
        """``log(clamp(|complex(n_fft)|, 1e-5))`` ``[B, n_fft // 2 + 1, frames]`` float32."""
        if n_fft not in self._log_magnitude:
            self._log_magnitude[n_fft] = torch.log(self.magnitude(n_fft, window).clamp(min=_LOG_FLOOR))
        return self._log_magnitude[n_fft]


def _spectra_pair(pred: Tensor | Spectra, target: Tensor | Spectra) -> tuple[Spectra, Spectra]:
    """Both sides as :class:`Spectra` (signals are wrapped), checked to have the same shape."""
    p = pred if isinstance(pred, Spectra) else Spectra(pred, "pred")
    t = target if isinstance(target, Spectra) else Spectra(target, "target")
    if p.shape != t.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(p.shape)} vs {tuple(t.shape)}")
    return p, t


def _log_mel(mag: Tensor, filters: Tensor) -> Tensor:
    """``[B, F, frames]`` magnitude and ``[F, M]`` filters -> ``[B, M, frames]`` log-mel."""
    mel = torch.matmul(mag.transpose(1, 2), filters.float()).transpose(1, 2)
    return torch.log(mel.clamp(min=_LOG_FLOOR))


class _Resolution(nn.Module):
    """Window and mel filters of one STFT resolution, as non-persistent buffers (they move with ``.to``)."""

    window: Tensor
    mel_filters: Tensor

    def __init__(self, n_fft: int, n_mels: int, sample_rate: int) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = n_fft // 4
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("mel_filters", _mel_filters(n_fft, n_mels, sample_rate), persistent=False)

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
                    mel_l1 = F.l1_loss(_log_mel(mag_p, res.mel_filters), _log_mel(mag_t, res.mel_filters))
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


@functools.lru_cache(maxsize=8)
def _distance_buffers(sample_rate: int) -> tuple[Tensor, Tensor]:
    return torch.hann_window(1024), _mel_filters(1024, 80, sample_rate)


def mel_distance(pred: Tensor, target: Tensor, sample_rate: int) -> Tensor:
    """Per-item log-mel L1 distance (n_fft 1024, hop 256, 80 HTK mel bands, ``log(clamp(mel, 1e-5))``).

    ``pred``, ``target``: ``[B, 1, T]`` or ``[B, T]`` -> float32 ``[B]``. A fixed single resolution, so
    numbers are comparable across runs and models (validation, benchmarks).
    """
    window, filters = _distance_buffers(sample_rate)
    with torch.autocast(device_type=pred.device.type, enabled=False):
        p, t = _check_pair(pred, target)
        window, filters = window.to(p.device), filters.to(p.device)
        diff = _log_mel(_stft_magnitude(p, 1024, 256, window), filters) - _log_mel(
            _stft_magnitude(t, 1024, 256, window), filters
        )
        return diff.abs().mean(dim=(1, 2))


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
