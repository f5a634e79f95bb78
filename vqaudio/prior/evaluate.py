"""Bits per code of a prior on held-out codes, next to log2(K), unigram and bigram, seen vs held-out voices.

A voice is "seen" when the VQ-VAE's speaker table has it (the prior is then conditioned on it) and
"held out" otherwise (the prior runs unconditioned: the "none" speaker it was trained with, see
``prior.speaker_dropout``). The baselines are fitted on the training codes the caller gives (the prior's
own training split) and scored on the same test codes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from vqaudio.data.corpora import Utterance
from vqaudio.errors import UserError
from vqaudio.models import VQVAE
from vqaudio.prior.baselines import baseline_bits
from vqaudio.prior.checkpoint import PriorMeta
from vqaudio.prior.codes import CodeSet, cached_codes, prior_split
from vqaudio.prior.model import CodePrior

__all__ = ["PriorScores", "evaluate_prior", "evaluate_prior_corpus", "speaker_indices", "utterance_bits"]


@dataclass(frozen=True)
class PriorScores:
    """One group of utterances at the prior's level: mean bits per code (over all their codes) of the
    prior and the baselines, ``log2_k``, and how many utterances and codes were scored."""

    bits_per_code: float
    unigram_bits: float
    bigram_bits: float
    log2_k: float
    utterances: int
    codes: int

    def to_json_dict(self) -> dict[str, float | int]:
        return asdict(self)


def speaker_indices(meta: PriorMeta, speakers: Sequence[str], conditioned: bool) -> list[int | None]:
    """The prior's speaker index of each name: its row in the VQ-VAE's table, ``None`` (the "none"
    speaker) for a voice it lacks or when the prior is not speaker-conditioned."""
    table = {name: i for i, name in enumerate(meta.speakers)}
    return [table.get(s) if conditioned else None for s in speakers]


@torch.no_grad()
def utterance_bits(
    prior: CodePrior,
    codes: Sequence[np.ndarray],
    speakers: Sequence[int | None],
    upper: Sequence[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """The prior's bits of every code ``[frames]`` of each utterance (one forward pass each; the sliding
    window bounds attention, not the length)."""
    device = prior.head.weight.device
    out = []
    for i, c in enumerate(codes):
        if not len(c):
            out.append(np.zeros(0))
            continue
        x = torch.as_tensor(np.asarray(c), dtype=torch.long, device=device)[None]
        spk = None if speakers[i] is None else torch.tensor([speakers[i]], device=device)
        up = (
            None
            if upper is None
            else torch.as_tensor(np.asarray(upper[i]), dtype=torch.long, device=device)[None]
        )
        out.append(prior.bits_per_code(x, spk, up)[0].double().cpu().numpy())
    return out


def evaluate_prior(
    prior: CodePrior, meta: PriorMeta, train: CodeSet, test: CodeSet
) -> dict[str, PriorScores]:
    """Scores of ``test`` (the prior's level, and the coarser one when it is conditioned on it) by group:
    ``"all"``, then ``"seen"`` and ``"heldout"`` voices when ``test`` has any of each."""
    cfg = meta.config.prior
    level = cfg.level
    k = prior.num_codes
    upper = test.codes[level + 1] if cfg.upper else None
    spk = speaker_indices(meta, test.speakers, cfg.speaker)
    bits = utterance_bits(prior, test.codes[level], spk, upper)
    seen = [
        name in meta.speakers and not held for name, held in zip(test.speakers, test.heldout, strict=True)
    ]
    groups = {"all": list(range(len(test)))}
    for name, want in (("seen", True), ("heldout", False)):
        members = [i for i, s in enumerate(seen) if s == want]
        if members and len(members) < len(test):
            groups[name] = members
    scores = {}
    for name, members in groups.items():
        part = [test.codes[level][i] for i in members]
        base = baseline_bits(train.codes[level], part, k)
        total = int(sum(len(c) for c in part))
        prior_bits = float(np.concatenate([bits[i] for i in members]).sum() / max(total, 1))
        scores[name] = PriorScores(
            prior_bits, base.unigram_bits, base.bigram_bits, base.log2_k, len(members), total
        )
    return scores


def evaluate_prior_corpus(
    prior: CodePrior,
    meta: PriorMeta,
    vqvae: VQVAE,
    utts: Sequence[Utterance],
    cache_dir: str | Path,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, PriorScores], str]:
    """:func:`evaluate_prior` on a corpus, split as the prior's training split it
    (:func:`~vqaudio.prior.codes.prior_split` with its seed and ``valid_per_speaker``): the utterances of
    the corpus's ``test`` split when it has one, else the validation ones (seen voices' validation split
    and held-out voices'); the baselines are fitted on the training split. Codes come from (and go to) the
    cache in ``cache_dir``. Returns the scores and which set was scored (``"test"`` or ``"valid"``)."""
    cfg = meta.config
    train, valid = prior_split(utts, cfg.data.valid_per_speaker, cfg.train.seed)
    test = [u for u in utts if u.split == "test"]
    which = "test" if test else "valid"
    scored = test or valid
    if not train or not scored:
        missing = "training" if not train else which
        raise UserError(f"the corpus has no {missing} utterances for this prior (see its data split)")
    level = cfg.prior.level
    levels = [level, level + 1] if cfg.prior.upper else [level]
    # the training run's own code set (train + valid), so its cache file is reused; test codes apart
    codes, _ = cached_codes(vqvae, [*train, *valid], levels, cache_dir, progress)
    train_set = codes.select(range(len(train)))
    if test:
        test_set, _ = cached_codes(vqvae, test, levels, cache_dir, progress)
    else:
        test_set = codes.select(range(len(train), len(codes)))
    return evaluate_prior(prior, meta, train_set, test_set), which
