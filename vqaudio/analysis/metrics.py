"""How the codes of one level relate to phones and to speakers: numpy and scipy (no torch, no plotting).

Inputs are per utterance: ``codes`` ``[T]`` (int, in ``[0, K)``), ``phones`` ``[T]`` (int, ``-1`` = no
label) on the same frames, a speaker, and the level's frame duration. Frames whose phone is ``-1`` are
ignored by every statistic here (purity, mapping, code usage, runs, the speaker histograms).

- Phone purity, cluster purity and phone-normalised mutual information (PNMI), as defined in the
  cluster-quality analysis of HuBERT (Hsu et al., 2021, "HuBERT: Self-Supervised Speech Representation
  Learning by Masked Prediction of Hidden Units", the section reporting phone purity / cluster purity /
  PNMI). With the joint ``p(y, z)`` of phone ``y`` and code ``z`` over frames:
  phone purity ``= E_z[max_y p(y|z)] = sum_z max_y p(y, z)``, cluster purity
  ``= E_y[max_z p(z|y)] = sum_y max_z p(y, z)``, ``PNMI = I(y; z) / H(y)`` (natural logs, 0 log 0 = 0).
- The many-to-one mapping of the VQ-VAE paper (van den Oord et al., 2017, sec. 4.3): each code is mapped
  to its most frequent phone; they report 49.3% frame accuracy against 7.2% for a random latent space.
  Here the mapping is fit on training utterances and scored on held-out ones, next to a random-code
  baseline (same code usage, no relation to phones) and the majority-phone baseline.
- Speaker leakage: how well a held-out utterance's speaker is predicted from its code histogram
  (lower is better for voice conversion), see :func:`speaker_probe`, and how often one code alone
  names its speaker; both on a split made within each speaker (:func:`split_by_speaker`).
- Voices a model never trained on: ``analyze_level(heldout, ..., fit_on=seen)`` scores them with the
  mapping fit on the seen voices (do the codes mean the same phones in a new voice?).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vqaudio.analysis.probe import fit_logistic_regression
from vqaudio.hashing import stable_fraction

__all__ = [
    "LevelAnalysis",
    "PurityScores",
    "UttCodes",
    "analyze_level",
    "cooccurrence",
    "fit_mapping",
    "majority_baseline",
    "mapping_accuracy",
    "mean_phone_seconds",
    "mean_run_seconds",
    "perplexity_and_usage",
    "purity_scores",
    "random_code_baseline",
    "run_lengths",
    "run_seconds",
    "speaker_probe",
    "split_by_speaker",
    "split_utterances",
]


def _int_array(x: np.ndarray | Sequence[int], name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got {a.dtype}")
    return a.astype(np.int64, copy=False)


def _labelled(codes: np.ndarray, phones: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The frames of ``codes``/``phones`` (both ``[T]``) whose phone is not ``-1``."""
    codes, phones = _int_array(codes, "codes"), _int_array(phones, "phones")
    if codes.shape != phones.shape:
        raise ValueError(f"codes and phones differ in length: {codes.size} != {phones.size}")
    keep = phones >= 0
    if keep.all():
        return codes, phones
    if phones.min() < -1:
        raise ValueError(f"phones must be >= -1 (-1 = no label), got {phones.min()}")
    return codes[keep], phones[keep]


def cooccurrence(codes: np.ndarray, phones: np.ndarray, num_codes: int, num_phones: int) -> np.ndarray:
    """Joint counts ``[num_phones, num_codes]`` (int64) of (phone, code) over frames; phone ``-1`` ignored.

    One ``np.bincount`` over ``phone * K + code``, so tens of millions of frames take well under a second.
    """
    codes, phones = _labelled(codes, phones)
    if codes.size:
        if codes.min() < 0 or codes.max() >= num_codes:
            raise ValueError(f"codes must lie in [0, {num_codes}), got [{codes.min()}, {codes.max()}]")
        if phones.max() >= num_phones:
            raise ValueError(f"phones must lie in [-1, {num_phones}), got max {phones.max()}")
    flat = np.bincount(phones * num_codes + codes, minlength=num_phones * num_codes)
    return flat.astype(np.int64, copy=False).reshape(num_phones, num_codes)


