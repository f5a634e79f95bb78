"""VectorQuantizer: EMA updates, restarts, straight-through gradients, collapse resistance."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vqaudio.quantize import VectorQuantizer, grow_codebook, kmeans


def _ready(vq: VectorQuantizer, codebook: torch.Tensor, count: float = 1.0) -> VectorQuantizer:
    vq.codebook.data.copy_(codebook)
    vq.ema_count.fill_(count)
    vq.ema_sum.copy_(codebook * count)
    vq.initialized.fill_(True)
    return vq


def test_ema_update_moves_code_toward_mean_of_its_assignments() -> None:
    torch.manual_seed(0)
    cb = torch.tensor([[0.0, 0.0], [10.0, 10.0], [-10.0, 10.0]])
    vq = _ready(
        VectorQuantizer(3, 2, normalize=False, standardize=False, decay=0.9, restart_threshold=0.0), cb
    )
    target = torch.tensor([1.0, -1.0])
    z = (target + 0.01 * torch.randn(50, 2)).t()[None]  # [1, 2, 50], all nearest to code 0
    before = (vq.codebook[0] - target).norm()
    vq.train()
    out = vq(z)
    assert (out.codes == 0).all()
    after = (vq.codebook[0] - target).norm()
    assert after < before
    # codes that got no assignment keep their vector
    torch.testing.assert_close(vq.codebook[1:], cb[1:], rtol=0, atol=1e-4)
    for _ in range(200):
        vq(z)
    torch.testing.assert_close(vq.codebook[0], z[0].mean(1), atol=1e-3, rtol=0)


def test_dead_code_is_restarted_from_encoder_outputs_and_statistics_reset() -> None:
    torch.manual_seed(0)
    cb = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 50.0], [0.0, -50.0]])
    vq = _ready(
        VectorQuantizer(4, 2, normalize=False, standardize=False, restart_threshold=0.5, restart_every=1),
        cb,
        count=10.0,
    )
    vq.ema_count[2:] = 0.0  # codes 2 and 3 are dead
    vq.ema_sum[2:] = 0.0
    z = torch.cat(
        [
            torch.randn(20, 2) * 0.1 + torch.tensor([1.0, 0.0]),
            torch.randn(20, 2) * 0.1 + torch.tensor([-1.0, 0.0]),
        ]
    ).t()[None]
    vq.train()
    out = vq(z)
    assert out.restarts == 2
    assert int(vq.total_restarts) == 2
    flat = z[0].t()
    for k in (2, 3):
        # the new vector is one of the current encoder outputs (plus tiny noise)
        assert torch.cdist(vq.codebook[k][None], flat).min() < 0.05
        share = 40 / 4
        assert vq.ema_count[k].item() == share
        torch.testing.assert_close(vq.ema_sum[k], vq.codebook[k] * share)
    # live codes were not touched by the restart
    assert torch.cdist(vq.codebook[:2], cb[:2]).diag().max() < 0.2


def test_straight_through_gradient_reaches_encoder_unchanged() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 4, normalize=False, standardize=False)
    vq.train()
    z = torch.randn(2, 4, 10, requires_grad=True)
    out = vq(z)
    g = torch.randn_like(out.quantized)
    (out.quantized * g).sum().backward()
    assert z.grad is not None
    torch.testing.assert_close(z.grad, g, rtol=0, atol=0)


def test_straight_through_with_normalisation_passes_through_the_normaliser_only() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 4, normalize=True, standardize=False)
    vq.train()
    z = torch.randn(2, 4, 10, requires_grad=True)
    g = torch.randn(2, 4, 10)
    (vq(z).quantized * g).sum().backward()
    z2 = z.detach().clone().requires_grad_(True)
    (F.normalize(z2, dim=1) * g).sum().backward()
    torch.testing.assert_close(z.grad, z2.grad)


def test_codebook_loss_mode_trains_codebook_by_gradient() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 4, mode="loss", normalize=False)
    vq.train()
    out = vq(torch.randn(2, 4, 30))
    out.loss.backward()
    assert isinstance(vq.codebook, torch.nn.Parameter)
    assert vq.codebook.grad is not None and vq.codebook.grad.abs().sum() > 0


def test_eval_mode_changes_nothing() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 4)
    vq.train()
    vq(torch.randn(2, 4, 30))
    vq.eval()
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    vq(torch.randn(2, 4, 30))
    for k, v in vq.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_first_batch_initialises_codebook_from_data() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 4, normalize=False, standardize=False, init="kmeans", kmeans_iters=5)
    data = torch.randn(2, 4, 200) + 100.0  # far from the random unit-norm init
    vq.train()
    vq(data)
    assert bool(vq.initialized)
    assert vq.codebook.mean() > 90


def test_kmeans_finds_separated_clusters() -> None:
    torch.manual_seed(0)
    centres = torch.eye(4) * 10
    x = (centres[:, None] + 0.1 * torch.randn(4, 50, 4)).reshape(-1, 4)
    c = kmeans(x, 4, 20, spherical=False)
    assert torch.cdist(centres, c).min(1).values.max() < 0.5


def test_quantizer_does_not_collapse_on_clustered_data() -> None:
    """A drifting, clustered input with more clusters than codes must keep most codes alive."""
    torch.manual_seed(0)
    k, d = 64, 8
    vq = VectorQuantizer(k, d, decay=0.95, restart_threshold=0.5, restart_every=2, usage_window=20)
    centres = F.normalize(torch.randn(256, d), dim=1)
    vq.train()
    for step in range(60):
        pick = torch.randint(256, (512,))
        z = centres[pick] + 0.05 * torch.randn(512, d) + 0.002 * step
        out = vq(z.t()[None])
    assert out.usage.item() > 0.9
    assert out.perplexity.item() > 0.5 * k


def test_standardisation_keeps_offset_dominated_latents_from_collapsing() -> None:
    """Encoder outputs at initialisation: a common offset ~30x their spread, drifting every step."""
    torch.manual_seed(0)
    k, d = 64, 8
    offset = torch.randn(d)
    signal = torch.randn(d, d)

    def batch(step: int) -> torch.Tensor:
        return (offset * (1 + 0.5 * step) + 0.005 * torch.randn(512, d) @ signal).t()[None]

    plain = VectorQuantizer(k, d, standardize=False, restart_threshold=0.0)
    standard = VectorQuantizer(k, d, standardize=True, restart_threshold=0.0)
    plain.train()
    standard.train()
    for step in range(30):
        p_out, s_out = plain(batch(step)), standard(batch(step))
    assert p_out.perplexity < 2  # the cloud drifted off the codebook: collapse
    assert s_out.perplexity > 0.5 * k


def test_encoding_uses_running_statistics_not_the_batch() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(32, 4)
    vq.train()
    for _ in range(5):
        vq(torch.randn(4, 4, 100) * 3 + 1)
    vq.eval()
    x = torch.randn(1, 4, 50) * 3 + 1
    alone = vq.lookup_codes(x)
    with_others = vq.lookup_codes(torch.cat([x, 100 * torch.randn(3, 4, 50)]))[:1]
    assert torch.equal(alone, with_others)
    torch.testing.assert_close(vq.running_mean, torch.ones(4), atol=0.3, rtol=0)


def _trained_vq(k: int = 8, dim: int = 4) -> tuple[VectorQuantizer, torch.Tensor]:
    """A quantiser after a few EMA steps on 4 well separated clusters, and those frames ``[1, D, N]``."""
    torch.manual_seed(0)
    centres = 4.0 * torch.randn(4, dim)
    z = (centres.repeat_interleave(100, 0) + 0.5 * torch.randn(400, dim)).t()[None]
    vq = VectorQuantizer(k, dim, restart_threshold=0.0)
    vq.train()
    for _ in range(5):
        vq(z)
    return vq, z


def test_grow_codebook_keeps_old_codes_and_splits_the_most_used() -> None:
    vq, z = _trained_vq()
    old = {k: v.clone() for k, v in vq.state_dict().items()}
    grown = grow_codebook(old, 20)  # more than doubling: the most used codes are split twice
    assert grown["codebook"].shape == (20, 4) and grown["ema_sum"].shape == (20, 4)
    assert grown["ema_count"].shape == (20,) and grown["last_used"].shape == (20,)
    torch.testing.assert_close(grown["codebook"][:8], old["codebook"])
    assert torch.equal(old["codebook"], vq.state_dict()["codebook"])  # the input is not modified
    torch.testing.assert_close(grown["ema_count"].sum(), old["ema_count"].sum())  # shares, not new mass
    order = torch.argsort(old["ema_count"], descending=True, stable=True)
    parents = torch.cat([order, order[:4]])
    near = (grown["codebook"][8:] - old["codebook"][parents]).norm(dim=1)
    assert (near > 0).all() and (near < 0.02 * old["codebook"][parents].norm(dim=1)).all()
    assert torch.equal(grown["last_used"][8:], old["last_used"][parents])
    for key in ("steps", "initialized", "running_mean", "running_var"):
        assert torch.equal(grown[key], old[key])
    with pytest.raises(ValueError, match="not more than"):
        grow_codebook(old, 8)


def test_grown_quantizer_codes_as_before_then_its_copies_separate() -> None:
    vq, z = _trained_vq()
    vq.eval()
    before = vq.dequantize(vq.lookup_codes(z))
    big = VectorQuantizer(16, 4, restart_threshold=0.0)
    big.load_state_dict(grow_codebook(vq.state_dict(), 16))
    big.eval()
    codes = big.lookup_codes(z)
    moved = (big.dequantize(codes) - before).norm(dim=1) > 0.02  # [1, N]: a frame coded by another vector
    assert float(moved.float().mean()) < 0.02  # only frames on a boundary between two old codes
    assert bool((codes >= 8).any())  # and the copies are used
    gap = (big.codebook[8:] - big.codebook[torch.argsort(vq.ema_count, descending=True, stable=True)]).norm(
        dim=1
    )
    big.train()
    for _ in range(20):
        big(z)
    order = torch.argsort(vq.ema_count, descending=True, stable=True)
    assert (big.codebook[8:] - big.codebook[order]).norm(dim=1).mean() > 2 * gap.mean()
