"""Reconstruction quality of a model, per level, on held-out utterances.

Per level: nominal bitrate, log-mel distance, SI-SDR (Le Roux et al., 2019), and, when the optional
``pesq`` and ``pystoi`` packages are installed (``pip install vqaudio[metrics]``), wide-band PESQ
(ITU-T P.862.2) and STOI (Taal et al., 2011).

Scores are kept apart for seen and held-out voices (:func:`voice_kinds`) when the evaluated set holds
both: a result on the training voices says little about voices never trained on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from vqaudio.audio import read_audio
from vqaudio.data import Utterance, is_heldout_voice
from vqaudio.errors import UserError
from vqaudio.eval.baselines import Baseline, available_baselines
from vqaudio.models import VQVAE
from vqaudio.spectral import mel_distance

__all__ = [
    "CodecScore",
    "HELDOUT",
    "SEEN",
    "si_sdr",
    "evaluate_reconstruction",
    "evaluate_baselines",
    "eval_document",
    "first_per_speaker",
    "select_utterances",
    "voice_kinds",
]

ALL, SEEN, HELDOUT = "all", "seen", "heldout"
EVAL_JSON_VERSION = 2
"""Version of ``vqaudio evaluate --json``: 2 added ``version``, ``voices`` (utterances per group) and each
score's ``voices`` (all / seen / heldout); version 1 had neither."""


@dataclass
class CodecScore:
    """Mean scores of one codec setting: a model level (``level``) or a classical baseline (``None``)."""

    name: str
    level: int | None
    bitrate: float
    utterances: int
    mel_distance: float
    si_sdr: float
    pesq: float | None
    stoi: float | None
    voices: str = ALL  # which utterances: all, seen (training voices) or heldout (voices never trained on)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Scale-invariant SDR in dB of ``estimate`` ``[T]`` against ``reference`` ``[T]``."""
    ref = reference - reference.mean()
    est = estimate - estimate.mean()
    alpha = float(np.dot(est, ref) / max(np.dot(ref, ref), 1e-12))
    target = alpha * ref
    noise = est - target
    return float(10 * np.log10(max(np.dot(target, target), 1e-12) / max(np.dot(noise, noise), 1e-12)))


def _optional_metrics(sample_rate: int) -> tuple[Callable[..., float] | None, Callable[..., float] | None]:
    pesq_fn = stoi_fn = None
    try:
        from pesq import pesq as _pesq

        if sample_rate == 16000:
            pesq_fn = lambda ref, est: float(_pesq(16000, ref, est, "wb"))  # noqa: E731
    except ImportError:
        pass
    try:
        from pystoi import stoi as _stoi

        stoi_fn = lambda ref, est: float(_stoi(ref, est, sample_rate, extended=False))  # noqa: E731
    except ImportError:
        pass
    return pesq_fn, stoi_fn


class _Scorer:
    """Accumulates mel distance, SI-SDR and (when installed) PESQ-WB / STOI of (reference, estimate) pairs."""

    def __init__(self, sample_rate: int) -> None:
        self.sr = sample_rate
        self.pesq_fn, self.stoi_fn = _optional_metrics(sample_rate)
        self.values: dict[str, list[float]] = {"mel": [], "sisdr": [], "pesq": [], "stoi": []}
        self.bits = 0.0
        self.seconds = 0.0

    def add(self, ref: np.ndarray, est: np.ndarray, payload_bits: float = 0.0) -> None:
        v = self.values
        r, e = torch.from_numpy(ref).reshape(1, 1, -1), torch.from_numpy(est).reshape(1, 1, -1)
        v["mel"].append(float(mel_distance(e, r, self.sr)[0]))
        v["sisdr"].append(si_sdr(est, ref))
        if self.pesq_fn is not None:
            try:
                v["pesq"].append(self.pesq_fn(ref, est))
            except Exception:  # noqa: BLE001 - pesq rejects silent / too short files
                pass
        if self.stoi_fn is not None and len(ref) > self.sr // 4:
            v["stoi"].append(self.stoi_fn(ref, est))
        self.bits += payload_bits
        self.seconds += len(ref) / self.sr

    def score(self, name: str, level: int | None, voices: str, bitrate: float | None = None) -> CodecScore:
        v = self.values

        def mean(key: str) -> float | None:
            return float(np.mean(v[key])) if v[key] else None

        def mean_or_nan(key: str) -> float:
            m = mean(key)
            return math.nan if m is None else m

        measured = self.bits / self.seconds if self.seconds else math.nan
        return CodecScore(
            name,
            level,
            measured if bitrate is None else bitrate,
            len(v["mel"]),
            mean_or_nan("mel"),
            mean_or_nan("sisdr"),
            mean("pesq"),
            mean("stoi"),
            voices,
        )


