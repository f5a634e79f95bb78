"""The hierarchical VQ-VAE: shapes, lengths, encode/decode vs forward, speakers, codes."""

from __future__ import annotations

import math

import pytest
import torch

from vqaudio.config import LevelConfig, ModelConfig, QuantizerConfig
from vqaudio.errors import ConfigError, UserError
from vqaudio.models import Codes, build_model
from vqaudio.models.decoder import ISTFTHead

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture
def model(tiny_model_config) -> torch.nn.Module:
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


def test_unconditioned_level_ignores_the_speaker_and_others_keep_it(tiny_model_config) -> None:
    from dataclasses import replace

    cfg = tiny_model_config()
    cfg = replace(cfg, levels=[replace(cfg.levels[0], speaker_conditioned=False), cfg.levels[1]])
    torch.manual_seed(0)
    net = build_model(cfg, ["alice", "bob"]).eval()
    assert not net.levels[0].conditioned and net.levels[1].conditioned
    # the unconditioned decoder has no conditioning weights at all
    plain = build_model(replace(cfg, speaker_dim=0), [])
    n0 = sum(p.numel() for p in net.levels[0].decoder.parameters())
    assert n0 == sum(p.numel() for p in plain.levels[0].decoder.parameters())
    wav = torch.randn(1, 1, 2000) * 0.1
    for level, same in ((0, True), (1, False)):
        codes = net.encode(wav, level=level)
        a, b = (net.decode(codes, level=level, speaker=s) for s in ("alice", "bob"))
        assert torch.equal(a, b) == same
    # the training pass decodes level 0 without the speaker as well
    out = net(wav, torch.tensor([1]))
    torch.testing.assert_close(out.recon[0], net.decode(net.encode(wav, level=0), level=0))


def test_conversion_level_must_be_speaker_conditioned(tiny_model_config) -> None:
    from dataclasses import replace

    cfg = tiny_model_config()
    off = replace(cfg.levels[1], speaker_conditioned=False)
    with pytest.raises(ConfigError, match="conversion_level .1. must be a speaker-conditioned level"):
        replace(cfg, levels=[cfg.levels[0], off])
    replace(cfg, levels=[cfg.levels[0], off], speaker_dim=0)  # nothing to convert with: allowed


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
    assert [model.check_level(lv) for lv in (0, 1, -1, -2)] == [0, 1, 1, 0]
    assert model.level_model(-1) is model.levels[1]
    for bad in (2, -3):
        with pytest.raises(UserError, match=r"level .* does not exist: this model has levels 0\.\.1"):
            model.check_level(bad)
    # codes of level 1 decoded at level 0 (by index or from the end): refused, however they were made
    model.eval()
    coarse = model.encode(torch.randn(400) * 0.1, level=1)
    by_hand = Codes.wrap(torch.zeros(1, 10, dtype=torch.long), num_samples=400, level=1)
    for codes in (coarse, by_hand):
        for level in (0, -2):
            with pytest.raises(UserError, match=f"level 1's; decoding them at level {level} is refused"):
                model.decode(codes, level=level)
        assert model.decode(codes, level=-1).shape == (1, 1, 400)  # -1 is level 1 of 2


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
    # codes know their level: another level's decoder refuses them (plain tensors are the caller's word)
    with pytest.raises(UserError, match="level 0's; decoding them at level 1 is refused"):
        model.decode(codes, level=1)
    assert model.decode(codes, level=-2).shape[-1] == 1001  # -2 is level 0 of 2
    assert model.decode(plain, level=1).shape[-1] == codes.shape[-1] * model.hops[1]


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


def test_grad_reverse_negates_and_scales_the_gradient() -> None:
    from vqaudio.models.speaker import grad_reverse

    x = torch.randn(5, requires_grad=True)
    y = grad_reverse(x, 0.3)
    assert torch.equal(y, x)
    (y * torch.arange(5.0)).sum().backward()
    assert torch.allclose(x.grad, -0.3 * torch.arange(5.0))


