from __future__ import annotations

import pytest
import torch
from torch import nn

from vqaudio.train import (
    CombinedDiscriminator,
    DiscriminatorOutput,
    MultiPeriodDiscriminator,
    MultiScaleSTFTDiscriminator,
    discriminator_loss,
    feature_matching_loss,
    generator_adv_loss,
)
from vqaudio.train.discriminators import _STFTDiscriminator

DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
    ),
]


def _small(kind: str) -> nn.Module:
    """Narrow discriminators keep the tests fast; the structure is the default one."""
    if kind == "mpd":
        return MultiPeriodDiscriminator(channels=4, max_channels=16)
    if kind == "msstftd":
        return MultiScaleSTFTDiscriminator(channels=4)
    return CombinedDiscriminator(16000, channels=4)


N_SUB = {"mpd": 5, "msstftd": 3, "combined": 8}


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["mpd", "msstftd", "combined"])
@pytest.mark.parametrize("length", [1, 37, 8000])
def test_outputs_finite_and_gradients_reach_input(device: str, kind: str, length: int) -> None:
    torch.manual_seed(0)
    disc = _small(kind).to(device)
    x = (0.1 * torch.randn(2, 1, length, device=device)).requires_grad_()
    out = disc(x)
    assert isinstance(out, DiscriminatorOutput)
    assert len(out.logits) == len(out.features) == N_SUB[kind]
    for logits, feats in zip(out.logits, out.features, strict=True):
        assert logits.dim() == 2 and logits.shape[0] == 2 and logits.shape[1] >= 1
        assert torch.isfinite(logits).all()
        assert len(feats) == 5 and all(f.shape[0] == 2 and torch.isfinite(f).all() for f in feats)
    torch.stack([logits.mean() for logits in out.logits]).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_mpd_folds_by_period_and_pads() -> None:
    mpd = MultiPeriodDiscriminator(periods=(2, 3), channels=2, max_channels=4)
    out = mpd(torch.randn(1, 1, 37))  # 37 -> 38 (period 2), 39 (period 3)
    assert [f[0].shape[-1] for f in out.features] == [2, 3]
    assert [f[0].shape[-2] for f in out.features] == [-(-19 // 3), -(-13 // 3)]
    widths = [f.shape[1] for f in out.features[0]]
    assert widths == [2, 4, 4, 4, 4]  # doubling, capped at max_channels


def test_msstftd_sees_complex_stft() -> None:
    disc = MultiScaleSTFTDiscriminator(fft_sizes=(64,), channels=2)
    branch = disc.discriminators[0]
    assert isinstance(branch, _STFTDiscriminator)
    spec = branch.spectrogram(torch.randn(3, 1, 320))
    assert spec.shape == (3, 2, 320 // 16 + 1, 33) and spec.dtype == torch.float32
    # Frequency axis halves in the three strided layers; time axis is kept.
    feats = disc(torch.randn(3, 1, 320)).features[0]
    assert [f.shape[-1] for f in feats] == [33, 17, 9, 5, 5]
    assert all(f.shape[-2] == 21 for f in feats)


@pytest.mark.parametrize("kind", ["mpd", "msstftd", "combined"])
def test_state_dict_round_trip(kind: str, tmp_path) -> None:
    torch.manual_seed(0)
    disc = _small(kind).eval()
    path = tmp_path / "disc.pt"
    torch.save(disc.state_dict(), path)
    torch.manual_seed(1)
    other = _small(kind).eval()
    x = torch.randn(2, 1, 1000)
    assert not torch.equal(other(x).logits[0], disc(x).logits[0])
    other.load_state_dict(torch.load(path, weights_only=True), strict=True)
    for a, b in zip(disc(x).logits, other(x).logits, strict=True):
        assert torch.equal(a, b)
    assert not any("window" in key for key in disc.state_dict())  # STFT windows are not saved


def test_default_sizes_and_weight_norm() -> None:
    combined = CombinedDiscriminator(16000)
    n_mpd, n_stft = _n_params(combined.mpd), _n_params(combined.msstftd)
    print(f"MPD {n_mpd:,} params, MS-STFTD {n_stft:,} params, combined {_n_params(combined):,}")
    assert 1_000_000 < n_mpd < 8_000_000
    assert 100_000 < n_stft < 1_000_000
    assert len(combined.mpd.discriminators) == 5 and len(combined.msstftd.discriminators) == 3
    assert any("parametrizations.weight.original0" in key for key in combined.state_dict())


def test_autocast_bf16_forward_and_losses() -> None:
    torch.manual_seed(0)
    disc = _small("combined")
    real = 0.1 * torch.randn(2, 1, 2000)
    fake = (real + 0.05 * torch.randn_like(real)).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_real, out_fake = disc(real), disc(fake)
        d_loss = discriminator_loss(out_real.logits, [lg.detach() for lg in out_fake.logits])
        g_loss = generator_adv_loss(out_fake.logits) + feature_matching_loss(
            out_real.features, out_fake.features
        )
    assert d_loss.dtype == g_loss.dtype == torch.float32
    assert torch.isfinite(d_loss) and torch.isfinite(g_loss) and g_loss > 0
    g_loss.backward()
    assert fake.grad is not None and torch.isfinite(fake.grad).all() and fake.grad.abs().sum() > 0


def test_rejects_bad_input() -> None:
    disc = _small("combined")
    with pytest.raises(ValueError, match=r"\[B, 1, T\]"):
        disc(torch.zeros(2, 100))
    with pytest.raises(ValueError, match=r"\[B, 1, T\]"):
        disc(torch.zeros(2, 2, 100))
    with pytest.raises(ValueError):
        MultiPeriodDiscriminator(periods=())
    with pytest.raises(ValueError):
        MultiScaleSTFTDiscriminator(fft_sizes=(2,))
