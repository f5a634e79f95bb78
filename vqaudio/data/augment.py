"""Training-time augmentation: speed perturbation, reverberation, additive noise, EQ / band-limiting and
gain, on the device.

Synthetic voices are clean; users' recordings are not. Each augmentation is a config switch
(``data.augment.<kind>.prob``, all 0 by default) with its ranges, and each works on a whole batch
``[B, 1, T]`` at once, on the batch's device (vectorised over items: no Python loop per item). Every
item independently fires with its kind's probability; items that do not fire come back bit-exact. They
are applied in the order a recording picks them up: the talker (:func:`change_speed`), the room
(:func:`reverberate`), background noise (:func:`add_noise`), the microphone and channel
(:func:`equalize`), and the recording level (:func:`random_gain`). Whatever a kind changes is
peak-normalised where it would exceed 1 (it never clips).

Speed perturbation (Ko et al., 2015, "Audio augmentation for speech recognition", Interspeech) makes
another voice rather than another recording: pitch, formants and tempo all scale by one factor, as from
a longer or shorter vocal tract speaking faster or slower. It is artefact-free (a band-limited
resampling, no phase vocoder), so it serves as a reconstruction target, and a codec trained on it has
heard many more timbres than its corpus holds. A sped item is no longer its speaker's voice:
:attr:`Augmented.new_voice` marks it, and the trainer passes speaker index -1 for it, which the model
conditions on the speaker encoder's embedding of the item itself (no table entry, no speaker loss).

What is trained against (``data.augment.target``): by default the model must reconstruct the augmented
signal itself (``augmented``): a codec has to code what it is given, noise and room included, and a
codec that learnt to drop the noise would also drop whatever else it was not trained on. ``clean``
asks for the original instead: the codec then also denoises and dereverberates, always (SoundStream,
Zeghidour et al. 2021, trains this behind a conditioning switch; we have none). The direct
path of the synthetic rooms sits at lag 0 and every filter is zero-phase, so input and clean target
stay aligned.

Determinism: all randomness comes from :class:`torch.Generator` objects seeded from a key (the trainer
passes ``(train.seed, step, rank)``), one stream per kind, so a batch's augmentation is a pure function
of that key and the batch (the same on a resumed run as on an uninterrupted one), turning one kind on
does not change what another draws, and it never touches the global RNG. Each kind is computed for the
whole batch and selected per item with :func:`torch.where` (no device synchronisation).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio.functional as AF
from torch import Tensor

from vqaudio.config import AugmentConfig

__all__ = [
    "AUGMENT_KINDS",
    "NOISE_EXPONENTS",
    "Augmented",
    "add_noise",
    "augment_batch",
    "change_speed",
    "coloured_noise",
    "equalize",
    "eq_response",
    "random_gain",
    "reverberate",
    "room_impulse_responses",
]

_RECORDING_KINDS: tuple[str, ...] = ("reverb", "noise", "eq", "gain")
"""The kinds that change the recording, not the voice, in the order they are applied."""

AUGMENT_KINDS: tuple[str, ...] = ("speed", *_RECORDING_KINDS)
"""The kinds, in the order they are applied (speed, the voice, first)."""

_STREAMS: dict[str, int] = {"reverb": 0, "noise": 1, "eq": 2, "gain": 3, "speed": 4}
"""Each kind's random stream (fixed: a kind added later takes a new one, so older kinds draw as before)."""

_MAX_DENOMINATOR = 20  # speed factors become ratios of small integers: short resampling kernels

NOISE_EXPONENTS: dict[str, float] = {"white": 0.0, "pink": 1.0, "brown": 2.0}
"""Noise colour -> ``beta`` of its power spectrum ``1 / f**beta``."""

_BUTTERWORTH_ORDER = 8  # 48 dB/octave beyond the cutoff
_LOW_SHELF_HZ, _HIGH_SHELF_HZ = 250.0, 4000.0
_PEAK_Q = 1.0
_EPS = 1e-12


