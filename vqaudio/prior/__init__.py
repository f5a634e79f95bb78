"""The second stage: a prior over a trained VQ-VAE's codes (:mod:`vqaudio.prior.model`) and the
baselines its bits per code are measured against (:mod:`vqaudio.prior.baselines`, numpy only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vqaudio._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "vqaudio.prior.baselines": ("BaselineBits", "baseline_bits", "bigram_bits", "unigram_bits"),
        "vqaudio.prior.model": ("CodePrior", "PriorState"),
    },
)

if TYPE_CHECKING:
    from vqaudio.prior.baselines import BaselineBits, baseline_bits, bigram_bits, unigram_bits
    from vqaudio.prior.model import CodePrior, PriorState

__all__ = ["BaselineBits", "CodePrior", "PriorState", "baseline_bits", "bigram_bits", "unigram_bits"]