@dataclass
class PurityScores:
    """HuBERT's cluster-quality scores (Hsu et al., 2021) of a joint table; entropies in nats."""

    phone_purity: float
    cluster_purity: float
    pnmi: float
    phone_entropy: float
    code_entropy: float
    mutual_information: float


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def purity_scores(joint: np.ndarray) -> PurityScores:
    """Phone purity, cluster purity and PNMI of a joint count table ``[num_phones, num_codes]``.

    ``p(y, z) = joint / joint.sum()``; phone purity ``sum_z max_y p(y, z)``; cluster purity
    ``sum_y max_z p(y, z)``; ``PNMI = I(y; z) / H(y)``, natural logs with 0 log 0 = 0 (Hsu et al., 2021).
    With a single phone (``H(y) = 0``) PNMI is reported as 0.
    """
    joint = np.asarray(joint, dtype=np.float64)
    if joint.ndim != 2:
        raise ValueError(f"joint must be [num_phones, num_codes], got shape {joint.shape}")
    total = joint.sum()
    if total <= 0:
        raise ValueError("the joint table is empty (no labelled frames)")
    p = joint / total
    py, pz = p.sum(axis=1), p.sum(axis=0)
    nz = p > 0
    outer = np.outer(py, pz)
    mi = float((p[nz] * np.log(p[nz] / outer[nz])).sum())
    mi = max(mi, 0.0)  # rounding can give -1e-17 for independent tables
    hy = _entropy(py)
    return PurityScores(
        phone_purity=float(p.max(axis=0).sum()),
        cluster_purity=float(p.max(axis=1).sum()),
        pnmi=mi / hy if hy > 0 else 0.0,
        phone_entropy=hy,
        code_entropy=_entropy(pz),
        mutual_information=mi,
    )


def fit_mapping(joint: np.ndarray) -> np.ndarray:
    """Many-to-one mapping ``[num_codes]`` (int64): each code to its most frequent phone (VQ-VAE, sec. 4.3).

    Ties go to the lowest phone index; codes never seen go to the overall most frequent phone.
    """
    joint = np.asarray(joint)
    if joint.ndim != 2:
        raise ValueError(f"joint must be [num_phones, num_codes], got shape {joint.shape}")
    mapping = np.argmax(joint, axis=0).astype(np.int64)  # argmax takes the first maximum
    unseen = joint.sum(axis=0) == 0
    mapping[unseen] = int(np.argmax(joint.sum(axis=1)))
    return mapping


def mapping_accuracy(mapping: np.ndarray, codes: np.ndarray, phones: np.ndarray) -> float:
    """Fraction of labelled frames (phone != -1) whose code maps to their phone under ``mapping``."""
    codes, phones = _labelled(codes, phones)
    if not codes.size:
        raise ValueError("no labelled frames to score the mapping on")
    return float(np.count_nonzero(np.asarray(mapping)[codes] == phones) / codes.size)


def majority_baseline(train_phones: np.ndarray, test_phones: np.ndarray) -> float:
    """Accuracy on ``test_phones`` of always predicting the most frequent training phone (-1 ignored)."""
    train = _int_array(train_phones, "train_phones")
    test = _int_array(test_phones, "test_phones")
    train, test = train[train >= 0], test[test >= 0]
    if not train.size or not test.size:
        raise ValueError("majority baseline needs labelled train and test frames")
    majority = int(np.argmax(np.bincount(train)))
    return float(np.count_nonzero(test == majority) / test.size)


