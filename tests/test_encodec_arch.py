"""bench/encodec_arch.py, the EnCodec 24 kHz architecture bench/encodec_speed.py times vqaudio against:
lengths, frame rate, the residual VQ, and the parameter count of the reference implementation."""

from __future__ import annotations

import math
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
import torch

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")),
]


@pytest.fixture(scope="module")
def arch(bench_module: Callable[[str], ModuleType]) -> ModuleType:
    return bench_module("encodec_arch")


@pytest.fixture(scope="module")
def model(arch: ModuleType) -> Any:  # an encodec_arch.EncodecArch
    torch.manual_seed(0)
    return arch.EncodecArch().eval()


def test_parameter_count_matches_the_reference(model: Any, arch: ModuleType) -> None:
    params = sum(p.numel() for p in model.parameters())
    assert abs(params - arch.REFERENCE_PARAMS) / arch.REFERENCE_PARAMS < 0.10
    assert tuple(model.quantizer.codebooks.shape) == (8, 1024, 128)


@pytest.mark.parametrize("device", DEVICES)
def test_round_trip_keeps_the_length_at_75_hz(model: Any, device: str) -> None:
    model = model.to(device)
    assert model.frame_rate == 75 and model.hop == 320 and model.bitrate == 6000
    with torch.inference_mode():
        for length in (1, 319, 320, 321, 4801, 24_000):
            wav = 0.1 * torch.randn(1, 1, length, device=device)
            codes = model.encode(wav)
            assert codes.shape == (1, 8, math.ceil(length / 320))
            assert codes.dtype == torch.long and int(codes.min()) >= 0 and int(codes.max()) < 1024
            assert model.decode(codes, length).shape == (1, 1, length)
            assert model.decode(codes).shape == (1, 1, codes.shape[-1] * 320)
    model.cpu()


def test_residual_vq_picks_the_nearest_codeword_per_stage_and_sums_them(arch: ModuleType) -> None:
    torch.manual_seed(1)
    rvq = arch.ResidualVQ(n_q=4, bins=64, dim=16)
    z = torch.randn(2, 16, 5)  # [B, dim, F]
    codes = rvq.encode(z)
    assert codes.shape == (2, 4, 5)
    residual = z.transpose(1, 2)  # [B, F, dim]
    total = torch.zeros_like(residual)
    for stage, book in enumerate(rvq.codebooks):
        nearest = torch.cdist(residual, book[None].expand(2, -1, -1)).argmin(-1)  # [B, F]
        assert torch.equal(codes[:, stage], nearest)
        residual = residual - book[nearest]
        total = total + book[codes[:, stage]]
    torch.testing.assert_close(rvq.decode(codes), total.transpose(1, 2))