def test_speaker_adversary_pulls_the_encoder_against_the_classifier(tiny_model_config) -> None:
    from dataclasses import replace

    torch.manual_seed(0)
    net = build_model(replace(tiny_model_config(), speaker_adversary=1.0), ["alice", "bob", "carol"])
    assert net.speaker_adversary is not None and len(net.speaker_adversary) == net.num_levels
    wav, spk = torch.randn(3, 1, 800) * 0.1, torch.tensor([0, 1, 2])
    out = net(wav, spk)  # training mode: initialises the codebooks
    net.eval()  # deterministic from here (no EMA updates), so two passes can be compared
    out = net(wav, spk)
    assert out.adversary_loss is not None and out.adversary_accuracy is not None
    assert len(out.adversary_loss) == net.num_levels
    assert all(0.0 <= float(a) <= 1.0 for a in out.adversary_accuracy)
    # the classifier's own gradient descends its loss; the encoder gets the reversed gradient
    enc = net.levels[0].encoder
    enc_params = [p for p in enc.parameters() if p.requires_grad]
    adv_params = list(net.speaker_adversary[0].parameters())
    grads_rev = torch.autograd.grad(out.adversary_loss[0], enc_params + adv_params, allow_unused=True)
    net.speaker_adversary[0].scale = -1.0  # no reversal: plain gradient of the same loss
    out2 = net(wav, spk)
    grads_plain = torch.autograd.grad(out2.adversary_loss[0], enc_params + adv_params, allow_unused=True)
    n = len(enc_params)
    enc_pairs = [(a, b) for a, b in zip(grads_rev[:n], grads_plain[:n], strict=True) if a is not None]
    assert enc_pairs and all(torch.allclose(a, -b, atol=1e-6) for a, b in enc_pairs)
    for a, b in zip(grads_rev[n:], grads_plain[n:], strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    # no adversary without speaker labels (inference) or with a single speaker
    assert net(wav).adversary_loss is None
    single = build_model(replace(tiny_model_config(), speaker_adversary=1.0), ["alice"])
    assert single.speaker_adversary is None


def test_speaker_encoder_mix_trains_the_encoder_through_the_decoder(tiny_model_config) -> None:
    from dataclasses import replace

    torch.manual_seed(0)
    cfg = replace(tiny_model_config(), speaker_encoder=True, speaker_encoder_mix=1.0)
    net = build_model(cfg, ["alice", "bob"])
    out = net(torch.randn(2, 1, 800) * 0.1, torch.tensor([0, 1]))
    params = [p for p in net.speaker_encoder.parameters() if p.requires_grad]
    grads = torch.autograd.grad(sum(r.sum() for r in out.recon), params, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    # with mix 0 and table voices only the reconstruction does not depend on the speaker encoder (the
    # graph still reaches it through the per-item choice for index -1 voices, with zero gradient)
    net.config = replace(cfg, speaker_encoder_mix=0.0)
    out = net(torch.randn(2, 1, 800) * 0.1, torch.tensor([0, 1]))
    grads = torch.autograd.grad(sum(r.sum() for r in out.recon), params, allow_unused=True)
    assert all(g is None or not g.any() for g in grads)


def test_speaker_index_minus_one_is_conditioned_on_its_own_embedding(tiny_model_config) -> None:
    """A voice with no table row (index -1, the trainer's speed perturbation) decodes with the speaker
    encoder's embedding of itself, is left out of the speaker-encoder loss and out of the adversary."""
    from dataclasses import replace

    torch.manual_seed(0)
    cfg = replace(tiny_model_config(), speaker_encoder=True, speaker_adversary=1.0)
    net = build_model(cfg, ["alice", "bob", "carol"]).eval()
    wav = torch.randn(2, 1, 800) * 0.1
    mixed = net(wav, torch.tensor([-1, 2]))
    own = net(wav, net.speaker_encoder(wav))  # float embeddings: every item on its own
    table = net(wav, torch.tensor([0, 2]))
    for a, b, c in zip(mixed.recon, own.recon, table.recon, strict=True):
        assert torch.allclose(a[0], b[0]) and torch.allclose(a[1], c[1])
        assert not torch.allclose(a[0], c[0])  # not row 0, the clamped index
    # the speaker loss and the adversary see item 1 only
    embedded = net.speaker_encoder(wav)
    expected = torch.nn.functional.mse_loss(embedded[1], net.speaker_embedding.weight[2])
    assert mixed.speaker_loss is not None and torch.allclose(mixed.speaker_loss, expected)
    alone = net(wav[1:], torch.tensor([2]))
    assert mixed.adversary_loss is not None and alone.adversary_loss is not None
    for a, b in zip(mixed.adversary_loss, alone.adversary_loss, strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    # no table voice in the batch: both losses are 0, not NaN
    none = net(wav, torch.tensor([-1, -1]))
    assert none.speaker_loss is not None and float(none.speaker_loss.detach()) == 0.0
    assert none.adversary_loss is not None and all(float(a.detach()) == 0.0 for a in none.adversary_loss)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"speaker_encoder_mix": 0.5}, "needs model.speaker_encoder"),
        ({"speaker_encoder": True, "speaker_encoder_mix": 1.5}, "speaker_encoder_mix must be in"),
        ({"speaker_adversary": -1.0}, "speaker_adversary must be >= 0"),
        ({"voice_perturbation": 1.5}, "voice_perturbation must be in"),
        ({"voice_perturbation_levels": [2]}, "voice_perturbation_levels must list"),
        ({"voice_perturbation_levels": []}, "voice_perturbation_levels must list"),
    ],
)
def test_speaker_options_are_checked(tiny_model_config, changes: dict, message: str) -> None:
    from dataclasses import replace

    from vqaudio.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        replace(tiny_model_config(), **changes)