@dataclass
class Augmented:
    """A training batch after augmentation: what the model hears and what it must reconstruct.

    Attributes:
        inputs: ``[B, 1, T]`` the model's input.
        target: ``[B, 1, T]`` the reconstruction target: ``inputs`` itself (``target: augmented``) or
            the batch as it came (``target: clean``; speed perturbation kept, it is the voice).
        new_voice: ``[B]`` bool, the items whose voice speed perturbation changed (no longer their
            speaker's); ``None`` when speed perturbation is off.
    """

    inputs: Tensor
    target: Tensor
    new_voice: Tensor | None = None


# --------------------------------------------------------------------------- helpers


def _generator(device: torch.device, key: Sequence[int], stream: int) -> torch.Generator:
    """A generator on ``device`` seeded from ``(*key, stream)`` (via NumPy's ``SeedSequence``)."""
    state = np.random.SeedSequence([*map(int, key), stream]).generate_state(2)
    gen = torch.Generator(device=device)
    gen.manual_seed((int(state[0]) << 31) ^ int(state[1]))
    return gen


def _uniform(n: int, bounds: Sequence[float], gen: torch.Generator, like: Tensor) -> Tensor:
    """``[n]`` draws uniform in ``[bounds[0], bounds[1]]`` with ``like``'s dtype and device."""
    u = torch.rand(n, generator=gen, device=like.device, dtype=like.dtype)
    return bounds[0] + (bounds[1] - bounds[0]) * u


def _pick(n: int, prob: float, gen: torch.Generator, like: Tensor) -> Tensor:
    """``[n, 1, 1]`` bool: which items an augmentation of probability ``prob`` changes."""
    return (torch.rand(n, generator=gen, device=like.device) < prob)[:, None, None]


def _working(wav: Tensor) -> Tensor:
    """``wav`` as float32 or float64 (the FFTs need one of them)."""
    return wav if wav.dtype in (torch.float32, torch.float64) else wav.float()


def _limit_peak(wav: Tensor) -> Tensor:
    """``[B, 1, T]`` items whose peak exceeds 1 scaled down to a peak of exactly 1; the others as they are."""
    return wav / wav.abs().amax(-1, keepdim=True).clamp_min(1.0)


def _rms(wav: Tensor) -> Tensor:
    return wav.pow(2).mean(-1, keepdim=True).sqrt()