def voice_kinds(utts: Sequence[Utterance], speakers: Sequence[str] = ()) -> list[str]:
    """Each utterance's group: ``heldout`` when its manifest row says so or, given a model's training
    ``speakers``, when its speaker is not one of them; else ``seen``.  All ``all`` when only one kind
    occurs (nothing to keep apart)."""
    known = set(speakers)
    kinds = [HELDOUT if is_heldout_voice(u.heldout, u.speaker, known) else SEEN for u in utts]
    return kinds if len(set(kinds)) > 1 else [ALL] * len(kinds)


def first_per_speaker(utts: Sequence[Utterance], n: int) -> list[Utterance]:
    """The first ``n`` utterances of each speaker, in the order given."""
    taken: dict[str, int] = {}
    chosen = []
    for u in utts:
        taken[u.speaker] = taken.get(u.speaker, 0) + 1
        if taken[u.speaker] <= n:
            chosen.append(u)
    return chosen


def select_utterances(
    utts: Sequence[Utterance],
    split: str | None = None,
    per_speaker: int | None = None,
    max_utts: int | None = None,
) -> list[Utterance]:
    """What ``vqaudio evaluate`` scores: the utterances of ``split`` (all when ``None``), sorted by id,
    the first ``per_speaker`` of each speaker, at most ``max_utts`` in all.

    Raises:
        UserError: ``split`` selects nothing.
    """
    chosen = [u for u in utts if split is None or u.split == split]
    if not chosen:
        raise UserError(f"no utterances in split '{split}'" if split is not None else "no utterances")
    chosen.sort(key=lambda u: (u.utt_id, u.speaker))
    if per_speaker is not None:
        chosen = first_per_speaker(chosen, per_speaker)
    return chosen[:max_utts]


def eval_document(kinds: Sequence[str], scores: Sequence[CodecScore]) -> dict[str, Any]:
    """The ``eval.json`` of ``vqaudio evaluate`` (version :data:`EVAL_JSON_VERSION`): the number of
    utterances, how many of each kind of voice (``kinds``: one per utterance) and every score row."""
    return {
        "version": EVAL_JSON_VERSION,
        "utterances": len(kinds),
        "voices": {g: list(kinds).count(g) for g in dict.fromkeys(kinds)},
        "levels": [s.as_dict() for s in scores],
    }


def _groups(kinds: Sequence[str]) -> list[str]:
    return [g for g in (ALL, SEEN, HELDOUT) if g in kinds]


@torch.no_grad()
def evaluate_reconstruction(
    model: VQVAE,
    utts: Sequence[Utterance],
    levels: Sequence[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
    kinds: Sequence[str] | None = None,
) -> list[CodecScore]:
    """Encode and decode every utterance at every level (decoding with its own speaker when known).

    ``kinds`` (one per utterance; default :func:`voice_kinds` against the model's speakers) splits the
    scores: one row per level and group, levels in order, seen before held-out.
    """
    levels = list(range(model.num_levels)) if levels is None else list(levels)
    kinds = voice_kinds(utts, model.speakers) if kinds is None else list(kinds)
    device = next(model.parameters()).device
    sr = model.sample_rate
    scorers = {(lv, g): _Scorer(sr) for lv in levels for g in _groups(kinds)}
    for n, (utt, kind) in enumerate(zip(utts, kinds, strict=True)):
        ref = read_audio(utt.path, sr)
        x = torch.from_numpy(ref).to(device)
        speaker = model.speakers.index(utt.speaker) if utt.speaker in model.speakers else 0
        for lv in levels:
            y = model.decode(model.encode(x, level=lv), level=lv, speaker=speaker).clamp(-1, 1)
            scorers[(lv, kind)].add(ref, y.reshape(-1).float().cpu().numpy())
        if progress is not None:
            progress(n + 1, len(utts))
    return [
        sc.score(f"vqaudio level {lv}", lv, g, model.config.bitrate(lv)) for (lv, g), sc in scorers.items()
    ]


def evaluate_baselines(
    utts: Sequence[Utterance],
    sample_rate: int,
    baselines: Sequence[Baseline] | None = None,
    progress: Callable[[int, int], None] | None = None,
    kinds: Sequence[str] | None = None,
) -> list[CodecScore]:
    """The same scores for Codec2 / Opus round trips (installed ones), bitrate = measured payload.

    ``kinds`` splits them as in :func:`evaluate_reconstruction` (default :func:`voice_kinds`).
    """
    chosen = available_baselines() if baselines is None else list(baselines)
    kinds = voice_kinds(utts) if kinds is None else list(kinds)
    scorers = {(b.name, g): _Scorer(sample_rate) for b in chosen for g in _groups(kinds)}
    for n, (utt, kind) in enumerate(zip(utts, kinds, strict=True)):
        ref = read_audio(utt.path, sample_rate)
        for b in chosen:
            est, bits = b.run(ref, sample_rate)
            scorers[(b.name, kind)].add(ref, est, bits)
        if progress is not None:
            progress(n + 1, len(utts))
    return [sc.score(name, None, g) for (name, g), sc in scorers.items()]