@pytest.mark.parametrize(("up", "down"), [(5, 4), (4, 5), (10, 9)])
def test_shift_voice_scales_frequencies_and_keeps_timing(up: int, down: int) -> None:
    from vqaudio.models.perturb import shift_voice

    sr, t = 16000, 16000
    time = torch.arange(t) / sr
    gate = (time > 0.4) & (time < 0.6)  # a tone burst: where it is must not move
    wav = (torch.sin(2 * torch.pi * 1000.0 * time) * gate)[None]
    out = shift_voice(wav, up, down)
    assert out.shape == wav.shape
    spectrum = torch.fft.rfft(out[0]).abs()
    peak_hz = float(spectrum.argmax()) * sr / t
    assert abs(peak_hz - 1000.0 * up / down) < 15.0
    energy = out[0] ** 2
    centre = float((energy * time).sum() / energy.sum())
    assert abs(centre - 0.5) < 0.01


def test_voice_perturbation_is_training_only(tiny_model_config) -> None:
    from dataclasses import replace

    from vqaudio.models.perturb import perturb_voices

    wav = torch.randn(6, 1, 2000) * 0.1
    assert perturb_voices(wav, 0.0) is wav
    moved = perturb_voices(wav, 1.0)
    assert moved.shape == wav.shape and not torch.allclose(moved, wav)
    torch.manual_seed(0)
    net = build_model(replace(tiny_model_config(), voice_perturbation=1.0), ["alice", "bob"])
    net(wav[:2], torch.tensor([0, 1]))  # training pass (initialises the codebooks)
    net.eval()
    out = net(wav[:2], torch.tensor([0, 1]))
    decoded = net.decode(net.encode(wav[:2], level=0), level=0, speaker=torch.tensor([0, 1]))
    assert torch.allclose(out.recon[0], decoded, atol=1e-5)