def _fft_size(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


# --------------------------------------------------------------------------- speed


def _fit_length(y: Tensor, length: int, offset: Tensor) -> Tensor:
    """``[B, N]`` -> ``[B, length]``: a window starting ``offset`` (``[B]``, in ``[0, 1]`` of the slack)
    when longer, reflect-padded at the end when shorter."""
    n = y.shape[-1]
    if n < length:
        return F.pad(y[:, None], (0, length - n), mode="reflect")[:, 0]
    start = (offset * (n - length)).long()
    index = start[:, None] + torch.arange(length, device=y.device)
    return y.gather(-1, index)


def change_speed(
    wav: Tensor, prob: float, factors: Sequence[float], gen: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Speed perturbation: each item of ``wav`` ``[B, 1, T]``, with probability ``prob``, resampled so
    that every frequency and the tempo scale by a factor drawn from ``factors`` (each taken as a ratio of
    integers up to 20), then cropped at a random offset (slower) or reflect-padded at the end (faster)
    back to ``T`` samples, and peak-normalised where it would exceed 1.

    Returns:
        ``(out [B, 1, T], changed [B] bool)``: ``changed`` marks the items moved by a factor other than 1.
    """
    x = _working(wav)
    b, _, t = x.shape
    pick = torch.rand(b, generator=gen, device=x.device) < prob
    choice = torch.randint(len(factors), (b,), generator=gen, device=x.device)
    offset = torch.rand(b, generator=gen, device=x.device, dtype=x.dtype)
    out = x
    changed = torch.zeros(b, dtype=torch.bool, device=x.device)
    for k, factor in enumerate(factors):
        ratio = Fraction(factor).limit_denominator(_MAX_DENOMINATOR)
        if ratio == 1 or t < 2:
            continue
        # resampled from rate p to rate q and played at the old rate: T * q / p samples, frequencies x p/q
        moved = AF.resample(x[:, 0], ratio.numerator, ratio.denominator)
        sel = pick & (choice == k)
        out = torch.where(sel[:, None, None], _fit_length(moved, t, offset)[:, None], out)
        changed = changed | sel
    return torch.where(changed[:, None, None], _limit_peak(out), x).to(wav.dtype), changed


# --------------------------------------------------------------------------- gain


def random_gain(wav: Tensor, prob: float, db: Sequence[float], gen: torch.Generator) -> Tensor:
    """``[B, 1, T]``: each item, with probability ``prob``, times a gain uniform in ``db`` (decibels),
    then peak-normalised to 1 if the gain made it exceed 1 (so the gain never clips)."""
    x = _working(wav)
    b = x.shape[0]
    pick = _pick(b, prob, gen, x)
    gain = 10.0 ** (_uniform(b, db, gen, x) / 20.0)
    out = _limit_peak(x * gain[:, None, None])
    return torch.where(pick, out, x).to(wav.dtype)


# --------------------------------------------------------------------------- noise


def coloured_noise(batch: int, length: int, beta: Tensor, gen: torch.Generator, like: Tensor) -> Tensor:
    """``[batch, length]`` Gaussian noise with power spectrum ``1 / f**beta[i]`` per row, unit power.

    White noise shaped in the frequency domain (``beta`` 0 white, 1 pink, 2 brown; amplitude
    ``f**(-beta / 2)``, the DC bin removed), then scaled to a mean square of 1 (0 where ``length`` is
    too short to hold anything but DC).
    """
    white = torch.randn(batch, length, generator=gen, device=like.device, dtype=like.dtype)
    spec = torch.fft.rfft(white)
    f = torch.arange(spec.shape[-1], device=like.device, dtype=like.dtype).clamp_min(1.0)
    spec = spec * f.pow(-beta[:, None] / 2)
    spec[:, 0] = 0
    noise = torch.fft.irfft(spec, n=length)
    return noise / noise.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(_EPS)


def add_noise(
    wav: Tensor, prob: float, snr_db: Sequence[float], colors: Sequence[str], gen: torch.Generator
) -> Tensor:
    """``[B, 1, T]``: each item, with probability ``prob``, plus noise of a random colour in ``colors``
    (:data:`NOISE_EXPONENTS`) at an SNR uniform in ``snr_db`` (dB) against the item's own mean power.

    A silent item has no power to set the noise level from: it stays silent (and finite).
    """
    x = _working(wav)
    b, _, t = x.shape
    pick = _pick(b, prob, gen, x)
    snr = _uniform(b, snr_db, gen, x)
    exponents = torch.tensor([NOISE_EXPONENTS[c] for c in colors], device=x.device, dtype=x.dtype)
    beta = exponents[torch.randint(len(colors), (b,), generator=gen, device=x.device)]
    noise = coloured_noise(b, t, beta, gen, x)[:, None]
    power = x.pow(2).mean(-1, keepdim=True)
    scale = (power / 10.0 ** (snr[:, None, None] / 10.0)).sqrt()
    out = _limit_peak(x + scale * noise)
    return torch.where(pick, out, x).to(wav.dtype)


# --------------------------------------------------------------------------- reverberation


def room_impulse_responses(
    rt60: Tensor, drr_db: Tensor, predelay: Tensor, length: int, sample_rate: int, gen: torch.Generator
) -> Tensor:
    """``[B, length]`` synthetic room impulse responses: a direct path plus an exponentially decaying tail.

    The statistical model of late reverberation (Polack, 1993, "Playing billiards in the concert hall:
    the mathematical foundations of geometrical room acoustics", Applied Acoustics 38; the same
    exponentially decaying noise is the usual synthetic RIR for augmentation): Gaussian noise times
    ``exp(-3 ln(10) t / RT60)``, whose energy falls by 60 dB in ``RT60`` seconds, starting ``predelay``
    samples after a unit direct path at lag 0 and scaled to a direct-to-reverberant energy ratio of
    ``drr_db``. Frequency-independent decay (no air absorption), no discrete early reflections.

    Args:
        rt60: ``[B]`` seconds (> 0).
        drr_db: ``[B]`` direct-to-reverberant energy ratio in dB.
        predelay: ``[B]`` integer samples between the direct path and the tail (the tail starts at
            ``max(1, predelay)``).
        length: taps.
        sample_rate: Hz.
        gen: generator on the tensors' device.
    """
    n = rt60.shape[0]
    taps = torch.arange(length, device=rt60.device)
    t = taps.to(rt60.dtype) / sample_rate
    decay = torch.exp(-3.0 * math.log(10.0) * t[None] / rt60[:, None])
    tail = torch.randn(n, length, generator=gen, device=rt60.device, dtype=rt60.dtype) * decay
    tail = tail * (taps[None] >= predelay.clamp_min(1)[:, None])
    energy = tail.pow(2).sum(-1, keepdim=True).clamp_min(_EPS)
    tail = tail * (10.0 ** (-drr_db[:, None] / 10.0) / energy).sqrt()
    tail[:, 0] = 1.0
    return tail


def reverberate(
    wav: Tensor,
    prob: float,
    rt60: Sequence[float],
    drr_db: Sequence[float],
    predelay_ms: Sequence[float],
    sample_rate: int,
    gen: torch.Generator,
) -> Tensor:
    """``[B, 1, T]``: each item, with probability ``prob``, convolved (FFT) with a random
    :func:`room_impulse_responses` room; same length (the first ``T`` samples of the full convolution)
    and the same RMS as before (level-matched; a silent item stays silent).

    A segment is a crop of a longer utterance, so its first ``RT60`` lacks the tail of what came before
    it: the room fills in over the segment, as at the start of a recording.
    """
    x = _working(wav)
    b, _, t = x.shape
    pick = _pick(b, prob, gen, x)
    times = _uniform(b, rt60, gen, x)
    ratios = _uniform(b, drr_db, gen, x)
    delays = (_uniform(b, predelay_ms, gen, x) * sample_rate / 1000).round().long()
    # output sample t only hears taps < T: no need for a longer response than the segment
    length = max(1, min(t, math.ceil(rt60[1] * sample_rate)))
    rir = room_impulse_responses(times, ratios, delays, length, sample_rate, gen)
    n = _fft_size(t + length - 1)
    out = torch.fft.irfft(torch.fft.rfft(x, n) * torch.fft.rfft(rir, n)[:, None], n)[..., :t]
    out = out * (_rms(x) / _rms(out).clamp_min(_EPS))
    return torch.where(pick, _limit_peak(out), x).to(wav.dtype)


# --------------------------------------------------------------------------- EQ / band-limiting


def _biquad_magnitude(b: Tensor, a: Tensor, w: Tensor) -> Tensor:
    """``|B(e^jw) / A(e^jw)|`` of second-order sections with coefficients ``b``, ``a`` ``[..., 3]``
    at radian frequencies ``w`` ``[F]`` -> ``[..., F]`` (each polynomial evaluated as one matmul)."""
    one, zero = torch.ones_like(w), torch.zeros_like(w)
    cos = torch.stack([one, torch.cos(w), torch.cos(2 * w)])  # [3, F]: Re e^{-jkw}, k = 0, 1, 2
    sin = torch.stack([zero, torch.sin(w), torch.sin(2 * w)])

    def mag2(c: Tensor) -> Tensor:
        return (c @ cos).square() + (c @ sin).square()

    return (mag2(b) / mag2(a).clamp_min(_EPS)).sqrt()


def _peaking(f0: Tensor, gain_db: Tensor, sample_rate: int) -> tuple[Tensor, Tensor]:
    """Peaking-EQ biquads (Bristow-Johnson, "Cookbook formulae for audio EQ biquad filter
    coefficients"), ``Q`` = :data:`_PEAK_Q`: ``f0`` (Hz), ``gain_db`` ``[...]`` -> ``b, a`` ``[..., 3]``."""
    amp = 10.0 ** (gain_db / 40.0)
    w0 = 2 * math.pi * f0 / sample_rate
    alpha, cos = torch.sin(w0) / (2 * _PEAK_Q), torch.cos(w0)
    b = torch.stack([1 + alpha * amp, -2 * cos, 1 - alpha * amp], -1)
    a = torch.stack([1 + alpha / amp, -2 * cos, 1 - alpha / amp], -1)
    return b, a


def _shelf(f0: float, gain_db: Tensor, sample_rate: int, high: bool) -> tuple[Tensor, Tensor]:
    """Low or high shelf biquads (Bristow-Johnson's cookbook, slope 1): ``gain_db`` ``[...]`` ->
    ``b, a`` ``[..., 3]``."""
    amp = 10.0 ** (gain_db / 40.0)
    w0 = 2 * math.pi * f0 / sample_rate
    cos, root = math.cos(w0), 2 * amp.sqrt() * math.sin(w0) / math.sqrt(2)
    s = 1.0 if high else -1.0  # the cookbook's high and low shelves differ in these signs only
    b = torch.stack(
        [
            amp * ((amp + 1) + s * (amp - 1) * cos + root),
            -2 * s * amp * ((amp - 1) + s * (amp + 1) * cos),
            amp * ((amp + 1) + s * (amp - 1) * cos - root),
        ],
        -1,
    )
    a = torch.stack(
        [
            (amp + 1) - s * (amp - 1) * cos + root,
            2 * s * ((amp - 1) - s * (amp + 1) * cos),
            (amp + 1) - s * (amp - 1) * cos - root,
        ],
        -1,
    )
    return b, a


def eq_response(
    freqs: Tensor,
    batch: int,
    sample_rate: int,
    gen: torch.Generator,
    *,
    lowpass_hz: Sequence[float] | None,
    highpass_hz: Sequence[float] | None,
    peaks: int,
    peak_hz: Sequence[float],
    peak_db: Sequence[float],
    shelf_db: Sequence[float],
) -> Tensor:
    """``[batch, F]`` random magnitude responses at ``freqs`` ``[F]`` (Hz), one per item.

    The product of: a Butterworth-shaped low-pass ``1 / sqrt(1 + (f / fc)**16)`` and high-pass
    ``1 / sqrt(1 + (fc / f)**16)`` (order 8, 48 dB/octave; cutoffs uniform in ``lowpass_hz`` /
    ``highpass_hz``, either off when ``None``); ``peaks`` peaking bands (centres log-uniform in
    ``peak_hz``, gains uniform in ``peak_db``, Q = 1); a low shelf at 250 Hz and a high shelf at 4 kHz
    (gains uniform in ``shelf_db``, both off when that is ``[0, 0]``). Bands and shelves are the
    magnitudes of Bristow-Johnson's biquads; their corners are kept below 0.45 ``sample_rate``.
    """
    top = 0.45 * sample_rate
    response = torch.ones(batch, freqs.shape[0], device=freqs.device, dtype=freqs.dtype)
    if lowpass_hz is not None:
        cutoff = _uniform(batch, lowpass_hz, gen, freqs)[:, None]
        response = response / (1 + (freqs / cutoff) ** (2 * _BUTTERWORTH_ORDER)).sqrt()
    if highpass_hz is not None:
        cutoff = _uniform(batch, highpass_hz, gen, freqs)[:, None]
        ratio = (cutoff / freqs.clamp_min(_EPS)).clamp_max(1e3)  # DC: about 0, without overflow
        response = response / (1 + ratio ** (2 * _BUTTERWORTH_ORDER)).sqrt()
    sections: list[tuple[Tensor, Tensor]] = []
    if peaks > 0:
        log_band = (math.log(min(peak_hz[0], top)), math.log(min(peak_hz[1], top)))
        centres = _uniform(batch * peaks, log_band, gen, freqs).exp().reshape(batch, peaks)
        gains = _uniform(batch * peaks, peak_db, gen, freqs).reshape(batch, peaks)
        sections.append(_peaking(centres, gains, sample_rate))
    if shelf_db[0] != 0 or shelf_db[1] != 0:
        for corner, high in ((_LOW_SHELF_HZ, False), (_HIGH_SHELF_HZ, True)):
            gains = _uniform(batch, shelf_db, gen, freqs)[:, None]
            sections.append(_shelf(min(corner, top), gains, sample_rate, high))
    if sections:
        b = torch.cat([b for b, _ in sections], 1)  # [batch, K, 3]
        a = torch.cat([a for _, a in sections], 1)
        response = response * _biquad_magnitude(b, a, 2 * math.pi * freqs / sample_rate).prod(1)
    return response.clamp_min(1e-8)  # -160 dB: no subnormal numbers downstream


def equalize(
    wav: Tensor,
    prob: float,
    sample_rate: int,
    gen: torch.Generator,
    *,
    lowpass_hz: Sequence[float] | None,
    highpass_hz: Sequence[float] | None,
    peaks: int,
    peak_hz: Sequence[float],
    peak_db: Sequence[float],
    shelf_db: Sequence[float],
) -> Tensor:
    """``[B, 1, T]``: each item, with probability ``prob``, filtered by a random :func:`eq_response`
    (the keyword arguments are its ranges).

    Applied in the frequency domain as a zero-phase magnitude (the waveform stays aligned with the clean
    target), on the signal zero-padded to at least twice its length, so the filter's response does not
    wrap the end of the segment onto its start.
    """
    x = _working(wav)
    b, _, t = x.shape
    pick = _pick(b, prob, gen, x)
    n = _fft_size(2 * t)
    freqs = torch.fft.rfftfreq(n, 1.0 / sample_rate, device=x.device, dtype=x.dtype)
    response = eq_response(
        freqs,
        b,
        sample_rate,
        gen,
        lowpass_hz=lowpass_hz,
        highpass_hz=highpass_hz,
        peaks=peaks,
        peak_hz=peak_hz,
        peak_db=peak_db,
        shelf_db=shelf_db,
    )
    out = torch.fft.irfft(torch.fft.rfft(x, n) * response[:, None], n)[..., :t]
    return torch.where(pick, _limit_peak(out), x).to(wav.dtype)


# --------------------------------------------------------------------------- the chain


def augment_batch(wav: Tensor, cfg: AugmentConfig, sample_rate: int, key: Sequence[int]) -> Augmented:
    """Augment a training batch ``wav`` ``[B, 1, T]`` (any float dtype, any device) as ``cfg`` says.

    Args:
        wav: the batch as it came from the data loader, on the training device.
        cfg: ``data.augment``.
        sample_rate: Hz.
        key: non-negative integers that seed the random streams (the trainer's is
            ``(train.seed, step, rank)``): the same key and batch give the same result.

    Returns:
        :class:`Augmented`; with every probability at 0 both fields are ``wav`` itself.
    """
    r, n, e, g = cfg.reverb, cfg.noise, cfg.eq, cfg.gain
    x, new_voice = wav, None
    if cfg.speed.prob > 0:
        gen = _generator(wav.device, key, _STREAMS["speed"])
        x, new_voice = change_speed(wav, cfg.speed.prob, cfg.speed.factors, gen)
    voiced = x
    kinds: dict[str, tuple[float, Callable[[Tensor, torch.Generator], Tensor]]] = {
        "reverb": (
            r.prob,
            lambda x, gen: reverberate(x, r.prob, r.rt60, r.drr_db, r.predelay_ms, sample_rate, gen),
        ),
        "noise": (n.prob, lambda x, gen: add_noise(x, n.prob, n.snr_db, n.colors, gen)),
        "eq": (
            e.prob,
            lambda x, gen: equalize(
                x,
                e.prob,
                sample_rate,
                gen,
                lowpass_hz=e.lowpass_hz,
                highpass_hz=e.highpass_hz,
                peaks=e.peaks,
                peak_hz=e.peak_hz,
                peak_db=e.peak_db,
                shelf_db=e.shelf_db,
            ),
        ),
        "gain": (g.prob, lambda x, gen: random_gain(x, g.prob, g.db, gen)),
    }
    for kind in _RECORDING_KINDS:
        prob, apply = kinds[kind]
        if prob > 0:
            x = apply(x, _generator(wav.device, key, _STREAMS[kind]))
    return Augmented(inputs=x, target=voiced if cfg.target == "clean" else x, new_voice=new_voice)
