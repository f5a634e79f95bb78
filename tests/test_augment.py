"""Training-time augmentation: each kind's physics, identity when off, determinism, config validation."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from vqaudio.config import AugmentConfig, config_from_dict, load_config
from vqaudio.data.augment import (
    add_noise,
    augment_batch,
    change_speed,
    coloured_noise,
    eq_response,
    equalize,
    random_gain,
    reverberate,
    room_impulse_responses,
)
from vqaudio.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SR = 16000
EQ_OFF: dict[str, Any] = {
    "lowpass_hz": None,
    "highpass_hz": None,
    "peaks": 0,
    "peak_hz": [100.0, 6000.0],
    "peak_db": [0.0, 0.0],
    "shelf_db": [0.0, 0.0],
}
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")),
]


def _all_on(prob: float = 1.0, **extra: Any) -> AugmentConfig:
    kinds = {kind: {"prob": prob} for kind in ("reverb", "noise", "eq", "gain")}
    return config_from_dict({"data": {"augment": {**kinds, **extra}}}).data.augment


def _gen(seed: int = 0, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _speechlike(batch: int, length: int, seed: int = 0, level: float = 0.1) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 1, length, generator=g) * level


def _band_energy(x: Tensor, lo: float, hi: float) -> Tensor:
    """``[B]`` energy of ``x`` ``[B, 1, T]`` between ``lo`` and ``hi`` Hz."""
    spec = torch.fft.rfft(x[:, 0].double()).abs().pow(2)
    freqs = torch.fft.rfftfreq(x.shape[-1], 1 / SR)
    return spec[:, (freqs >= lo) & (freqs < hi)].sum(-1)


# ----------------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("length", [1, 2, 17, 1000, 8001])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_every_kind_keeps_shape_dtype_device_and_stays_finite(
    device: str, length: int, dtype: torch.dtype
) -> None:
    wav = _speechlike(3, length).to(device, dtype)
    out = augment_batch(wav, _all_on(), SR, (0, 5, 0))
    for x in (out.inputs, out.target):
        assert x.shape == wav.shape and x.dtype == dtype and x.device == wav.device
        assert torch.isfinite(x.float()).all()
        assert x.float().abs().max() <= 1.0 + 1e-6


@pytest.mark.parametrize("device", DEVICES)
def test_silent_input_stays_finite_and_silent(device: str) -> None:
    wav = torch.zeros(4, 1, 4000, device=device)
    out = augment_batch(wav, _all_on(), SR, (0, 0, 0)).inputs
    assert torch.isfinite(out).all()
    assert torch.equal(out, wav)  # no power to set an SNR or a level from: nothing is added


def test_a_silent_item_does_not_disturb_its_batch() -> None:
    wav = _speechlike(3, 4000)
    wav[1] = 0
    out = augment_batch(wav, _all_on(), SR, (0, 0, 0)).inputs
    assert torch.isfinite(out).all() and torch.equal(out[1], wav[1])
    assert not torch.equal(out[0], wav[0]) and not torch.equal(out[2], wav[2])


# ------------------------------------------------------------------------------------- identity


def test_all_off_by_default_returns_the_batch_itself() -> None:
    cfg = config_from_dict({}).data.augment
    assert not cfg.enabled and cfg.target == "augmented"
    wav = _speechlike(2, 500)
    out = augment_batch(wav, cfg, SR, (0, 0, 0))
    assert out.inputs is wav and out.target is wav


def test_probability_zero_is_bit_exact_and_one_changes_every_item() -> None:
    wav = _speechlike(6, 3000)
    cases = {
        "gain": lambda p, g: random_gain(wav, p, [-6.0, -3.0], g),
        "noise": lambda p, g: add_noise(wav, p, [10.0, 20.0], ["white", "pink", "brown"], g),
        "reverb": lambda p, g: reverberate(wav, p, [0.2, 0.5], [0.0, 6.0], [0.0, 5.0], SR, g),
        "eq": lambda p, g: equalize(wav, p, SR, g, **{**EQ_OFF, "lowpass_hz": [3000.0, 4000.0]}),
    }
    for name, apply in cases.items():
        assert torch.equal(apply(0.0, _gen()), wav), name
        changed = apply(1.0, _gen())
        assert all(not torch.equal(changed[i], wav[i]) for i in range(6)), name


def test_each_item_fires_with_its_probability() -> None:
    wav = _speechlike(400, 64)
    out = random_gain(wav, 0.25, [-6.0, -6.0], _gen())
    fired = (out != wav).flatten(1).any(-1).float().mean().item()
    assert 0.17 < fired < 0.33


def test_same_key_same_output_other_step_other_output() -> None:
    wav = _speechlike(4, 2000)
    cfg = _all_on(0.7)
    a = augment_batch(wav, cfg, SR, (3, 10, 0)).inputs
    assert torch.equal(a, augment_batch(wav.clone(), cfg, SR, (3, 10, 0)).inputs)
    assert not torch.equal(a, augment_batch(wav, cfg, SR, (3, 11, 0)).inputs)
    assert not torch.equal(a, augment_batch(wav, cfg, SR, (3, 10, 1)).inputs)  # another rank
    assert not torch.equal(a, augment_batch(wav, cfg, SR, (4, 10, 0)).inputs)  # another seed


def test_global_rng_is_untouched() -> None:
    torch.manual_seed(123)
    before = torch.get_rng_state()
    augment_batch(_speechlike(2, 1000), _all_on(), SR, (0, 0, 0))
    assert torch.equal(torch.get_rng_state(), before)


def test_target_is_the_augmented_input_or_the_clean_batch() -> None:
    wav = _speechlike(2, 1000)
    augmented = augment_batch(wav, _all_on(), SR, (0, 0, 0))
    assert augmented.target is augmented.inputs and not torch.equal(augmented.inputs, wav)
    clean = augment_batch(wav, _all_on(target="clean"), SR, (0, 0, 0))
    assert clean.target is wav
    assert torch.equal(clean.inputs, augmented.inputs)


# ----------------------------------------------------------------------------------------- speed


def _speed_config(**speed: Any) -> AugmentConfig:
    # a model without speaker conditioning: sped items need no speaker encoder
    return config_from_dict({"model": {"speaker_dim": 0}, "data": {"augment": {"speed": speed}}}).data.augment


def _peak_hz(x: Tensor) -> Tensor:
    """``[B]`` the strongest frequency of each item of ``x`` ``[B, 1, T]``."""
    spec = torch.fft.rfft(x[:, 0].double() * torch.hann_window(x.shape[-1], dtype=torch.float64)).abs()
    return torch.fft.rfftfreq(x.shape[-1], 1 / SR, dtype=torch.float64)[spec.argmax(-1)]


@pytest.mark.parametrize("factor", [0.85, 0.9, 1.1, 1.15])
def test_speed_scales_every_frequency_and_keeps_the_length(factor: float) -> None:
    t = torch.arange(16000) / SR
    tones = torch.stack([0.5 * torch.sin(2 * math.pi * f0 * t) for f0 in (200.0, 500.0, 1300.0)])[:, None]
    out, changed = change_speed(tones, 1.0, [factor], _gen())
    assert out.shape == tones.shape and bool(changed.all())
    expected = torch.tensor([200.0, 500.0, 1300.0], dtype=torch.float64) * factor
    assert torch.allclose(_peak_hz(out), expected, atol=2.0)
    assert out.abs().max() <= 1.0


def test_speed_off_or_factor_one_is_bit_exact_and_marks_nothing() -> None:
    wav = _speechlike(6, 3000)
    for prob, factors in ((0.0, [0.9, 1.1]), (1.0, [1.0])):
        out, changed = change_speed(wav, prob, factors, _gen())
        assert torch.equal(out, wav) and not bool(changed.any())
    wav = _speechlike(16, 3000)
    out, changed = change_speed(wav, 0.5, [0.9, 1.1], _gen(3))
    assert 0 < int(changed.sum()) < 16
    for i in range(16):
        assert torch.equal(out[i], wav[i]) != bool(changed[i])


def test_speed_is_the_voice_kept_by_a_clean_target_and_marked_as_a_new_voice() -> None:
    wav = _speechlike(4, 4000)
    speed_only = augment_batch(wav, _speed_config(prob=1.0), SR, (0, 0, 0))
    assert speed_only.new_voice is not None and bool(speed_only.new_voice.all())
    assert not torch.equal(speed_only.inputs, wav)
    both = {"prob": 1.0}, {"noise": {"prob": 1.0}, "target": "clean"}
    cfg = config_from_dict(
        {"model": {"speaker_dim": 0}, "data": {"augment": {"speed": both[0], **both[1]}}}
    ).data.augment
    clean = augment_batch(wav, cfg, SR, (0, 0, 0))
    assert torch.equal(clean.target, speed_only.inputs)  # the sped voice, without the noise
    assert not torch.equal(clean.inputs, clean.target)
    assert augment_batch(wav, _all_on(), SR, (0, 0, 0)).new_voice is None  # speed off: no mark


def test_turning_speed_on_does_not_change_what_the_other_kinds_draw() -> None:
    wav = _speechlike(4, 3000)
    noise = {"noise": {"prob": 1.0}, "gain": {"prob": 1.0}}
    off = config_from_dict({"data": {"augment": noise}}).data.augment
    # factor 1: speed draws its stream, changes nothing; noise and gain must come out as without it
    speed = {"speed": {"prob": 1.0, "factors": [1.0]}}
    on = config_from_dict({"model": {"speaker_dim": 0}, "data": {"augment": {**noise, **speed}}}).data.augment
    key = (1, 2, 0)
    assert torch.equal(augment_batch(wav, off, SR, key).inputs, augment_batch(wav, on, SR, key).inputs)


def test_speed_needs_a_speaker_encoder_when_decoders_take_a_speaker() -> None:
    with pytest.raises(ConfigError, match="data.augment.speed makes voices that have no speaker-table entry"):
        config_from_dict({"data": {"augment": {"speed": {"prob": 0.5}}}})
    speed = {"augment": {"speed": {"prob": 0.5}}}
    cfg = config_from_dict({"model": {"speaker_encoder": True}, "data": speed})
    assert cfg.data.augment.enabled


# ------------------------------------------------------------------------------------------ gain


def test_gain_stays_in_its_range_and_never_clips() -> None:
    quiet = _speechlike(64, 1000, level=0.01)
    out = random_gain(quiet, 1.0, [-12.0, 6.0], _gen())
    db = 20 * torch.log10(out.abs().amax(-1) / quiet.abs().amax(-1))
    assert db.min() >= -12.0 - 1e-4 and db.max() <= 6.0 + 1e-4
    assert db.max() - db.min() > 10  # spread over the range, not one value
    loud = _speechlike(16, 1000, level=0.5).clamp(-0.99, 0.99)
    boosted = random_gain(loud, 1.0, [12.0, 20.0], _gen())
    peaks = boosted.abs().amax(-1)
    assert peaks.max() <= 1.0 and torch.allclose(peaks, torch.ones_like(peaks))  # peak-normalised


# ----------------------------------------------------------------------------------------- noise


@pytest.mark.parametrize("color", ["white", "pink", "brown"])
@pytest.mark.parametrize("snr", [0.0, 10.0, 30.0])
def test_noise_is_added_at_the_requested_snr(color: str, snr: float) -> None:
    wav = _speechlike(4, 32000, level=0.05)
    wav[1] *= 0.1  # each item's own power sets its noise level
    out = add_noise(wav, 1.0, [snr, snr], [color], _gen())
    measured = 10 * torch.log10(wav.pow(2).mean(-1) / (out - wav).pow(2).mean(-1))
    assert torch.allclose(measured, torch.full_like(measured, snr), atol=0.5)


def test_noise_colours_have_their_spectral_slopes() -> None:
    beta = torch.tensor([0.0, 1.0, 2.0])
    noise = coloured_noise(3, 2**16, beta, _gen(), torch.zeros(()))
    assert torch.allclose(noise.pow(2).mean(-1), torch.ones(3), atol=1e-4)
    low = _band_energy(noise[:, None], 100, 200)
    high = _band_energy(noise[:, None], 3200, 6400)  # 5 octaves up, 32x the bandwidth
    slope_db = 10 * torch.log10(high / low) - 10 * math.log10(32)  # per-Hz density change over 5 octaves
    assert torch.allclose(slope_db, torch.tensor([0.0, -15.05, -30.1]).double(), atol=1.5)


# ---------------------------------------------------------------------------------------- reverb


def _schroeder_rt60(rir: Tensor, sample_rate: int) -> Tensor:
    """RT60 from the energy decay curve (Schroeder backward integration), fitted from -5 to -25 dB."""
    tail = rir[:, 1:].double()
    edc = tail.pow(2).flip(-1).cumsum(-1).flip(-1)
    edc_db = 10 * torch.log10(edc / edc[:, :1])
    t5 = (edc_db > -5).sum(-1)
    t25 = (edc_db > -25).sum(-1)
    return 3 * (t25 - t5).double() / sample_rate


def test_room_impulse_responses_decay_with_their_rt60() -> None:
    rt60 = torch.tensor([0.2, 0.4, 0.8, 1.2], dtype=torch.float64)
    drr = torch.tensor([0.0, 5.0, 10.0, -3.0], dtype=torch.float64)
    delay = torch.tensor([0, 16, 80, 160])
    rir = room_impulse_responses(rt60, drr, delay, 2 * SR, SR, _gen())
    assert rir.shape == (4, 2 * SR)
    assert torch.all(rir[:, 0] == 1)  # the direct path at lag 0
    assert torch.allclose(_schroeder_rt60(rir, SR), rt60, rtol=0.1)
    measured_drr = 10 * torch.log10(1 / rir[:, 1:].pow(2).sum(-1))
    assert torch.allclose(measured_drr, drr, atol=1e-6)
    for i, d in enumerate(delay.tolist()):
        assert torch.all(rir[i, 1:d] == 0) and rir[i, max(d, 1)] != 0  # the tail starts after its pre-delay


def test_reverberation_keeps_length_and_level_and_smears_in_time() -> None:
    wav = torch.zeros(3, 1, 8000)
    wav[:, 0, 1000] = 0.5  # a click
    out = reverberate(wav, 1.0, [0.5, 0.5], [0.0, 0.0], [0.0, 0.0], SR, _gen())
    assert out.shape == wav.shape
    assert torch.allclose(out.pow(2).mean(-1), wav.pow(2).mean(-1), rtol=1e-4)  # level-matched
    assert out[..., :1000].abs().max() < 1e-6  # causal (up to FFT round-off): nothing before the click
    assert torch.all(out[..., 1000:].abs().amax(-1) == out.abs().amax(-1))
    late = out[..., 3000:].pow(2).sum(-1) / out.pow(2).sum(-1)
    assert torch.all(late > 0.01)  # energy a quarter second later: the room's tail


# -------------------------------------------------------------------------------------------- EQ


def test_lowpass_removes_the_energy_above_its_cutoff() -> None:
    wav = _speechlike(4, 16000, level=0.05)
    out = equalize(wav, 1.0, SR, _gen(), **{**EQ_OFF, "lowpass_hz": [2000.0, 3000.0]})
    above = _band_energy(out, 6000, 8001) / _band_energy(wav, 6000, 8001)
    below = _band_energy(out, 50, 1000) / _band_energy(wav, 50, 1000)
    assert torch.all(10 * torch.log10(above) < -40)  # 48 dB/octave: at least one octave past 3 kHz
    assert torch.allclose(below, torch.ones_like(below), atol=0.02)


def test_highpass_removes_the_rumble() -> None:
    wav = _speechlike(8, 16000, level=0.01)
    out = equalize(wav, 1.0, SR, _gen(), **{**EQ_OFF, "highpass_hz": [300.0, 300.0]})
    assert torch.all(_band_energy(out, 1, 100) / _band_energy(wav, 1, 100) < 1e-3)
    assert torch.all(_band_energy(out, 1000, 7000) / _band_energy(wav, 1000, 7000) > 0.98)


def test_peaks_and_shelves_have_their_gains_where_they_should() -> None:
    freqs = torch.tensor([0.0, 125.0, 1000.0, 7999.0], dtype=torch.float64)
    peak = {**EQ_OFF, "peaks": 1, "peak_hz": [1000.0, 1000.0], "peak_db": [9.0, 9.0]}
    response_db = 20 * torch.log10(eq_response(freqs, 2, SR, _gen(), **peak))
    assert torch.allclose(response_db[:, 2], torch.full((2,), 9.0, dtype=torch.float64))  # the centre
    assert response_db[:, [0, 3]].abs().max() < 0.05  # far from it: flat
    shelves = {**EQ_OFF, "shelf_db": [-6.0, -6.0]}
    response_db = 20 * torch.log10(eq_response(freqs, 2, SR, _gen(), **shelves))
    # a low shelf at 250 Hz and a high shelf at 4 kHz: -6 dB at both ends, little of either at 1 kHz
    assert torch.allclose(response_db[:, 0], torch.full((2,), -6.0, dtype=torch.float64), atol=0.05)
    assert torch.allclose(response_db[:, 3], torch.full((2,), -6.0, dtype=torch.float64), atol=0.2)
    assert response_db[:, 2].abs().max() < 1.5


# ------------------------------------------------------------------------------------ config


def test_recipe_keys_and_set_overrides(tiny_recipe: Path) -> None:
    cfg = load_config(
        tiny_recipe,
        [
            "data.augment.noise.prob=0.5",
            "data.augment.noise.colors=[pink]",
            "data.augment.eq.lowpass_hz=null",
        ],
    )
    noise = cfg.data.augment.noise
    assert (noise.prob, noise.colors, noise.snr_db) == (0.5, ["pink"], [5.0, 40.0])
    assert cfg.data.augment.eq.lowpass_hz is None and cfg.data.augment.enabled
    example = load_config(REPO / "recipes" / "mini_augment.yaml")
    assert example.data.augment.enabled and example.data.kind == "tsv"  # its base: mini.yaml
    assert example.model == load_config(REPO / "recipes" / "mini.yaml").model


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.augment.noise.snr_db=[20, 10]", "data.augment.noise.snr_db must be [lo, hi] with lo <= hi"),
        ("data.augment.noise.snr_db=[10]", "data.augment.noise.snr_db must be [lo, hi]"),
        ("data.augment.gain.prob=1.5", "data.augment.gain.prob must be in [0, 1]"),
        ("data.augment.reverb.rt60=[0, 0.5]", "data.augment.reverb.rt60 must be > 0"),
        ("data.augment.reverb.predelay_ms=[-1, 5]", "data.augment.reverb.predelay_ms must lie in [0.0"),
        ("data.augment.eq.lowpass_hz=[8000, 4000]", "data.augment.eq.lowpass_hz must be [lo, hi]"),
        ("data.augment.eq.highpass_hz=[100, 4000]", "data.augment.eq: highpass_hz [100.0, 4000.0] must lie"),
        ("data.augment.eq.lowpass_hz=[9000, 9500]", "data.augment.eq.lowpass_hz: [9000.0, 9500.0] starts"),
        ("data.augment.eq.peaks=-1", "data.augment.eq.peaks must be >= 0"),
        ("data.augment.noise.colors=[purple]", "data.augment.noise.colors.0: must be one of"),
        ("data.augment.noise.colors=[]", "data.augment.noise.colors must name at least one"),
        ("data.augment.target=denoised", "data.augment.target: must be one of"),
        ("data.augment.noise.snr=[1, 2]", "unknown config key 'data.augment.noise.snr'"),
        ("data.augment.reverb.prob=often", "data.augment.reverb.prob: expected a number"),
        ("data.augment.speed.factors=[0.4, 1.1]", "data.augment.speed.factors must lie in [0.5, 2)"),
        ("data.augment.speed.factors=[]", "data.augment.speed.factors must hold at least one"),
        ("data.augment.speed.prob=2", "data.augment.speed.prob must be in [0, 1]"),
    ],
)
def test_bad_values_name_their_key(tiny_recipe: Path, override: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(tiny_recipe, [override])
    assert str(err.value).startswith(message), str(err.value)