@pytest.mark.parametrize("shared", [False, True])
def test_voice_perturbation_reaches_only_the_chosen_levels(
    tiny_model_config, shared_front_config, shared
) -> None:
    """``voice_perturbation_levels``: the listed levels' encoders hear the shifted copy, the others the
    true voice (a codec level without speaker conditioning must reproduce the voice it heard)."""
    from dataclasses import replace

    from vqaudio.models.perturb import perturb_voices

    base = shared_front_config() if shared else tiny_model_config()
    cfg = replace(base, voice_perturbation=1.0, voice_perturbation_levels=[-1])
    net = build_model(cfg, ["alice", "bob"])
    top = net.num_levels - 1
    assert net.perturbed_levels() == [top]
    assert build_model(replace(cfg, voice_perturbation_levels=None), []).perturbed_levels() == list(
        range(top + 1)
    )
    assert build_model(replace(cfg, voice_perturbation=0.0), []).perturbed_levels() == []
    wav = torch.randn(3, 1, 1600) * 0.1
    picks = [None] * net.num_levels
    with torch.no_grad():
        torch.manual_seed(7)
        got = net._heard_latents(wav, picks)
        torch.manual_seed(7)
        heard = perturb_voices(wav, 1.0)
        clean = net._latents(wav, range(top + 1))
        shifted = net._latents(heard, range(top + 1))
        for i in range(top):
            assert torch.equal(got[i], clean[i])
        assert torch.allclose(got[top], shifted[top], atol=1e-6)
        assert not torch.allclose(got[top], clean[top], atol=1e-3)
        net.eval()  # inference never perturbs
        assert all(torch.equal(a, b) for a, b in zip(net._heard_latents(wav, picks), clean, strict=True))


@pytest.mark.parametrize("istft_strides", [1, 2, 3])
def test_istft_head_replaces_the_waveform_end_upsampling(tiny_model_config, istft_strides: int) -> None:
    """Any number of strides may go to the inverse STFT; length is kept and the head is differentiable."""
    torch.manual_seed(0)
    cfg = tiny_model_config()
    cfg.levels[1].istft_strides = istft_strides
    m = build_model(cfg, ["alice"])
    dec = m.levels[1].decoder
    assert dec.out.hop == math.prod(cfg.levels[1].strides[:istft_strides])
    assert len(dec.ups) == 3 - istft_strides
    x = (0.1 * torch.randn(2, 1, 1234)).requires_grad_()
    out = m(x, torch.tensor([0, 0]))
    assert out.recon[1].shape == x.shape
    out.recon[1].square().mean().backward()
    assert dec.out.proj.weight.grad is not None and torch.isfinite(dec.out.proj.weight.grad).all()


def test_istft_head_makes_the_inverse_of_its_spectrum() -> None:
    """A head whose projection yields a signal's log-magnitude and phase returns that signal."""
    head = ISTFTHead(channels=2 * 41, hop=20)
    with torch.no_grad():
        head.proj.weight.copy_(torch.eye(82)[:, :, None])
        head.proj.bias.zero_()
    t = torch.arange(20 * 50) / 16000
    x = torch.sin(2 * torch.pi * 440 * t) * 0.5
    spec = torch.stft(x, 80, 20, window=torch.hann_window(80), center=True, return_complex=True)
    frames = torch.cat([spec.abs().clamp(min=1e-9).log(), spec.angle()])[None, :, :50]  # [1, 82, 51 -> 50]
    y = head(frames)[0, 0]
    assert y.shape == x.shape
    # the head pads the last frame by repeating it, so the very end differs slightly
    torch.testing.assert_close(y[:-40], x[:-40], atol=1e-4, rtol=0)


def test_istft_head_runs_in_float32_under_autocast() -> None:
    torch.manual_seed(0)
    head = ISTFTHead(channels=8, hop=20)
    x = torch.randn(2, 8, 30)
    plain = head(x)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        mixed = head(x)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, plain)


