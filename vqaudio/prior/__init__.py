"""The second stage: a prior over a trained VQ-VAE's codes.

:mod:`~vqaudio.prior.model` (the network), :mod:`~vqaudio.prior.checkpoint` (safetensors + JSON naming
its VQ-VAE), :mod:`~vqaudio.prior.codes` (a corpus encoded once), :mod:`~vqaudio.prior.coding` (entropy
coding driven by the prior) and :mod:`~vqaudio.prior.baselines` (unigram/bigram bits, numpy only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vqaudio._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "vqaudio.prior.baselines": ("BaselineBits", "baseline_bits", "bigram_bits", "unigram_bits"),
        "vqaudio.prior.checkpoint": (
            "PriorMeta",
            "build_prior",
            "check_vqvae",
            "load_prior",
            "load_prior_vqvae",
            "load_prior_vqvae",
            "save_prior",
        ),
        "vqaudio.prior.codes": ("CodeSet", "cached_codes", "encode_corpus"),
        "vqaudio.prior.coding": ("PriorCoder", "decode_with_prior", "encode_with_prior"),
        "vqaudio.prior.model": ("CodePrior", "PriorState"),
        "vqaudio.prior.sampling": ("Sampled", "filter_logits", "sample_audio", "sample_codes"),
    },
)

if TYPE_CHECKING:
    from vqaudio.prior.baselines import BaselineBits, baseline_bits, bigram_bits, unigram_bits
    from vqaudio.prior.checkpoint import (
        PriorMeta,
        build_prior,
        check_vqvae,
        load_prior,
        load_prior_vqvae,
        save_prior,
    )
    from vqaudio.prior.codes import CodeSet, cached_codes, encode_corpus
    from vqaudio.prior.coding import PriorCoder, decode_with_prior, encode_with_prior
    from vqaudio.prior.model import CodePrior, PriorState
    from vqaudio.prior.sampling import Sampled, filter_logits, sample_audio, sample_codes

__all__ = [
    "BaselineBits",
    "CodePrior",
    "CodeSet",
    "PriorMeta",
    "PriorCoder",
    "PriorState",
    "Sampled",
    "baseline_bits",
    "bigram_bits",
    "build_prior",
    "cached_codes",
    "check_vqvae",
    "decode_with_prior",
    "encode_corpus",
    "encode_with_prior",
    "filter_logits",
    "load_prior",
    "load_prior_vqvae",
    "sample_audio",
    "sample_codes",
    "save_prior",
    "unigram_bits",
]
