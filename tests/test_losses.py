from __future__ import annotations

import warnings

import pytest
import torch

from vqaudio.train import (
    MultiResolutionMelLoss,
    PhaseLoss,
    discriminator_loss,
    feature_matching_loss,
    generator_adv_loss,
    mel_distance,
)
from vqaudio.train.losses import Spectra, default_n_mels

DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
    ),
]

SR = 16000


def _speechlike(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    """A few harmonics plus a little noise, [B, 1, T]."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / SR
    f0 = 100 + 50 * torch.rand(batch, 1, generator=gen)
    x = sum(torch.sin(2 * torch.pi * k * f0 * t) / k for k in range(1, 6))
    x = 0.3 * x + 0.01 * torch.randn(batch, length, generator=gen)
    return x.unsqueeze(1)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("length", [1, 100, 16000])
@pytest.mark.parametrize("batch", [1, 3])
def test_mel_loss_zero_for_identical_positive_otherwise(device: str, length: int, batch: int) -> None:
    loss_fn = MultiResolutionMelLoss(SR).to(device)
    target = _speechlike(batch, length).to(device)
    pred = target + 0.1 * torch.randn_like(target)
    same = loss_fn(target, target.clone())
    diff = loss_fn(pred, target)
    assert same.shape == () and same.dtype == torch.float32
    assert same.item() == pytest.approx(0.0, abs=1e-6)
    assert torch.isfinite(diff) and diff.item() > 0.01


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("length", [1, 100, 16000])
def test_mel_loss_gradients_reach_pred(device: str, length: int) -> None:
    loss_fn = MultiResolutionMelLoss(SR).to(device)
    target = _speechlike(2, length).to(device)
    pred = (target + 0.05 * torch.randn_like(target)).requires_grad_()
    loss_fn(pred, target).backward()
    assert pred.grad is not None
    assert torch.isfinite(pred.grad).all()
    assert pred.grad.abs().sum() > 0


def test_mel_loss_decreases_as_pred_approaches_target() -> None:
    loss_fn = MultiResolutionMelLoss(SR)
    target = _speechlike(2, 4000)
    noise = torch.randn_like(target)
    values = [loss_fn(target + a * noise, target).item() for a in (0.3, 0.1, 0.03, 0.01)]
    assert all(a > b for a, b in zip(values, values[1:], strict=False)), values
    # Each term alone also orders correctly.
    for mel_w, stft_w in ((1.0, 0.0), (0.0, 1.0)):
        only = MultiResolutionMelLoss(SR, mel_weight=mel_w, stft_weight=stft_w)
        assert only(target + 0.3 * noise, target) > only(target + 0.01 * noise, target)


def test_mel_loss_stays_bounded_on_silent_target() -> None:
    # A silent batch must not blow the loss up (plain spectral convergence divides by ~0 here).
    loss_fn = MultiResolutionMelLoss(SR)
    silent = torch.zeros(1, 1, 8000)
    for amplitude in (1e-4, 1e-2, 0.3):
        value = loss_fn(amplitude * torch.randn(1, 1, 8000), silent).item()
        assert 0 < value < 50, (amplitude, value)


def test_mel_loss_accepts_2d_and_3d_inputs_and_weights_add_up() -> None:
    target = _speechlike(2, 2000)
    pred = target + 0.1 * torch.randn_like(target)
    both = MultiResolutionMelLoss(SR)
    mel = MultiResolutionMelLoss(SR, stft_weight=0.0)
    stft = MultiResolutionMelLoss(SR, mel_weight=0.0)
    assert both(pred, target) == pytest.approx(both(pred[:, 0], target[:, 0]).item())
    assert both(pred, target).item() == pytest.approx(mel(pred, target).item() + stft(pred, target).item())


def test_mel_loss_rejects_bad_inputs_and_config() -> None:
    loss_fn = MultiResolutionMelLoss(SR)
    with pytest.raises(ValueError, match="shapes differ"):
        loss_fn(torch.zeros(1, 1, 100), torch.zeros(1, 1, 101))
    with pytest.raises(ValueError, match="mono"):
        loss_fn(torch.zeros(1, 2, 100), torch.zeros(1, 2, 100))
    with pytest.raises(ValueError, match="T = 0"):
        loss_fn(torch.zeros(1, 1, 0), torch.zeros(1, 1, 0))
    with pytest.raises(ValueError, match="n_mels"):
        MultiResolutionMelLoss(SR, fft_sizes=(256, 512), n_mels=(32,))
    with pytest.raises(ValueError, match="weights"):
        MultiResolutionMelLoss(SR, mel_weight=0.0, stft_weight=0.0)


@pytest.mark.parametrize("sample_rate", [8000, 16000, 24000, 44100])
def test_default_mel_bands_have_no_empty_filter(sample_rate: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torchaudio warns about all-zero filters
        loss_fn = MultiResolutionMelLoss(sample_rate)
    filters = [buf for name, buf in loss_fn.named_buffers() if name.endswith("mel_filters")]
    assert len(filters) == 4 and all((fb.amax(dim=0) > 0).all() for fb in filters)
    assert default_n_mels(1024, 16000) == 80
    assert default_n_mels(256, 16000) == 32


def test_mel_loss_buffers_are_not_saved_and_follow_dtype_changes() -> None:
    loss_fn = MultiResolutionMelLoss(SR)
    assert loss_fn.state_dict() == {}
    assert len(list(loss_fn.buffers())) == 2 * 4  # window + filters per resolution, moved by .to()
    target = _speechlike(1, 1000)
    pred = target.flip(-1)
    ref = loss_fn(pred, target)
    # A trainer that casts the whole module keeps float32 spectra.
    assert loss_fn.to(torch.bfloat16)(pred, target).item() == pytest.approx(ref.item(), rel=1e-2)


def test_mel_loss_under_autocast_is_float32() -> None:
    loss_fn = MultiResolutionMelLoss(SR)
    target = _speechlike(2, 3000)
    pred = target + 0.1 * torch.randn_like(target)
    ref = loss_fn(pred, target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = loss_fn(pred.bfloat16(), target.bfloat16())
    assert out.dtype == torch.float32
    assert out.item() == pytest.approx(ref.item(), rel=0.05)


@pytest.mark.parametrize("device", DEVICES)
def test_mel_distance_is_per_item(device: str) -> None:
    target = _speechlike(3, 8000).to(device)
    pred = target.clone()
    pred[1] += 0.1 * torch.randn_like(pred[1])
    pred[2] += 0.3 * torch.randn_like(pred[2])
    dist = mel_distance(pred, target, SR)
    assert dist.shape == (3,) and dist.dtype == torch.float32
    assert dist[0].item() == pytest.approx(0.0, abs=1e-6)
    assert 0 < dist[1] < dist[2]
    short = mel_distance(torch.zeros(2, 1), torch.ones(2, 1), SR)
    assert short.shape == (2,) and torch.isfinite(short).all()


def test_hinge_losses_on_hand_made_logits() -> None:
    real_good, fake_good = [torch.full((2, 5), 2.0)], [torch.full((2, 7), -2.0)]
    assert discriminator_loss(real_good, fake_good).item() == 0.0
    zeros = [torch.zeros(2, 5)]
    assert discriminator_loss(zeros, zeros).item() == pytest.approx(2.0)  # relu(1) + relu(1)
    assert generator_adv_loss([torch.full((3, 4), 2.0)]).item() == 0.0
    assert generator_adv_loss([torch.full((3, 4), -1.0)]).item() == pytest.approx(2.0)
    # Averaged over discriminators, whatever their logits' sizes: (0 + 2) / 2.
    d_loss = discriminator_loss(
        [torch.full((2, 3), 2.0), torch.zeros(2, 9)], [torch.full((2, 3), -2.0), torch.zeros(2, 9)]
    )
    assert d_loss.item() == pytest.approx(1.0)
    g_loss = generator_adv_loss([torch.full((2, 3), 1.0), torch.zeros(2, 9)])
    assert g_loss.item() == pytest.approx(0.5)
    with pytest.raises(ValueError):
        discriminator_loss([torch.zeros(1)], [])
    with pytest.raises(ValueError):
        generator_adv_loss([])


def test_feature_matching_values_and_normalisation() -> None:
    gen = torch.Generator().manual_seed(0)
    real = [[torch.randn(2, 4, 10, generator=gen), torch.randn(2, 8, 5, generator=gen)] for _ in range(3)]
    assert feature_matching_loss(real, [[f.clone() for f in fs] for fs in real]).item() == 0.0
    # |real - 0| / mean|real| = 1 for every layer.
    assert feature_matching_loss(real, [[torch.zeros_like(f) for f in fs] for fs in real]).item() == (
        pytest.approx(1.0)
    )
    fake = [[f + 0.5 * torch.randn(f.shape, generator=gen) for f in fs] for fs in real]
    value = feature_matching_loss(real, fake)
    assert value.item() > 0
    # Relative to each layer's scale: scaling real and fake together changes nothing.
    scaled = feature_matching_loss(
        [[10 * f for f in fs] for fs in real], [[10 * f for f in fs] for fs in fake]
    )
    assert scaled.item() == pytest.approx(value.item(), rel=1e-5)
    fake_leaf = [[f.clone().requires_grad_() for f in fs] for fs in fake]
    feature_matching_loss(real, fake_leaf).backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for fs in fake_leaf for f in fs)
    with pytest.raises(ValueError):
        feature_matching_loss(real, fake[:2])
    with pytest.raises(ValueError):
        feature_matching_loss([[torch.zeros(2, 3)]], [[torch.zeros(2, 4)]])


# --- phase loss -----------------------------------------------------------------------------------------


def test_phase_loss_is_near_zero_for_identical_and_grows_with_phase_error() -> None:
    loss_fn = PhaseLoss()
    target = _speechlike(2, 8000)
    assert loss_fn(target, target.clone()).item() == pytest.approx(0.0, abs=1e-3)
    shifted = [loss_fn(torch.roll(target, k, dims=-1), target).item() for k in (1, 3, 10)]
    assert 0 < shifted[0] < shifted[1] < shifted[2], shifted
    # the sign flip keeps every magnitude but turns each phase by pi
    assert loss_fn(-target, target).item() == pytest.approx(2.0, abs=1e-2)


def test_phase_loss_ignores_loudness_and_silent_bins() -> None:
    loss_fn = PhaseLoss()
    target = _speechlike(1, 8000)
    assert loss_fn(3.0 * target, target).item() == pytest.approx(0.0, abs=1e-3)
    # silence in the target carries no weight: whatever the prediction does there costs nothing
    silent = torch.zeros(1, 1, 8000)
    assert loss_fn(torch.randn(1, 1, 8000), silent).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_phase_loss_gradients_are_finite_even_for_a_silent_prediction(device: str) -> None:
    loss_fn = PhaseLoss()
    target = _speechlike(2, 4000).to(device)
    for pred in (target + 0.1 * torch.randn_like(target), torch.zeros_like(target)):
        pred = pred.clone().requires_grad_()
        loss_fn(pred, target).backward()
        assert pred.grad is not None and torch.isfinite(pred.grad).all()


def test_phase_loss_rejects_bad_config() -> None:
    with pytest.raises(ValueError, match="fft_sizes"):
        PhaseLoss(fft_sizes=())
    with pytest.raises(ValueError, match="shapes differ"):
        PhaseLoss()(torch.zeros(1, 1, 100), torch.zeros(1, 1, 99))


def test_spectra_of_selected_rows_equal_the_rows_spectra() -> None:
    torch.manual_seed(0)
    x, window = torch.randn(5, 1, 1000), torch.hann_window(256)
    full = Spectra(x)
    full.log_magnitude(256, window)  # computed before the selection: sliced
    rows = torch.tensor([4, 1])
    sub, fresh = full.select(rows), Spectra(x[rows])
    assert full.select(None) is full
    assert torch.equal(sub.signal, fresh.signal)
    assert torch.allclose(sub.log_magnitude(256, window), fresh.log_magnitude(256, window))
    window = torch.hann_window(512)
    assert torch.allclose(sub.complex(512, window), fresh.complex(512, window))
    assert 512 not in full._complex  # what the subset computes later is its own
    loss = MultiResolutionMelLoss(16000, [256, 512])
    assert torch.allclose(loss(Spectra(x[rows] * 0.5), sub), loss(x[rows] * 0.5, x[rows]))
