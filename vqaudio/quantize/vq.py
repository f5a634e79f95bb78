"""Vector quantiser with EMA or loss-learned codebook, data init and dead-code restarts.

- Nearest neighbour in squared Euclidean distance and the straight-through estimator (VQ-VAE,
  van den Oord et al., 2017, "Neural Discrete Representation Learning").
- EMA codebook updates (ibid., appendix A.1; Razavi et al., 2019, VQ-VAE-2).
- L2-normalised codes (Yu et al., 2022, "Vector-quantized Image Modeling with Improved VQGAN"):
  distances become cosine distances, which keeps codebook usage high.
- Data-based initialisation by k-means on the first batch, and restarts of dead codes from current
  encoder outputs (Jukebox, Dhariwal et al., 2020; Zeghidour et al., 2021, SoundStream).

Under ``torch.distributed`` the EMA statistics are all-reduced and initialisation / restart vectors
are broadcast from rank 0, so the codebooks stay identical on every rank.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["CODEBOOK_TENSORS", "QuantizerOutput", "VectorQuantizer", "grow_codebook", "kmeans"]


@dataclass
class QuantizerOutput:
    """What one quantiser call returns.

    ``quantized`` ``[B, D, T]`` (straight-through), ``codes`` ``[B, T]``, ``loss`` (commitment +
    codebook + entropy terms, already weighted), and detached statistics of this batch.
    """

    quantized: Tensor
    codes: Tensor
    loss: Tensor
    commitment: Tensor
    perplexity: Tensor
    usage: Tensor
    restarts: int


# the quantiser's tensors with one row per code (``[K, ...]``): what a codebook of another size changes
CODEBOOK_TENSORS = ("codebook", "ema_count", "ema_sum", "last_used")


@torch.no_grad()
def grow_codebook(tensors: dict[str, Tensor], size: int, seed: int = 0) -> dict[str, Tensor]:
    """A trained quantiser's tensors (its state dict, unprefixed) with the codebook grown to ``size``
    codes by splitting (the LBG splitting step; Linde, Buzo & Gray, 1980).

    The old codes keep their rows and indices.  Each new code is a copy of one of the most used old
    codes (by ``ema_count``, most used first, cycling when more than doubling) moved by a tiny random
    step (1% of the code's norm over sqrt(D)); a code and its copies share its EMA count and sum, so the
    EMA update pulls them apart towards the two halves of the frames they now divide.  Nearly nothing
    changes at first: every frame is still coded by (a copy of) the code it had.  Returns new tensors;
    the input is not modified.  Raises ``ValueError`` when ``size`` is not larger.
    """
    codebook, count = tensors["codebook"], tensors["ema_count"]
    k, dim = codebook.shape
    extra = size - k
    if extra <= 0:
        raise ValueError(f"grow_codebook: {size} codes is not more than {k}")
    order = torch.argsort(count.float(), descending=True, stable=True)
    parents = order[torch.arange(extra) % k]
    shares = 1.0 + torch.bincount(parents, minlength=k).to(count.dtype)
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(extra, dim, generator=gen).to(codebook.device, codebook.dtype)
    step = (0.01 / math.sqrt(dim)) * codebook[parents].norm(dim=1, keepdim=True).clamp_min(1e-6)
    new_count = torch.cat([count / shares, (count / shares)[parents]])
    new_codebook = torch.cat([codebook, codebook[parents] + step * noise])
    grown = dict(tensors)
    grown["codebook"] = new_codebook
    grown["ema_count"] = new_count
    grown["ema_sum"] = new_codebook.to(tensors["ema_sum"].dtype) * new_count[:, None]
    grown["last_used"] = torch.cat([tensors["last_used"], tensors["last_used"][parents]])
    return grown


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _all_reduce(t: Tensor) -> Tensor:
    if _distributed():
        dist.all_reduce(t)
    return t


def _broadcast(t: Tensor) -> Tensor:
    if _distributed():
        dist.broadcast(t, src=0)
    return t


def kmeans(x: Tensor, k: int, iters: int, spherical: bool) -> Tensor:
    """k-means on ``x`` ``[N, D]`` -> centroids ``[k, D]``: k-means++ seeding, then Lloyd iterations.

    Seeding (Arthur & Vassilvitskii, 2007) draws each new centroid with probability proportional to
    the squared distance to the nearest one so far (one vectorised pass over the points per
    centroid); Lloyd's steps are fully vectorised.  When ``N < k`` points repeat with a little noise.
    Empty clusters keep their centroid; ``spherical`` keeps centroids on the unit sphere.
    """
    n = x.shape[0]
    if n < k:
        x = x[torch.randint(n, (k,), device=x.device)]
        x = x + 0.01 * x.std().clamp_min(1e-3) * torch.randn_like(x)
        n = k
    c = torch.empty(k, x.shape[1], dtype=x.dtype, device=x.device)
    c[0] = x[torch.randint(n, (1,), device=x.device)]
    nearest = (x - c[0]).pow(2).sum(1)
    for i in range(1, k):
        weights = nearest.clamp_min(0)
        idx = torch.multinomial(weights if weights.sum() > 0 else torch.ones_like(weights), 1)
        c[i] = x[idx[0]]
        nearest = torch.minimum(nearest, (x - c[i]).pow(2).sum(1))
    if spherical:
        c = F.normalize(c, dim=1)
    for _ in range(iters):
        assign = torch.cdist(x, c).argmin(dim=1)
        sums = torch.zeros_like(c).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)
        nonempty = counts > 0
        c[nonempty] = sums[nonempty] / counts[nonempty, None]
        if spherical:
            c = F.normalize(c, dim=1)
    return c


class VectorQuantizer(nn.Module):
    """Quantise ``z`` ``[B, D, T]`` against a codebook of ``codebook_size`` vectors of size ``D``.

    Args mirror :class:`vqaudio.config.QuantizerConfig`.  ``restart_threshold`` is relative: a code
    is dead when its EMA usage per step falls below ``restart_threshold`` times the uniform share
    ``frames_per_step / K``, so one setting works for every level and batch size.
    """

    codebook: Tensor
    ema_count: Tensor
    ema_sum: Tensor
    last_used: Tensor
    steps: Tensor
    initialized: Tensor
    total_restarts: Tensor
    running_mean: Tensor
    running_var: Tensor

    def __init__(
        self,
        codebook_size: int,
        dim: int,
        *,
        mode: str = "ema",
        decay: float = 0.99,
        commitment: float = 0.25,
        codebook_weight: float = 1.0,
        normalize: bool = True,
        init: str = "kmeans",
        kmeans_iters: int = 10,
        restart_threshold: float = 0.5,
        restart_every: int = 10,
        entropy_weight: float = 0.0,
        entropy_temperature: float = 0.1,
        usage_window: int = 100,
        standardize: bool = True,
        stats_momentum: float = 0.05,
    ) -> None:
        super().__init__()
        self.codebook_size = codebook_size
        self.dim = dim
        self.mode = mode
        self.decay = decay
        self.commitment = commitment
        self.codebook_weight = codebook_weight
        self.normalize = normalize
        self.init = init
        self.kmeans_iters = kmeans_iters
        self.restart_threshold = restart_threshold
        self.restart_every = restart_every
        self.entropy_weight = entropy_weight
        self.entropy_temperature = entropy_temperature
        self.usage_window = usage_window
        self.standardize = standardize
        self.stats_momentum = stats_momentum
        embed = F.normalize(torch.randn(codebook_size, dim), dim=1)
        if mode == "loss":
            self.codebook = nn.Parameter(embed)
        else:
            self.register_buffer("codebook", embed)
        self.register_buffer("ema_count", torch.zeros(codebook_size))
        self.register_buffer("ema_sum", torch.zeros(codebook_size, dim))
        self.register_buffer("last_used", torch.full((codebook_size,), -(10**9), dtype=torch.long))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        self.register_buffer("total_restarts", torch.zeros((), dtype=torch.long))
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))

    # ------------------------------------------------------------------ lookup

    def embeddings(self) -> Tensor:
        """The codebook as used for lookup ``[K, D]`` (unit-norm when ``normalize``)."""
        return F.normalize(self.codebook, dim=1) if self.normalize else self.codebook

    def _flatten(self, z: Tensor) -> Tensor:
        """``[B, D, T]`` -> flat float32 latents ``[B*T, D]``."""
        return z.float().transpose(1, 2).reshape(-1, self.dim)

    def _standardise(self, flat: Tensor, stats: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """Flat latents ``[N, D]`` standardised (when ``standardize``) and L2-normalised (when
        ``normalize``); by ``stats`` ``(mean, var)`` (training: the batch's, from
        :meth:`_update_running_stats`), else by the running statistics. Changes nothing.

        Standardisation (per dimension, over batch and time, as batch norm does; Ioffe & Szegedy,
        2015) keeps the latents spread around the origin, so a common offset in the encoder output
        cannot squeeze every frame onto one code (a collapse seen early in training: at
        initialisation the offset is ~30x the spread).  Training uses the batch's statistics (all
        ranks' under DDP) and tracks running ones; encoding uses the running ones, so codes do not
        depend on what else is in the batch.
        """
        if self.standardize:
            mean, var = stats if stats is not None else (self.running_mean, self.running_var)
            flat = (flat - mean) * torch.rsqrt(var + 1e-5)
        return F.normalize(flat, dim=1) if self.normalize else flat

    def _update_running_stats(self, flat: Tensor) -> tuple[Tensor, Tensor]:
        """Move the running statistics towards those of the batch ``flat`` ``[N, D]`` (set them, before
        the codebook is initialised) and return the batch's ``(mean, var)`` ``[D]``, with gradients,
        for :meth:`_standardise`."""
        mean, var = self._batch_stats(flat)
        with torch.no_grad():
            if not bool(self.initialized):
                self.running_mean.copy_(mean)
                self.running_var.copy_(var)
            else:
                self.running_mean.lerp_(mean.detach(), self.stats_momentum)
                self.running_var.lerp_(var.detach(), self.stats_momentum)
        return mean, var

    @staticmethod
    def _batch_stats(flat: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and variance ``[D]`` over all ranks' frames; gradients flow through the local part.

        Centred two-pass variance (no E[x^2] - E[x]^2 cancellation when the offset dwarfs the
        spread); ranks are combined with the parallel-variance formula (Chan et al., 1979).
        """
        mean = flat.mean(0)
        var = (flat - mean).pow(2).mean(0)
        if _distributed():
            n = float(flat.shape[0])
            head = _all_reduce(torch.cat([torch.tensor([n], device=flat.device), mean.detach() * n]))
            total, g_mean = head[0], head[1:] / head[0]
            g_var = _all_reduce(n * (var.detach() + (mean.detach() - g_mean).pow(2))) / total
            mean = mean + (g_mean - mean).detach()
            var = var + (g_var - var).detach()
        return mean, var

    def _distances(self, flat: Tensor, embed: Tensor) -> Tensor:
        """Squared Euclidean distances ``[N, K]``."""
        return flat.pow(2).sum(1, keepdim=True) - 2 * flat @ embed.t() + embed.pow(2).sum(1)[None]

    @torch.no_grad()
    def lookup_codes(self, z: Tensor) -> Tensor:
        """Nearest codes ``[B, T]`` for latents ``[B, D, T]``; never updates anything."""
        flat = self._standardise(self._flatten(z))
        return self._distances(flat, self.embeddings()).argmin(1).view(z.shape[0], z.shape[2])

    def dequantize(self, codes: Tensor) -> Tensor:
        """Codes ``[B, T]`` -> vectors ``[B, D, T]``."""
        return F.embedding(codes, self.embeddings()).transpose(1, 2)

    # ------------------------------------------------------------------ training-time updates

    def _uniform_share(self, frames: float) -> float:
        return max(frames / self.codebook_size, 1e-3)

    @torch.no_grad()
    def _initialise(self, flat: Tensor) -> None:
        k = self.codebook_size
        x = flat[torch.randperm(flat.shape[0], device=flat.device)[: max(20 * k, k)]]
        if self.init == "kmeans":
            c = kmeans(x, k, self.kmeans_iters, spherical=self.normalize)
        else:  # random encoder outputs
            c = x[torch.randint(x.shape[0], (k,), device=x.device)]
            c = F.normalize(c, dim=1) if self.normalize else c
        c = _broadcast(c.contiguous())
        self.codebook.data.copy_(c)
        share = self._uniform_share(
            _all_reduce(torch.tensor(float(flat.shape[0]), device=flat.device)).item()
        )
        self.ema_count.fill_(share)
        self.ema_sum.copy_(c * share)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _update(self, flat: Tensor, codes: Tensor) -> int:
        """EMA update (EMA mode), usage bookkeeping and dead-code restarts; returns #restarts."""
        k = self.codebook_size
        counts = torch.bincount(codes, minlength=k).float()
        sums = torch.zeros(k, self.dim, device=flat.device).index_add_(0, codes, flat)
        if _distributed():
            packed = _all_reduce(torch.cat([counts[:, None], sums], dim=1))
            counts, sums = packed[:, 0], packed[:, 1:]
        self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        if self.mode == "ema":
            self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
            n = self.ema_count.sum()
            smoothed = (self.ema_count + 1e-5) / (n + k * 1e-5) * n
            self.codebook.data.copy_(self.ema_sum / smoothed[:, None])
        self.last_used[counts > 0] = self.steps
        self.steps += 1
        if self.restart_threshold <= 0 or int(self.steps) % self.restart_every != 0:
            return 0
        share = self._uniform_share(float(counts.sum()))
        dead = self.ema_count < self.restart_threshold * share
        num_dead = int(dead.sum())
        if num_dead == 0:
            return 0
        pick = torch.randint(flat.shape[0], (k,), device=flat.device)
        fresh = flat[pick] + (0.01 / math.sqrt(self.dim)) * torch.randn(k, self.dim, device=flat.device)
        if self.normalize:
            fresh = F.normalize(fresh, dim=1)
        fresh = _broadcast(fresh.contiguous())
        self.codebook.data[dead] = fresh[dead]
        self.ema_count[dead] = share
        self.ema_sum[dead] = fresh[dead] * share
        self.total_restarts += num_dead
        return num_dead

    # ------------------------------------------------------------------ forward

    def forward(self, z: Tensor) -> QuantizerOutput:
        """Quantise ``z`` ``[B, D, T]``; in training mode also initialise / update the codebook."""
        b, d, t = z.shape
        flat = self._flatten(z)
        stats = self._update_running_stats(flat) if self.training and self.standardize else None
        flat = self._standardise(flat, stats)
        if self.training and not bool(self.initialized):
            self._initialise(flat.detach())
        embed = self.embeddings()
        dist_ = self._distances(flat, embed)
        codes = dist_.argmin(1)
        q = F.embedding(codes, embed)
        commitment = F.mse_loss(flat, q.detach())
        loss = self.commitment * commitment
        if self.mode == "loss":
            loss = loss + self.codebook_weight * F.mse_loss(q, flat.detach())
        if self.entropy_weight > 0:
            probs = F.softmax(-dist_ / self.entropy_temperature, dim=1)
            per_sample = -(probs * torch.log(probs + 1e-8)).sum(1).mean()
            avg = probs.mean(0)
            codebook_entropy = -(avg * torch.log(avg + 1e-8)).sum()
            loss = loss + self.entropy_weight * (per_sample - codebook_entropy)
        restarts = 0
        if self.training:
            restarts = self._update(flat.detach(), codes)
        with torch.no_grad():
            hist = torch.bincount(codes, minlength=self.codebook_size).float()
            hist = _all_reduce(hist) if self.training else hist
            p = hist / hist.sum().clamp_min(1)
            perplexity = torch.exp(-(p * torch.log(p + 1e-10)).sum())
            usage = ((self.steps - self.last_used) <= self.usage_window).float().mean()
        q_st = flat + (q - flat).detach()
        quantized = q_st.view(b, t, d).transpose(1, 2).to(z.dtype)
        return QuantizerOutput(
            quantized, codes.view(b, t), loss, commitment.detach(), perplexity, usage, restarts
        )