def test_encoder_blocks_per_scale_only_changes_the_encoder(tiny_model_config) -> None:
    """``encoder_blocks_per_scale: 0`` leaves the encoder strided convolutions up to its bottleneck; the
    decoder keeps ``blocks_per_scale``, lengths are kept, and old configs (None) build as before."""
    cfg = tiny_model_config()
    cfg.levels[1].blocks_per_scale = 2
    before = build_model(cfg, ["alice"])
    assert cfg.levels[1].encoder_blocks == 2
    cfg.levels[1].encoder_blocks_per_scale = 0
    after = build_model(cfg, ["alice"])

    def keys(module: torch.nn.Module, part: str) -> set[str]:
        return {k for k in module.state_dict() if k.startswith(f"levels.1.{part}.")}

    assert keys(after, "decoder") == keys(before, "decoder")
    assert keys(after, "encoder") < keys(before, "encoder")
    assert not any(".blocks." in k for k in keys(after, "encoder") if ".down." in k)
    assert {k for k in after.state_dict() if k.startswith("levels.0.")} == {
        k for k in before.state_dict() if k.startswith("levels.0.")
    }
    x = 0.1 * torch.randn(2, 1, 777)
    out = after(x, torch.tensor([0, 0]))
    assert all(r.shape == x.shape for r in out.recon)
    with pytest.raises(ConfigError, match="block counts"):
        LevelConfig(encoder_blocks_per_scale=-1)


def test_shared_front_levels_read_level_0_features(shared_front_config) -> None:
    torch.manual_seed(0)
    m = build_model(shared_front_config(), ["alice", "bob"])
    assert m.input_multiple(0) == m.input_multiple(2) == 40  # lcm of the hops: one padding for all
    assert m.levels[1].encoder.inp.weight.shape == (8, 8, 1)  # 1x1 from level 0's 8 feature channels
    assert len(m.levels[1].encoder.down) == 2 and len(m.levels[0].encoder.down) == 4  # its own stride only
    for length in (1, 7, 40, 333, 1601):
        x = 0.1 * torch.randn(2, 1, length)
        m.train()
        out = m(x, torch.tensor([0, 1]))
        assert all(r.shape == x.shape for r in out.recon)
        m.eval()
        with torch.no_grad():
            ref = m(x, torch.tensor([0, 1]))
        for level in range(3):
            codes = m.encode(x, level=level)
            assert codes.shape == (2, math.ceil(length / m.hops[level]))
            assert torch.equal(codes.as_subclass(torch.Tensor), ref.quantizer[level].codes)
            y = m.decode(codes, level=level, speaker=torch.tensor([0, 1]))
            assert torch.allclose(y, ref.recon[level], atol=1e-5)


def test_shared_front_gradients_reach_the_front_from_every_level(shared_front_config) -> None:
    torch.manual_seed(0)
    m = build_model(shared_front_config(), ["alice"])
    front = m.levels[0].encoder.inp.weight
    grads = []
    for level in range(3):
        m.zero_grad()
        out = m(0.1 * torch.randn(2, 1, 400), torch.tensor([0, 0]))
        out.recon[level].square().mean().backward()
        assert front.grad is not None and front.grad.abs().sum() > 0
        grads.append(front.grad.clone())
    assert not torch.allclose(grads[1], grads[2])