def random_code_baseline(
    train_codes: np.ndarray,
    train_phones: np.ndarray,
    test_codes: np.ndarray,
    test_phones: np.ndarray,
    num_codes: int,
    num_phones: int,
    seed: int,
    repeats: int = 5,
) -> float:
    """Mapping accuracy of codes with the same usage as the real ones but no relation to phones.

    Every labelled frame, train and test independently, gets a code drawn from the training code-usage
    distribution; the mapping is fit on the randomised train frames and scored on the randomised test
    frames, averaged over ``repeats`` draws (seeded by ``(seed, repeat)``). This is the "random latent
    space" of the VQ-VAE paper (van den Oord et al., 2017: 7.2%). In expectation it cannot beat always
    guessing the test set's most frequent phone; it nears the majority baseline when every code has many
    training frames, and falls below it when noise maps rare codes to other phones.
    """
    train_codes, train_phones = _labelled(train_codes, train_phones)
    test_codes, test_phones = _labelled(test_codes, test_phones)
    if not train_codes.size or not test_codes.size:
        raise ValueError("random baseline needs labelled train and test frames")
    n = train_codes.size
    scores = []
    for r in range(repeats):
        # The code of a uniformly drawn training frame follows the training code usage exactly.
        rng = np.random.default_rng([seed, r])
        fake_train = train_codes[rng.integers(0, n, n)]
        fake_test = train_codes[rng.integers(0, n, test_codes.size)]
        mapping = fit_mapping(cooccurrence(fake_train, train_phones, num_codes, num_phones))
        scores.append(mapping_accuracy(mapping, fake_test, test_phones))
    return float(np.mean(scores))


