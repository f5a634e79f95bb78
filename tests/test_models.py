"""The hierarchical VQ-VAE: shapes, lengths, encode/decode vs forward, speakers, codes."""

from __future__ import annotations

import pytest
import torch

from vqaudio.config import LevelConfig, ModelConfig, QuantizerConfig
from vqaudio.errors import UserError
from vqaudio.models import Codes, build_model

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def tiny_model_config() -> ModelConfig:
    small = dict(codebook_size=32, code_dim=4, channels=4, max_channels=8, bottleneck_blocks=1)
    return ModelConfig(
        levels=[LevelConfig(strides=[2, 5], **small), LevelConfig(strides=[4, 5, 2], **small)],
        quantizer=QuantizerConfig(kmeans_iters=2),
        speaker_dim=4,
    )


@pytest.fixture
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(tiny_model_config(), ["alice", "bob", "carol"])


def test_tiny_model_is_tiny(model) -> None:
    assert sum(p.numel() for p in model.parameters()) < 20_000


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("length", [1, 2, 9, 10, 11, 39, 41, 400, 1234, 16000])
def test_output_length_equals_input_length(model, device: str, length: int) -> None:
    model = model.to(device)
    x = torch.randn(2, 1, length, device=device) * 0.1
    model.train()
    out = model(x, torch.tensor([0, 1], device=device))
    assert [r.shape for r in out.recon] == [(2, 1, length)] * 2
    model.eval()
    for level, hop in enumerate(model.hops):
        codes = model.encode(x, level=level)
        assert codes.shape == (2, -(-length // hop))
        y = model.decode(codes, level=level, speaker="bob")
        assert y.shape == (2, 1, length)


def test_random_lengths_round_trip(model) -> None:
    gen = torch.Generator().manual_seed(1)
    model.eval()
    for _ in range(10):
        length = int(torch.randint(1, 30000, (1,), generator=gen))
        y = model.decode(model.encode(torch.randn(length) * 0.1, level=1), level=1, speaker=0)
        assert y.shape == (1, 1, length)


def test_encode_accepts_three_shapes(model) -> None:
    model.eval()
    x = torch.randn(500) * 0.1
    a = model.encode(x, level=0)
    b = model.encode(x[None], level=0)
    c = model.encode(x[None, None], level=0)
    assert torch.equal(a, b) and torch.equal(b, c)
    with pytest.raises(ValueError):
        model.encode(torch.randn(1, 2, 500))


def test_decode_of_encode_equals_forward_in_eval_mode(model) -> None:
    torch.manual_seed(3)
    model.train()
    model(torch.randn(4, 1, 4000) * 0.1, torch.tensor([0, 1, 2, 0]))  # initialise codebooks
    model.eval()
    x = torch.randn(2, 1, 3000) * 0.1
    spk = torch.tensor([2, 1])
    out = model(x, spk)
    for level in range(model.num_levels):
        codes = model.encode(x, level=level)
        torch.testing.assert_close(codes.as_subclass(torch.Tensor), out.quantizer[level].codes)
        y = model.decode(codes, level=level, speaker=spk)
        torch.testing.assert_close(y, out.recon[level], rtol=1e-5, atol=1e-6)


def test_speaker_conditioning_changes_output(model) -> None:
    model.eval()
    codes = model.encode(torch.randn(2000) * 0.1, level=0)
    a = model.decode(codes, level=0, speaker="alice")
    b = model.decode(codes, level=0, speaker="bob")
    assert not torch.allclose(a, b)
    torch.testing.assert_close(model.decode(codes, level=0, speaker=1), b)


def test_unknown_speaker_lists_close_names(model) -> None:
    with pytest.raises(UserError, match="did you mean alice"):
        model.speaker_index("alise")
    with pytest.raises(UserError, match="out of range"):
        model.speaker_index(7)


def test_codes_out_of_range_and_bad_level_are_user_errors(model) -> None:
    with pytest.raises(UserError, match="out of range"):
        model.decode(torch.full((1, 5), 32), level=0)
    with pytest.raises(UserError, match="does not exist"):
        model.encode(torch.randn(100), level=5)


def test_codes_remember_length_but_operations_give_plain_tensors(model) -> None:
    model.eval()
    codes = model.encode(torch.randn(1001) * 0.1, level=0)
    assert isinstance(codes, Codes) and codes.num_samples == 1001 and codes.level == 0
    assert codes.dtype == torch.long
    plain = codes + 0
    assert type(plain) is torch.Tensor
    # plain tensors decode to whole frames, or to an explicit length
    assert model.decode(plain, level=0).shape[-1] == codes.shape[-1] * model.hops[0]
    assert model.decode(plain, level=0, length=1001).shape[-1] == 1001


def test_time_jitter_moves_frames_to_neighbours_only() -> None:
    from vqaudio.models.vqvae import time_jitter

    torch.manual_seed(0)
    z = torch.arange(50, dtype=torch.float32).repeat(2, 3, 1)  # [2, 3, 50], value = frame index
    assert torch.equal(time_jitter(z, 0.0), z)
    j = time_jitter(z, 0.5)
    moved = (j - z)[:, 0]
    assert set(moved.unique().tolist()) <= {-1.0, 0.0, 1.0}
    assert 0.3 < (moved != 0).float().mean() < 0.7
    assert torch.equal(j[:, 0], j[:, 2])  # all channels of a frame move together
