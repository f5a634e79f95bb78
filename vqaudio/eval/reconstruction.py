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
from dataclasses import asdict, dataclass, field
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
    "paired_differences",
    "select_utterances",
    "voice_kinds",
]

ALL, SEEN, HELDOUT = "all", "seen", "heldout"
EVAL_JSON_VERSION = 3
"""Version of ``vqaudio evaluate --json``: 3 added each score's ``per_utterance`` (one entry per file:
``utt_id``, ``speaker`` and the four metrics, ``null`` where a metric is not available), so two models
scored on the same files can be compared file by file (:func:`paired_differences`); 2 added
``version``, ``voices`` (utterances per group) and each score's ``voices`` (all / seen / heldout);
version 1 had none of them."""
METRICS = ("mel_distance", "si_sdr", "pesq", "stoi")
"""The per-file metrics of a score, in ``per_utterance`` and as its means."""


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
    # one dict per file: utt_id, speaker and METRICS (None: not available for that file)
    per_utterance: list[dict[str, Any]] = field(default_factory=list, repr=False)

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
    """Accumulates mel distance, SI-SDR and (when installed) PESQ-WB / STOI of (reference, estimate) pairs,
    file by file."""

    def __init__(self, sample_rate: int) -> None:
        self.sr = sample_rate
        self.pesq_fn, self.stoi_fn = _optional_metrics(sample_rate)
        self.rows: list[dict[str, Any]] = []
        self.bits = 0.0
        self.seconds = 0.0

    def add(
        self, ref: np.ndarray, est: np.ndarray, payload_bits: float = 0.0, utt: Utterance | None = None
    ) -> None:
        r, e = torch.from_numpy(ref).reshape(1, 1, -1), torch.from_numpy(est).reshape(1, 1, -1)
        pesq = stoi = None
        if self.pesq_fn is not None:
            try:
                pesq = self.pesq_fn(ref, est)
            except Exception:  # noqa: BLE001 - pesq rejects silent / too short files
                pass
        if self.stoi_fn is not None and len(ref) > self.sr // 4:
            stoi = self.stoi_fn(ref, est)
        self.rows.append(
            {
                "utt_id": None if utt is None else utt.utt_id,
                "speaker": None if utt is None else utt.speaker,
                "mel_distance": float(mel_distance(e, r, self.sr)[0]),
                "si_sdr": si_sdr(est, ref),
                "pesq": pesq,
                "stoi": stoi,
            }
        )
        self.bits += payload_bits
        self.seconds += len(ref) / self.sr

    def score(self, name: str, level: int | None, voices: str, bitrate: float | None = None) -> CodecScore:
        def mean(key: str) -> float | None:
            values = [row[key] for row in self.rows if row[key] is not None]
            return float(np.mean(values)) if values else None

        def mean_or_nan(key: str) -> float:
            m = mean(key)
            return math.nan if m is None else m

        measured = self.bits / self.seconds if self.seconds else math.nan
        return CodecScore(
            name,
            level,
            measured if bitrate is None else bitrate,
            len(self.rows),
            mean_or_nan("mel_distance"),
            mean_or_nan("si_sdr"),
            mean("pesq"),
            mean("stoi"),
            voices,
            list(self.rows),
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


LOWER_IS_BETTER = frozenset({"mel_distance"})


def _verdict(lo: float, hi: float) -> str:
    """``better`` / ``worse`` when the 95% interval of the improvement (signed: > 0 is better) excludes 0."""
    if lo > 0 and hi > 0:
        return "better"
    if lo < 0 and hi < 0:
        return "worse"
    return "unclear"  # the interval holds 0, or one file only (nan)


def _intervals(diff: np.ndarray, voice: np.ndarray, voices: int) -> tuple[float, float, str]:
    """Half-widths of the 95% interval of ``diff.mean()``: over voices (clustered; ``voice``: each
    file's voice index in ``range(voices)``) and over files, and which one decides (``"voices"``;
    ``"files"`` when all files are of one voice).

    Files of one voice are not independent (a model that suits a voice suits all its files), so the
    deciding interval treats voices as the units: the cluster-robust standard error of the mean with the
    small-sample factor V / (V - 1) (Liang & Zeger, 1986; "CR1") and Student's t with V - 1 degrees of
    freedom, for V voices. With one file per voice it is the ordinary paired t interval.
    """
    from scipy import stats

    n = len(diff)
    files = 1.96 * diff.std(ddof=1) / math.sqrt(n) if n > 1 else math.nan
    if voices < 2:
        return files, files, "files"
    sums = np.bincount(voice, weights=diff - diff.mean(), minlength=voices)
    se = math.sqrt(voices / (voices - 1) * float(np.sum(sums**2))) / n
    return float(stats.t.ppf(0.975, voices - 1)) * se, files, "voices"


def paired_differences(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """Compare two ``vqaudio evaluate --json`` documents (version >= 3) file by file.

    For every score row the two share (same ``name`` and ``voices``) and every metric of
    :data:`METRICS`, over the files both scored (matched by speaker and ``utt_id``, metric available in
    both): ``n`` files of ``speakers`` voices, both means, the mean difference ``after - before`` with
    a 95% interval ``ci95`` over voices (``interval: "voices"``, see :func:`_intervals`; over files
    when all are of one voice) and the interval that treats files as independent (``ci95_files``),
    the share of files where ``after`` is better (lower mel distance, higher otherwise; ties count
    half) and a ``verdict``: ``better`` / ``worse`` when ``ci95`` excludes 0, else ``unclear``. Rows in
    document order.

    Raises:
        UserError: a document has no per-file scores (version < 3), or the two share no files.
    """
    for doc in (before, after):
        if int(doc.get("version", 1)) < 3:
            raise UserError(
                f"evaluation JSON version {doc.get('version', 1)} has no per-file scores "
                f"(version 3, vqaudio evaluate --json of this release, has)"
            )
    rows_after = {(r["name"], r["voices"]): r for r in after["levels"]}
    out: list[dict[str, Any]] = []
    for row in before["levels"]:
        other = rows_after.get((row["name"], row["voices"]))
        if other is None:
            continue
        files_after = {(u["speaker"], u["utt_id"]): u for u in other["per_utterance"]}
        pairs = [
            (u, files_after[k])
            for u in row["per_utterance"]
            if (k := (u["speaker"], u["utt_id"])) in files_after
        ]
        for metric in METRICS:
            both = [(a, b) for a, b in pairs if a[metric] is not None and b[metric] is not None]
            if not both:
                continue
            ab = np.array([(a[metric], b[metric]) for a, b in both], dtype=np.float64)
            names, voice = np.unique([a["speaker"] for a, _ in both], return_inverse=True)
            diff = ab[:, 1] - ab[:, 0]
            sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
            half, half_files, unit = _intervals(diff, voice, len(names))
            out.append(
                {
                    "name": row["name"],
                    "level": row["level"],
                    "voices": row["voices"],
                    "metric": metric,
                    "n": len(diff),
                    "speakers": len(names),
                    "before": float(ab[:, 0].mean()),
                    "after": float(ab[:, 1].mean()),
                    "difference": float(diff.mean()),
                    "ci95": [float(diff.mean() - half), float(diff.mean() + half)],
                    "interval": unit,
                    "ci95_files": [float(diff.mean() - half_files), float(diff.mean() + half_files)],
                    "after_better": float(np.mean((sign * diff > 0) + 0.5 * (diff == 0))),
                    "verdict": _verdict(sign * (diff.mean() - half), sign * (diff.mean() + half)),
                }
            )
    if not out:
        raise UserError("the two evaluations share no scored files (same corpus, split and --per-speaker?)")
    return out


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
            scorers[(lv, kind)].add(ref, y.reshape(-1).float().cpu().numpy(), utt=utt)
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
            scorers[(b.name, kind)].add(ref, est, bits, utt=utt)
        if progress is not None:
            progress(n + 1, len(utts))
    return [sc.score(name, None, g) for (name, g), sc in scorers.items()]