@pytest.mark.parametrize("shared", [True, False])
def test_a_level_trained_on_some_items_gives_those_rows_of_the_full_pass(
    shared_front_config, shared: bool
) -> None:
    torch.manual_seed(0)
    cfg = shared_front_config()
    cfg.shared_front = shared
    m = build_model(cfg, ["alice", "bob", "carol"]).eval()
    x, spk = 0.1 * torch.randn(4, 1, 333), torch.tensor([0, 1, 2, 1])
    items = [None, torch.tensor([0, 1]), torch.tensor([2, 3, 0])]
    with torch.no_grad():
        full, part = m(x, spk), m(x, spk, items)
    for level, pick in enumerate(items):
        rows = slice(None) if pick is None else pick
        assert part.recon[level].shape == (4 if pick is None else len(pick), 1, 333)
        assert torch.allclose(part.recon[level], full.recon[level][rows], atol=1e-6)
        assert torch.equal(part.quantizer[level].codes, full.quantizer[level].codes[rows])
    m.train()
    out = m(x, spk, items)  # training mode: gradients flow from a level's rows only
    out.recon[1].square().mean().backward()
    assert all(p.grad is not None for p in m.levels[1].decoder.parameters())
    assert all(p.grad is None for p in m.levels[2].decoder.parameters())
    with pytest.raises(ValueError, match="items has 2 entries for 3 levels"):
        m(x, spk, [None, None])


def test_shared_front_needs_strides_that_begin_with_level_0s(shared_front_config) -> None:
    cfg = shared_front_config()
    with pytest.raises(ConfigError, match="strides of level 1 .* must begin with level 0's"):
        ModelConfig(levels=[cfg.levels[0], LevelConfig(strides=[5, 2, 2])], shared_front=True)
    ModelConfig(levels=[cfg.levels[0], LevelConfig(strides=[5, 2, 2])])  # fine without sharing


# ------------------------------------------------------------------------------- receptive field


def odd_strides_config() -> ModelConfig:
    """Odd and unit strides, kernel 5, two dilations, no encoder blocks, an iSTFT head of hop 3."""
    small = dict(codebook_size=16, code_dim=3, channels=3, max_channels=6, kernel_size=5, dilations=[1, 2])
    return ModelConfig(
        levels=[
            LevelConfig(strides=[3, 1, 2], blocks_per_scale=2, bottleneck_blocks=2, **small),
            LevelConfig(strides=[3, 4], istft_strides=1, encoder_blocks_per_scale=0, **small),
        ],
        quantizer=QuantizerConfig(kmeans_iters=2),
        speaker_dim=4,
    )


def _measured_field(model: torch.nn.Module, level: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The receptive field the gradients show: the input samples one code frame's latent depends on,
    and the code frames one frame's audio depends on, as one-sided context beyond the frame's own."""
    lv = model.level_model(level)
    hop = lv.hop
    x = torch.randn(1, 1, 48 * math.lcm(*model.hops), requires_grad=True)
    shared = model.config.shared_front and level != 0
    z = lv.encoder(model.level_model(0).encoder.features(x)) if shared else lv.encoder(x)
    j = z.shape[-1] // 2
    (z[0, :, j] * torch.randn(z.shape[1])).sum().backward()
    read = torch.nonzero(x.grad[0, 0]).flatten()
    encoder = (j * hop - int(read.min()), int(read.max()) - (j * hop + hop - 1))
    codes = torch.randn(1, lv.quantizer.dim, 48, requires_grad=True)
    wav = lv.decoder(codes, lv.condition(model.speaker_vector(0, 1, x.device)))[0, 0]
    f = 24
    (wav[f * hop : (f + 1) * hop] * torch.randn(hop)).sum().backward()
    frames = torch.nonzero(codes.grad[0].abs().sum(0)).flatten()
    return encoder, (f - int(frames.min()), int(frames.max()) - f)


@pytest.mark.parametrize("make", ["tiny_model_config", "shared_front_config", "odd_strides"])
def test_reported_receptive_field_is_the_measured_one(request: pytest.FixtureRequest, make: str) -> None:
    config = odd_strides_config() if make == "odd_strides" else request.getfixturevalue(make)()
    torch.manual_seed(0)
    model = build_model(config, ["a", "b"]).eval()
    for level in range(model.num_levels):
        field = model.receptive_field(level)
        assert (field.encoder, field.decoder) == _measured_field(model, level), level