def split_utterances(
    utt_ids: Sequence[str], train_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic train/test split ``(train_idx, test_idx)`` (sorted int64 indices into ``utt_ids``).

    An utterance is in train when :func:`vqaudio.hashing.stable_fraction` of ``f"{seed}:{utt_id}"`` (the
    project's one split hash, SHA-256) is below ``train_fraction``: the same on every machine and Python
    run, and independent of the order of ``utt_ids`` and of which other ids are present. With two or
    more ids neither side is left empty: if one is, the id nearest the threshold moves over.
    """
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    u = np.array([stable_fraction(f"{seed}:{uid}") for uid in utt_ids], dtype=np.float64)
    is_train = u < train_fraction
    if u.size >= 2 and is_train.all():
        is_train[np.argmax(u)] = False
    elif u.size >= 2 and not is_train.any():
        is_train[np.argmin(u)] = True
    return np.flatnonzero(is_train).astype(np.int64), np.flatnonzero(~is_train).astype(np.int64)


def split_by_speaker(
    utt_ids: Sequence[str], speakers: Sequence[str], train_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Train/test split ``(train_idx, test_idx)`` (sorted int64 indices) made within each speaker.

    Each speaker's utterances are split apart by :func:`split_utterances` (the same hash of
    ``f"{seed}:{utt_id}"``), so a speaker with two or more utterances has at least one on each side and
    the speaker measures' chance level is never that of a speaker missing from one side; a speaker with
    one utterance goes to train (it can be confused with, never tested). Where an utterance goes depends
    only on its own id, its speaker's ids and the arguments: not on the order of the lists, nor on the
    other speakers. ``test_idx`` is empty when no speaker has two utterances.
    """
    if len(utt_ids) != len(speakers):
        raise ValueError(f"{len(utt_ids)} utterance ids but {len(speakers)} speakers")
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    members: dict[str, list[int]] = {}
    for i, speaker in enumerate(speakers):
        members.setdefault(speaker, []).append(i)
    is_train = np.ones(len(utt_ids), dtype=bool)
    for group in members.values():
        if len(group) >= 2:
            _, test = split_utterances([utt_ids[i] for i in group], train_fraction, seed)
            is_train[np.asarray(group, dtype=np.int64)[test]] = False
    return np.flatnonzero(is_train).astype(np.int64), np.flatnonzero(~is_train).astype(np.int64)


def _perplexity_from_counts(counts: np.ndarray) -> tuple[float, float]:
    total = counts.sum()
    if total <= 0:
        raise ValueError("no codes to measure usage on")
    return math.exp(_entropy(counts / total)), float(np.count_nonzero(counts) / counts.size)


def perplexity_and_usage(codes: np.ndarray, num_codes: int) -> tuple[float, float]:
    """``(exp(H(z)), fraction of the K codes used at least once)`` of a code sequence ``[T]``.

    Perplexity is K for uniform usage and 1 when a single code is used.
    """
    return _perplexity_from_counts(np.bincount(_int_array(codes, "codes"), minlength=num_codes))


def run_lengths(seq: np.ndarray) -> np.ndarray:
    """Lengths (int64) of the runs of equal consecutive values of ``seq`` ``[T]``; empty for ``T = 0``."""
    seq = np.asarray(seq)
    if seq.size == 0:
        return np.zeros(0, dtype=np.int64)
    bounds = np.concatenate([[0], np.flatnonzero(seq[1:] != seq[:-1]) + 1, [seq.size]])
    return np.diff(bounds).astype(np.int64)


def _runs(key: np.ndarray, breaks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Lengths and values of runs of ``key``; a run also ends where ``breaks[i]`` (between i and i+1)."""
    if key.size == 0:
        return np.zeros(0, dtype=np.int64), key[:0]
    change = key[1:] != key[:-1]
    if breaks is not None:
        change |= breaks
    starts = np.concatenate([[0], np.flatnonzero(change) + 1])
    lengths = np.diff(np.concatenate([starts, [key.size]]))
    return lengths.astype(np.int64), key[starts]


def run_seconds(codes: np.ndarray, frame_seconds: float, phones: np.ndarray | None = None) -> np.ndarray:
    """Durations in seconds of the runs of one code in ``codes`` ``[T]``.

    With ``phones``, unlabelled frames (-1) are dropped and end a run, so only runs of labelled frames count.
    """
    codes = _int_array(codes, "codes")
    key = codes if phones is None else np.where(_int_array(phones, "phones") >= 0, codes, -1)
    lengths, values = _runs(key)
    return lengths[values >= 0] * float(frame_seconds)


def mean_run_seconds(
    codes_list: Sequence[np.ndarray],
    frame_seconds: float,
    phones_list: Sequence[np.ndarray] | None = None,
) -> float:
    """Mean duration in seconds of a run of one code, over all runs of all utterances (runs never span two
    utterances); see :func:`run_seconds` for ``phones_list``. NaN when there are no runs."""
    phones_iter = phones_list if phones_list is not None else [None] * len(codes_list)
    parts = [run_seconds(c, frame_seconds, p) for c, p in zip(codes_list, phones_iter, strict=True)]
    runs = np.concatenate(parts) if parts else np.zeros(0)
    return float(runs.mean()) if runs.size else math.nan


def mean_phone_seconds(durations_list: Sequence[np.ndarray]) -> float:
    """Mean phone duration in seconds from per-utterance arrays of interval durations; NaN if none."""
    parts = [np.asarray(d, dtype=np.float64).ravel() for d in durations_list]
    durations = np.concatenate(parts) if parts else np.zeros(0)
    return float(durations.mean()) if durations.size else math.nan


def speaker_probe(
    histograms: np.ndarray,
    speakers: np.ndarray,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    *,
    hellinger: bool = True,
    l2: float = 1e-3,
    max_iter: int = 1000,
) -> tuple[float, float]:
    """``(accuracy, chance)`` of predicting held-out utterances' speakers from their code histograms.

    ``histograms`` ``[N, K]`` (code counts per utterance) are normalised to distributions, square-rooted
    (Hellinger features, ``hellinger=True``), standardised with the training mean and std (features
    constant over the training utterances are dropped), and fed to multinomial logistic regression with
    a bias (:func:`vqaudio.analysis.probe.fit_logistic_regression`: L2 weight ``l2``, minimised until
    its gradient is below 1e-6, else a ``ConvergenceWarning`` after ``max_iter`` iterations). A linear
    probe rather than nearest-centroid: a stronger probe gives a more honest (higher) estimate of the
    speaker information left in the codes. ``chance`` is the frequency of the most common speaker among
    the test utterances. Test speakers absent from train cannot be predicted: errors.
    """
    x = np.asarray(histograms, dtype=np.float64)
    spk = np.asarray(speakers)
    train_idx, test_idx = np.asarray(train_idx, dtype=np.int64), np.asarray(test_idx, dtype=np.int64)
    if x.ndim != 2 or spk.shape != (x.shape[0],):
        raise ValueError(f"histograms must be [N, K] and speakers [N], got {x.shape} and {spk.shape}")
    if not test_idx.size or not train_idx.size:
        raise ValueError("speaker probe needs train and test utterances")
    sums = x.sum(axis=1, keepdims=True)
    x = np.divide(x, sums, out=np.zeros_like(x), where=sums > 0)
    if hellinger:
        x = np.sqrt(x)
    test_spk = spk[test_idx]
    _, test_counts = np.unique(test_spk, return_counts=True)
    chance = float(test_counts.max() / test_idx.size)
    mean, std = x[train_idx].mean(axis=0), x[train_idx].std(axis=0)
    varies = std > 1e-8  # a feature constant over the training utterances carries nothing: dropped
    xs = (x[:, varies] - mean[varies]) / std[varies]
    probe = fit_logistic_regression(xs[train_idx], spk[train_idx], l2=l2, max_iter=max_iter)
    predicted = probe.predict(xs[test_idx])
    return float(np.count_nonzero(predicted == test_spk) / test_idx.size), chance


@dataclass
class UttCodes:
    """One utterance at one level: ``codes`` and ``phones`` ``[T]`` on the level's frames (phone -1 = no
    label), ``phone_durations`` ``[P]``, the seconds of each phone interval (for the duration plot), and
    whether its voice is ``heldout`` (one the model never trained on)."""

    utt_id: str
    speaker: str
    codes: np.ndarray
    phones: np.ndarray
    phone_durations: np.ndarray
    heldout: bool = False


_JSON_FIELDS = (
    "mapping_accuracy",
    "random_baseline_accuracy",
    "majority_baseline_accuracy",
    "phone_purity",
    "cluster_purity",
    "pnmi",
    "perplexity",
    "code_usage",
    "mean_code_run_seconds",
    "mean_phone_seconds",
    "speaker_probe_accuracy",
    "speaker_chance",
    "speaker_frame_accuracy",
    "speaker_frame_chance",
    "num_frames",
    "num_utterances",
)


@dataclass
class LevelAnalysis:
    """Everything measured for one level (see :func:`analyze_level`); accuracies and purities are
    fractions in [0, 1], ``code_usage`` the fraction of codes used, durations in seconds.

    ``joint`` ``[num_phones, num_codes]`` (all labelled frames), ``mapping`` ``[num_codes]`` (fit on the
    train split, of ``fit_on`` when given), ``code_run_seconds`` and ``phone_seconds`` (for plots) are not
    serialised by :meth:`to_json_dict`.
    """

    mapping_accuracy: float
    random_baseline_accuracy: float
    majority_baseline_accuracy: float
    phone_purity: float
    cluster_purity: float
    pnmi: float
    perplexity: float
    code_usage: float
    mean_code_run_seconds: float
    mean_phone_seconds: float
    speaker_probe_accuracy: float
    speaker_chance: float
    speaker_frame_accuracy: float
    speaker_frame_chance: float
    num_frames: int
    num_utterances: int
    joint: np.ndarray = field(repr=False)
    mapping: np.ndarray = field(repr=False)
    code_run_seconds: np.ndarray = field(repr=False)
    phone_seconds: np.ndarray = field(repr=False)

    def to_json_dict(self) -> dict[str, Any]:
        """The metric fields as JSON-ready Python numbers (a NaN becomes ``None``)."""
        out: dict[str, Any] = {}
        for name in _JSON_FIELDS:
            value = getattr(self, name)
            if isinstance(value, (int, np.integer)):
                out[name] = int(value)
            else:
                out[name] = float(value) if math.isfinite(value) else None
        return out


@dataclass
class _Frames:
    """The utterances of a set that have a labelled frame, concatenated: ``codes``, ``phones``, ``uid``
    (the utterance index of each frame), ``labelled`` (phone != -1) and ``in_train`` (the frame's
    utterance is in the train split of :func:`split_utterances`) are ``[F]``; ``speakers`` ``[N]``
    indexes each utterance's speaker and ``speaker_train`` ``[N]`` says whether the utterance is on the
    train side of the speaker measures' split (:func:`split_by_speaker`)."""

    kept: list[UttCodes]
    codes: np.ndarray
    phones: np.ndarray
    uid: np.ndarray
    labelled: np.ndarray
    in_train: np.ndarray
    speakers: np.ndarray
    speaker_train: np.ndarray

    @property
    def train(self) -> np.ndarray:
        """Mask ``[F]`` of the labelled frames of train utterances."""
        return self.labelled & self.in_train

    @property
    def test(self) -> np.ndarray:
        """Mask ``[F]`` of the labelled frames of test utterances."""
        return self.labelled & ~self.in_train


def _frames(utterances: Sequence[UttCodes], train_fraction: float, seed: int) -> _Frames:
    """Utterances with a labelled frame, concatenated and split by :func:`split_utterances` (phones)
    and by :func:`split_by_speaker` (speakers)."""
    kept, codes_list, phones_list = [], [], []
    for utt in utterances:
        codes, phones = _int_array(utt.codes, "codes"), _int_array(utt.phones, "phones")
        if codes.shape != phones.shape:
            raise ValueError(f"{utt.utt_id}: {codes.size} codes but {phones.size} phone labels")
        if np.any(phones >= 0):
            kept.append(utt)
            codes_list.append(codes)
            phones_list.append(phones)
    if len(kept) < 2:
        raise ValueError(f"need at least two utterances with labelled frames, got {len(kept)}")
    ids, speakers = [u.utt_id for u in kept], [u.speaker for u in kept]
    train_idx, _ = split_utterances(ids, train_fraction, seed)
    n = len(kept)
    lengths = np.array([c.size for c in codes_list], dtype=np.int64)
    uid = np.repeat(np.arange(n, dtype=np.int64), lengths)
    phones = np.concatenate(phones_list)
    is_train = np.zeros(n, dtype=bool)
    is_train[train_idx] = True
    speaker_train = np.zeros(n, dtype=bool)
    speaker_train[split_by_speaker(ids, speakers, train_fraction, seed)[0]] = True
    return _Frames(
        kept=kept,
        codes=np.concatenate(codes_list),
        phones=phones,
        uid=uid,
        labelled=phones >= 0,
        in_train=is_train[uid],
        speakers=np.unique(speakers, return_inverse=True)[1],
        speaker_train=speaker_train,
    )


def _speaker_leakage(f: _Frames, num_codes: int) -> tuple[float, float, float, float]:
    """``(probe accuracy, chance, per-frame accuracy, chance)`` of predicting the speaker from the codes,
    fit on the train side of ``f``'s speaker split and scored on its test side (so on ``f``'s own
    speakers); all NaN when no speaker has two utterances (no test side: not computable)."""
    train_idx, test_idx = np.flatnonzero(f.speaker_train), np.flatnonzero(~f.speaker_train)
    if not test_idx.size:
        return math.nan, math.nan, math.nan, math.nan
    n = len(f.kept)
    lab = f.labelled
    histograms = np.bincount(f.uid[lab] * num_codes + f.codes[lab], minlength=n * num_codes)
    probe_acc, chance = speaker_probe(histograms.reshape(n, num_codes), f.speakers, train_idx, test_idx)
    # frame level: how often one code alone names its speaker (a many-to-one code -> speaker mapping)
    frame_spk = f.speakers[f.uid]
    frame_train = f.speaker_train[f.uid]
    tr, te = lab & frame_train, lab & ~frame_train
    num_spk = int(f.speakers.max()) + 1
    spk_mapping = fit_mapping(cooccurrence(f.codes[tr], frame_spk[tr], num_codes, num_spk))
    frame_acc = mapping_accuracy(spk_mapping, f.codes[te], frame_spk[te])
    return probe_acc, chance, frame_acc, majority_baseline(frame_spk[tr], frame_spk[te])


def analyze_level(
    utterances: Sequence[UttCodes],
    num_codes: int,
    num_phones: int,
    frame_seconds: float,
    train_fraction: float = 0.5,
    seed: int = 0,
    *,
    fit_on: Sequence[UttCodes] | None = None,
) -> LevelAnalysis:
    """Codes-vs-phones and codes-vs-speaker analysis of one level over a set of utterances.

    Utterances with no labelled frame are left out. They are split by :func:`split_utterances`; the
    many-to-one mapping and both baselines are fit on the train split and scored on the held-out split
    (as the VQ-VAE paper's mapping, but held out). The speaker measures (the utterance probe and the
    per-frame code -> speaker mapping, each with its chance level) use :func:`split_by_speaker` instead,
    so every speaker with two or more utterances is on both sides; when no speaker has two they are NaN
    (not computable). Phone purity, cluster purity and PNMI are computed on all labelled frames, as in
    HuBERT's analysis: they need no fitting (phone purity is the accuracy of the mapping fit and scored
    on the same frames, so it upper-bounds the held-out mapping accuracy up to sampling noise). Code
    usage, perplexity and code runs use all labelled frames as well.

    With ``fit_on`` (e.g. the utterances of the voices a model trained on, with ``utterances`` those of
    voices it never heard), the mapping and both phone baselines are fit on the train split of
    ``fit_on`` instead (split as :func:`analyze_level` of ``fit_on`` alone would split it) and scored on
    every labelled frame of ``utterances``: whether the codes mean the same phones in new voices. All
    other scores (purity, PNMI, usage, runs, speaker leakage with its chance level) stay those of
    ``utterances`` themselves, on their own split.
    """
    f = _frames(utterances, train_fraction, seed)
    if fit_on is None:
        train_codes, train_phones = f.codes[f.train], f.phones[f.train]
        test_codes, test_phones = f.codes[f.test], f.phones[f.test]
    else:
        ref = _frames(fit_on, train_fraction, seed)
        train_codes, train_phones = ref.codes[ref.train], ref.phones[ref.train]
        test_codes, test_phones = f.codes[f.labelled], f.phones[f.labelled]
    joint = cooccurrence(f.codes, f.phones, num_codes, num_phones)
    scores = purity_scores(joint)
    mapping = fit_mapping(cooccurrence(train_codes, train_phones, num_codes, num_phones))
    perplexity, usage = _perplexity_from_counts(joint.sum(axis=0))

    key = np.where(f.labelled, f.codes, -1)
    run_len, run_val = _runs(key, f.uid[1:] != f.uid[:-1])
    code_runs = run_len[run_val >= 0] * float(frame_seconds)
    durations = [np.asarray(u.phone_durations, dtype=np.float64).ravel() for u in f.kept]
    phone_seconds = np.concatenate(durations)
    probe_acc, chance, frame_acc, frame_chance = _speaker_leakage(f, num_codes)

    return LevelAnalysis(
        mapping_accuracy=mapping_accuracy(mapping, test_codes, test_phones),
        random_baseline_accuracy=random_code_baseline(
            train_codes, train_phones, test_codes, test_phones, num_codes, num_phones, seed
        ),
        majority_baseline_accuracy=majority_baseline(train_phones, test_phones),
        phone_purity=scores.phone_purity,
        cluster_purity=scores.cluster_purity,
        pnmi=scores.pnmi,
        perplexity=perplexity,
        code_usage=usage,
        mean_code_run_seconds=float(code_runs.mean()),
        mean_phone_seconds=float(phone_seconds.mean()) if phone_seconds.size else math.nan,
        speaker_probe_accuracy=probe_acc,
        speaker_chance=chance,
        speaker_frame_accuracy=frame_acc,
        speaker_frame_chance=frame_chance,
        num_frames=int(np.count_nonzero(f.labelled)),
        num_utterances=len(f.kept),
        joint=joint,
        mapping=mapping,
        code_run_seconds=code_runs,
        phone_seconds=phone_seconds,
    )
