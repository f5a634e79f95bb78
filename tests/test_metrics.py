"""Codes-vs-phones metrics (vqaudio.analysis.metrics) on hand-computed tables, and the analysis plots."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from vqaudio.analysis.metrics import (
    UttCodes,
    analyze_level,
    cooccurrence,
    fit_mapping,
    majority_baseline,
    mapping_accuracy,
    mean_phone_seconds,
    mean_run_seconds,
    perplexity_and_usage,
    purity_scores,
    random_code_baseline,
    run_lengths,
    run_seconds,
    speaker_probe,
    split_by_speaker,
    split_utterances,
)
from vqaudio.analysis.plots import plot_code_usage, plot_confusion, plot_cooccurrence, plot_durations

# Toy joint counts, phones y (rows) x codes z (columns), 8 frames:
#        z0 z1 z2
#   y0 [  4, 1, 0 ]     p(y) = [5/8, 3/8],  p(z) = [1/2, 1/4, 1/4]
#   y1 [  0, 1, 2 ]
# phone purity   = sum_z max_y p(y,z) = 4/8 + 1/8 + 2/8 = 7/8
# cluster purity = sum_y max_z p(y,z) = 4/8 + 2/8       = 3/4
# H(y) = -(5/8 ln 5/8 + 3/8 ln 3/8);  H(z) = -(1/2 ln 1/2 + 2 * 1/4 ln 1/4) = 3/2 ln 2
# I(y;z) = 1/2 ln(8/5) + 1/8 ln(4/5) + 1/8 ln(4/3) + 1/4 ln(8/3)   (sum of p ln p/(p(y)p(z)))
#        = H(y) - H(y|z) = H(y) - 1/4 ln 2   (only z1, with p(z1) = 1/4, is mixed: 1/2-1/2)
TOY = np.array([[4, 1, 0], [0, 1, 2]])
H_Y = -(5 / 8 * math.log(5 / 8) + 3 / 8 * math.log(3 / 8))
MI = 0.5 * math.log(8 / 5) + math.log(4 / 5) / 8 + math.log(4 / 3) / 8 + 0.25 * math.log(8 / 3)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_purity_scores_hand_computed() -> None:
    s = purity_scores(TOY)
    assert s.phone_purity == pytest.approx(7 / 8, abs=1e-12)
    assert s.cluster_purity == pytest.approx(3 / 4, abs=1e-12)
    assert s.phone_entropy == pytest.approx(H_Y, abs=1e-12)
    assert s.code_entropy == pytest.approx(1.5 * math.log(2), abs=1e-12)
    assert MI == pytest.approx(H_Y - 0.25 * math.log(2), abs=1e-12)  # the two hand derivations agree
    assert s.mutual_information == pytest.approx(MI, abs=1e-12)
    assert s.pnmi == pytest.approx(MI / H_Y, abs=1e-12)


def test_perfect_codes_score_one() -> None:
    rng = np.random.default_rng(0)
    phones = rng.integers(0, 5, 1000)
    joint = cooccurrence(phones, phones, 5, 5)
    s = purity_scores(joint)
    assert s.phone_purity == pytest.approx(1.0) and s.cluster_purity == pytest.approx(1.0)
    assert s.pnmi == pytest.approx(1.0, abs=1e-12)
    mapping = fit_mapping(joint)
    assert mapping.tolist() == [0, 1, 2, 3, 4]
    assert mapping_accuracy(mapping, phones, phones) == 1.0


def test_independent_codes_have_zero_pnmi() -> None:
    exact = np.outer([2, 1, 3], [1, 4, 2, 2])  # p(y, z) = p(y) p(z) exactly
    assert purity_scores(exact).pnmi == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(1)
    codes, phones = rng.integers(0, 16, 200_000), rng.integers(0, 8, 200_000)
    assert purity_scores(cooccurrence(codes, phones, 16, 8)).pnmi < 1e-3


def _homogeneity(phones: np.ndarray, codes: np.ndarray) -> float:
    """``(H(P) - H(P|C)) / H(P)`` from the frames themselves (sklearn's ``homogeneity_score`` with
    ``labels_true=phones``, ``labels_pred=codes``), natural logs: counts per phone, and per code the
    entropy of the phones it covers, weighted by the code's share of the frames."""

    def entropy(labels: np.ndarray) -> float:
        _, counts = np.unique(labels, return_counts=True)
        p = counts / counts.sum()
        return float(-(p * np.log(p)).sum())

    h_phone = entropy(phones)
    h_phone_given_code = sum(np.mean(codes == c) * entropy(phones[codes == c]) for c in np.unique(codes))
    return (h_phone - h_phone_given_code) / h_phone


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pnmi_is_the_mutual_information_over_the_phone_entropy(seed: int) -> None:
    """PNMI against I(phone; code) / H(phone) computed here from the frames, on a random example: codes
    that mostly follow the phone, some at random, some frames unlabelled (phone -1, left out)."""
    rng = np.random.default_rng(seed)
    num_phones, num_codes, frames = 7, 12, 5000
    phones = rng.integers(0, num_phones, frames)
    codes = np.where(
        rng.random(frames) < 0.6,
        (3 * phones + rng.integers(0, 2, frames)) % num_codes,
        rng.integers(0, num_codes, frames),
    )
    phones[rng.random(frames) < 0.1] = -1
    labelled = phones >= 0
    expected = _homogeneity(phones[labelled], codes[labelled])
    assert 0.2 < expected < 0.9  # neither trivial case
    assert purity_scores(cooccurrence(codes, phones, num_codes, num_phones)).pnmi == pytest.approx(
        expected, rel=1e-9
    )
    # and through the per-level analysis, over utterances
    cuts = np.sort(rng.choice(np.arange(1, frames), 9, replace=False))
    utts = [
        UttCodes(f"u{i}", f"s{i % 2}", c, ph, np.zeros(0))
        for i, (c, ph) in enumerate(zip(np.split(codes, cuts), np.split(phones, cuts), strict=True))
    ]
    res = analyze_level(utts, num_codes=num_codes, num_phones=num_phones, frame_seconds=0.02)
    assert res.pnmi == pytest.approx(expected, rel=1e-9)


def test_mapping_ties_unseen_and_held_out_accuracy() -> None:
    joint = np.concatenate([TOY, np.zeros((2, 1), dtype=np.int64)], axis=1)  # code 3 never seen
    mapping = fit_mapping(joint)
    # z0 -> y0; z1 tie 1-1 -> lowest phone y0; z2 -> y1; z3 unseen -> overall majority y0 (5 vs 3 frames)
    assert mapping.tolist() == [0, 0, 1, 0]
    assert fit_mapping(np.array([[1, 0, 0], [0, 3, 0]])).tolist() == [0, 1, 1]  # unseen -> majority y1
    codes = np.array([0, 1, 2, 3, 2, 2])
    phones = np.array([0, 1, 1, 0, 0, -1])  # right, wrong, right, right, wrong, ignored
    assert mapping_accuracy(mapping, codes, phones) == pytest.approx(3 / 5)


def test_majority_baseline_exact() -> None:
    train = np.array([2, 2, 1, 0, -1, -1, -1])  # -1 is the most frequent value but no phone
    test = np.array([2, 0, 2, 1, -1])
    assert majority_baseline(train, test) == pytest.approx(2 / 4)


def test_random_baseline_is_near_majority_and_far_below_real_codes() -> None:
    rng = np.random.default_rng(2)
    prior = [0.6, 0.2, 0.15, 0.05]

    def frames(n: int) -> tuple[np.ndarray, np.ndarray]:
        phones = rng.choice(4, size=n, p=prior)
        return phones * 2 + rng.integers(0, 2, n), phones  # 8 codes, skewed usage, each tells its phone

    (tr_c, tr_p), (te_c, te_p) = frames(20_000), frames(20_000)
    real = mapping_accuracy(fit_mapping(cooccurrence(tr_c, tr_p, 8, 4)), te_c, te_p)
    rand = random_code_baseline(tr_c, tr_p, te_c, te_p, 8, 4, seed=0)
    majority = majority_baseline(tr_p, te_p)
    assert real == 1.0
    assert abs(rand - majority) < 0.03 and rand < 0.7
    assert rand == random_code_baseline(tr_c, tr_p, te_c, te_p, 8, 4, seed=0)  # deterministic


def test_cooccurrence_matches_loop_and_ignores_unlabelled() -> None:
    rng = np.random.default_rng(3)
    codes, phones = rng.integers(0, 7, 3000), rng.integers(-1, 5, 3000)
    ref = np.zeros((5, 7), dtype=np.int64)
    for c, p in zip(codes.tolist(), phones.tolist(), strict=True):
        if p >= 0:
            ref[p, c] += 1
    joint = cooccurrence(codes, phones, 7, 5)
    assert joint.dtype == np.int64 and joint.shape == (5, 7)
    np.testing.assert_array_equal(joint, ref)
    assert joint.sum() == np.count_nonzero(phones >= 0)
    with pytest.raises(ValueError):
        cooccurrence(np.array([7]), np.array([0]), 7, 5)


def test_cooccurrence_ten_million_frames() -> None:
    rng = np.random.default_rng(4)
    n = 10_000_000
    codes = rng.integers(0, 1024, n)
    phones = rng.integers(-1, 40, n)
    joint = cooccurrence(codes, phones, 1024, 40)
    assert joint.sum() == np.count_nonzero(phones >= 0)


def test_runs_and_durations() -> None:
    assert run_lengths(np.array([3, 3, 1, 1, 1, 2, 3, 3])).tolist() == [2, 3, 1, 2]
    assert run_lengths(np.array([], dtype=np.int64)).tolist() == []
    # the unlabelled frame (-1) drops out and splits the run of 5s
    codes, phones = np.array([5, 5, 5, 2, 2, 7]), np.array([0, 0, -1, 1, 1, 1])
    np.testing.assert_allclose(run_seconds(codes, 0.01, phones), [0.02, 0.02, 0.01])
    # runs never span two utterances: [1, 1] | [1, 1, 2] -> runs of 2, 2, 1 frames
    assert mean_run_seconds([np.array([1, 1]), np.array([1, 1, 2])], 0.01) == pytest.approx(0.05 / 3)
    assert mean_phone_seconds([np.array([0.1, 0.2]), np.array([0.3])]) == pytest.approx(0.2)


def test_perplexity_and_usage_exact() -> None:
    assert perplexity_and_usage(np.tile(np.arange(4), 5), 4) == pytest.approx((4.0, 1.0))
    assert perplexity_and_usage(np.full(10, 2), 8) == pytest.approx((1.0, 1 / 8))
    # counts [2, 1, 1, 0]: H = 3/2 ln 2, perplexity 2 ** 1.5
    assert perplexity_and_usage(np.array([0, 0, 1, 2]), 4) == pytest.approx((2**1.5, 3 / 4))


def test_speaker_probe_separable_and_unseen_speaker() -> None:
    speakers = np.repeat(np.arange(4), 6)  # 4 speakers x 6 utterances; speaker s uses codes 2s, 2s + 1
    rng = np.random.default_rng(5)
    hist = np.zeros((24, 8))
    for i, s in enumerate(speakers):
        hist[i, 2 * s : 2 * s + 2] = rng.integers(1, 20, 2)
    train = np.array([i for i in range(24) if i % 2 == 0 and speakers[i] != 3])  # speaker 3 never trained
    test = np.arange(1, 24, 2)  # 3 utterances of each of the 4 speakers
    acc, chance = speaker_probe(hist, speakers, train, test)
    assert chance == pytest.approx(3 / 12)
    assert acc == pytest.approx(9 / 12)  # every seen speaker right, speaker 3 always wrong
    train_all = np.arange(0, 24, 2)
    assert speaker_probe(hist, speakers, train_all, test) == pytest.approx((1.0, 3 / 12))


def test_speaker_probe_identical_histograms_is_chance() -> None:
    # train: speaker 2 x6, 1 x3, 0 x1; test: 2 x5, 1 x2, 0 x1 -> chance 5/8
    speakers = np.array([2] * 6 + [1] * 3 + [0] * 1 + [2] * 5 + [1] * 2 + [0] * 1)
    hist = np.tile(np.array([[3.0, 1.0, 0.0, 4.0]]), (18, 1))
    acc, chance = speaker_probe(hist, speakers, np.arange(10), np.arange(10, 18))
    assert chance == pytest.approx(5 / 8)
    assert acc == pytest.approx(chance)  # nothing to learn but the prior: always the majority speaker


def test_split_is_deterministic_and_order_independent() -> None:
    ids = [f"spk{i % 7}_utt{i:04d}" for i in range(500)]
    train, test = split_utterances(ids, 0.5, seed=0)
    assert sorted([*train.tolist(), *test.tolist()]) == list(range(500))
    assert 0.4 < train.size / 500 < 0.6
    perm = np.random.default_rng(6).permutation(500)
    shuffled = [ids[i] for i in perm]
    train2, _ = split_utterances(shuffled, 0.5, seed=0)
    assert {shuffled[i] for i in train2} == {ids[i] for i in train}
    assert not np.array_equal(split_utterances(ids, 0.5, seed=1)[0], train)
    # the project's one split hash (SHA-256 of f"{seed}:{id}", first 8 bytes big-endian over 2**64), not
    # Python's per-process salted hash(): fixed across runs and machines; computed here from hashlib
    letters = list("abcdefgh")
    for seed in (0, 3):
        expected = [i for i, c in enumerate(letters) if _sha256_fraction(f"{seed}:{c}") < 0.5]
        assert split_utterances(letters, 0.5, seed=seed)[0].tolist() == expected
    assert [x.size for x in split_utterances(["x", "y"], 0.99, seed=0)] == [1, 1]  # never one-sided
    # one-sided: the id nearest the threshold moves over
    ids = [f"u{i}" for i in range(6)]
    fractions = [_sha256_fraction(f"0:{uid}") for uid in ids]
    assert split_utterances(ids, 0.999999, seed=0)[1].tolist() == [int(np.argmax(fractions))]
    assert split_utterances(ids, 1e-6, seed=0)[0].tolist() == [int(np.argmin(fractions))]


def _sha256_fraction(key: str) -> float:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2.0**64


def _speaker_corpus(counts: dict[str, int]) -> tuple[list[str], list[str]]:
    ids = [f"{spk}/{k}" for spk, n in counts.items() for k in range(n)]
    return ids, [uid.split("/")[0] for uid in ids]


def _sides(ids: list[str], split: tuple[np.ndarray, np.ndarray]) -> tuple[set[str], set[str]]:
    return {ids[i] for i in split[0]}, {ids[i] for i in split[1]}


@pytest.mark.parametrize("train_fraction", [0.1, 0.5, 0.9])
def test_split_by_speaker_puts_every_speaker_of_two_utterances_on_both_sides(train_fraction: float) -> None:
    ids, speakers = _speaker_corpus({"a": 1, "b": 2, "c": 3, "d": 10, "e": 40})
    for seed in range(5):
        train, test = split_by_speaker(ids, speakers, train_fraction, seed)
        assert sorted([*train.tolist(), *test.tolist()]) == list(range(len(ids)))
        assert train.tolist() == sorted(train.tolist()) and train.dtype == test.dtype == np.int64
        assert {speakers[i] for i in train} == set("abcde")  # a, with one utterance, is in train
        assert {speakers[i] for i in test} == set("bcde")
        # within a speaker whose two sides are both filled by the hash, the hash alone decides
        e_train = {ids[i] for i in train if speakers[i] == "e"}
        assert e_train == {u for u in ids[-40:] if _sha256_fraction(f"{seed}:{u}") < train_fraction}
        assert split_by_speaker(ids, speakers, train_fraction, seed)[0].tolist() == train.tolist()


def test_split_by_speaker_ignores_order_and_other_speakers() -> None:
    ids, speakers = _speaker_corpus({"a": 4, "b": 7, "c": 5})
    sides = _sides(ids, split_by_speaker(ids, speakers, 0.5, 3))
    perm = np.random.default_rng(2).permutation(len(ids))
    shuffled = [ids[i] for i in perm]
    assert _sides(shuffled, split_by_speaker(shuffled, [speakers[i] for i in perm], 0.5, 3)) == sides
    # drop speaker c, add speaker z: a's and b's utterances stay where they were
    fewer = [u for u in ids if not u.startswith("c/")] + ["z/0", "z/1", "z/2"]
    train, test = _sides(fewer, split_by_speaker(fewer, [u.split("/")[0] for u in fewer], 0.5, 3))
    assert {u for u in train if u[0] in "ab"} == {u for u in sides[0] if u[0] in "ab"}
    assert {u for u in test if u[0] in "ab"} == {u for u in sides[1] if u[0] in "ab"}
    # no speaker with two utterances: nothing to test on
    train_idx, test_idx = split_by_speaker(["x/0", "y/0"], ["x", "y"], 0.5, 0)
    assert train_idx.tolist() == [0, 1] and test_idx.size == 0
    with pytest.raises(ValueError, match="2 utterance ids but 1 speakers"):
        split_by_speaker(["x/0", "y/0"], ["x"], 0.5, 0)
    with pytest.raises(ValueError, match="train_fraction"):
        split_by_speaker(["x/0"], ["x"], 1.0, 0)


def _two_speaker_utts(ids: list[str]) -> list[UttCodes]:
    """Speaker a uses codes 0-3 and b codes 4-7 (the speaker is the id's folder), 20 frames each."""
    rng = np.random.default_rng(4)
    utts = []
    for uid in ids:
        phones = rng.integers(0, 4, size=20)
        offset = 4 * (uid[0] == "b")
        utts.append(UttCodes(uid, uid[0], phones + offset, phones, np.full(4, 0.05)))
    return utts


def test_speaker_measures_split_within_each_speaker_so_chance_is_never_zero() -> None:
    ids = [f"{spk}/{k}" for spk in "ab" for k in range(4)]
    # the phone mapping's split puts all of a's utterances in train (and more of them than b's): a split
    # shared with the speaker measures named a on every test frame, a per-frame chance of 0%
    train, test = split_utterances(ids, 0.5, seed=0)
    assert {ids[i][0] for i in test} == {"b"}
    frame_spk = np.repeat([ord(uid[0]) for uid in ids], 20)
    in_train = np.repeat(np.isin(np.arange(8), train), 20)
    assert majority_baseline(frame_spk[in_train], frame_spk[~in_train]) == 0.0
    res = analyze_level(_two_speaker_utts(ids), num_codes=8, num_phones=4, frame_seconds=0.01)
    spk_train, spk_test = split_by_speaker(ids, [u[0] for u in ids], 0.5, 0)
    test_speakers = [ids[i][0] for i in spk_test]
    assert set(test_speakers) == {"a", "b"}
    assert res.speaker_chance == max(map(test_speakers.count, "ab")) / len(test_speakers)
    assert 0.0 < res.speaker_frame_chance < 1.0 and 0.0 < res.speaker_chance < 1.0
    assert res.speaker_probe_accuracy == res.speaker_frame_accuracy == 1.0  # disjoint codes
    for seed in range(10):
        res = analyze_level(_two_speaker_utts(ids), 8, 4, 0.01, seed=seed)
        assert 0.0 < res.speaker_chance < 1.0 and 0.0 < res.speaker_frame_chance < 1.0, seed


def test_speaker_measures_are_nan_when_no_speaker_has_two_utterances() -> None:
    utts = [
        UttCodes(u.utt_id, u.utt_id, u.codes, u.phones, u.phone_durations)
        for u in _two_speaker_utts([f"{spk}/{k}" for spk in "ab" for k in range(3)])
    ]  # every utterance its own speaker
    res = analyze_level(utts, num_codes=8, num_phones=4, frame_seconds=0.01)
    names = ("speaker_probe_accuracy", "speaker_chance", "speaker_frame_accuracy", "speaker_frame_chance")
    assert all(math.isnan(getattr(res, name)) for name in names)
    d = res.to_json_dict()
    assert [d[name] for name in names] == [None] * 4 and json.loads(json.dumps(d)) == d
    assert res.mapping_accuracy == 1.0  # the phone measures do not need speakers


def test_analyze_level_end_to_end() -> None:
    utts = []
    for i in range(8):
        if i < 4:  # speaker s0: codes == phones; the unlabelled last frame would extend the run of 1s
            phones, durations = np.array([0, 0, 1, 1, 1, -1]), np.array([0.02, 0.03])
            codes = np.array([0, 0, 1, 1, 1, 1])
        else:  # speaker s1, consecutive utterances: the last run of 3s must not join the next first one
            phones, durations = np.array([3, 3, 2, 2, 2, 3]), np.array([0.02, 0.03, 0.01])
            codes = phones.copy()
        utts.append(UttCodes(f"u{i}", f"s{i // 4}", codes, phones, durations))
    utts.append(UttCodes("silent", "s0", np.zeros(4, dtype=np.int64), np.full(4, -1), np.zeros(0)))
    res = analyze_level(utts, num_codes=6, num_phones=4, frame_seconds=0.01)
    assert res.num_utterances == 8 and res.num_frames == 44
    assert res.mapping_accuracy == 1.0
    assert res.phone_purity == pytest.approx(1.0) and res.cluster_purity == pytest.approx(1.0)
    assert res.pnmi == pytest.approx(1.0)
    assert res.joint.sum() == 44 and res.mapping[:4].tolist() == [0, 1, 2, 3]
    assert res.code_usage == pytest.approx(4 / 6)
    # s0: 4 x runs (2, 3); s1: 4 x runs (2, 3, 1) -> 44 frames in 20 runs of 10 ms frames
    assert res.mean_code_run_seconds == pytest.approx(0.022)
    assert res.mean_phone_seconds == pytest.approx((4 * 0.05 + 4 * 0.06) / 20)
    assert res.speaker_probe_accuracy == 1.0  # the speakers use disjoint codes here
    assert res.speaker_frame_accuracy == 1.0  # ... so every single code names its speaker
    assert 0.0 <= res.speaker_frame_chance <= 1.0
    d = res.to_json_dict()
    assert "joint" not in d and "mapping" not in d
    assert json.loads(json.dumps(d)) == d
    for key in (
        "mapping_accuracy",
        "random_baseline_accuracy",
        "majority_baseline_accuracy",
        "speaker_chance",
    ):
        assert 0.0 <= d[key] <= 1.0


def test_plots_write_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    names = [f"ph{i}" for i in range(6)]
    phones = rng.integers(-1, 6, 4000)
    codes = np.where(rng.random(4000) < 0.7, np.maximum(phones, 0) * 3, rng.integers(0, 32, 4000))
    joint = cooccurrence(codes, phones, 32, 6)
    mapping = fit_mapping(joint)
    paths = [
        plot_cooccurrence(joint, names, tmp_path / "cooc.png", max_codes=16),
        plot_confusion(mapping, codes, phones, names, tmp_path / "sub" / "confusion.png"),
        plot_code_usage({"level0": joint.sum(axis=0), "level1": np.bincount(codes % 4)}, tmp_path / "u.png"),
        plot_durations(
            {"level0": rng.random(100) * 0.1 + 0.005}, rng.random(50) * 0.2 + 0.03, tmp_path / "d.png"
        ),
    ]
    for path in paths:
        assert path.parent.is_dir() and path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 1000
    leftovers = [p.name for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".png"]
    assert leftovers == []


def test_frame_speaker_leakage_is_chance_for_shared_codes() -> None:
    rng = np.random.default_rng(0)
    utts = []
    for i in range(40):
        phones = rng.integers(0, 5, size=50)
        codes = phones * 2 + rng.integers(0, 2, size=50)  # codes carry phones and noise, no speaker
        utts.append(UttCodes(f"u{i}", f"s{i % 2}", codes, phones, np.full(5, 0.05)))
    res = analyze_level(utts, num_codes=10, num_phones=5, frame_seconds=0.01)
    assert abs(res.speaker_frame_accuracy - res.speaker_frame_chance) < 0.1
    assert res.mapping_accuracy == 1.0


def test_heldout_voices_are_scored_with_the_mapping_fit_on_seen_voices() -> None:
    rng = np.random.default_rng(3)
    seen, held = [], []
    for i in range(12):
        phones = rng.integers(0, 4, size=30)
        seen.append(UttCodes(f"s{i}", f"seen{i % 3}", phones.copy(), phones, np.full(5, 0.05)))
        # held-out voices: every code means the next phone (a permutation), and each voice has its own
        # phones (so its own codes): a seen-fit mapping gets every frame wrong, yet PNMI stays 1
        phones = rng.integers(0, 2, size=30) + 2 * (i % 2)
        held.append(UttCodes(f"h{i}", f"held{i % 2}", (phones + 1) % 4, phones, np.full(5, 0.05), True))
    args = dict(num_codes=6, num_phones=4, frame_seconds=0.01)
    res = analyze_level(held, **args, fit_on=seen)
    own = analyze_level(held, **args)
    seen_res = analyze_level(seen, **args)
    train, _ = split_utterances([u.utt_id for u in seen], 0.5, seed=0)
    seen_train = np.concatenate([seen[i].phones for i in train])
    assert (
        res.mapping.tolist()
        == seen_res.mapping.tolist()
        == fit_mapping(cooccurrence(seen_train, seen_train, 6, 4)).tolist()
    )
    assert res.mapping_accuracy == 0.0 and own.mapping_accuracy == 1.0
    held_phones = np.concatenate([u.phones for u in held])
    assert res.majority_baseline_accuracy == majority_baseline(seen_train, held_phones)
    assert 0.0 <= res.random_baseline_accuracy <= 1.0
    assert res.num_utterances == 12 and res.num_frames == held_phones.size
    # everything but the phone mapping and its baselines is the held-out voices' own
    for name in (
        "phone_purity",
        "cluster_purity",
        "pnmi",
        "perplexity",
        "code_usage",
        "mean_code_run_seconds",
    ):
        assert getattr(res, name) == getattr(own, name), name
    assert res.pnmi == pytest.approx(1.0)
    # speaker leakage among the held-out voices (which use disjoint codes): a probe fit on the seen
    # voices could name neither of them
    assert res.speaker_probe_accuracy == own.speaker_probe_accuracy == 1.0
    assert res.speaker_frame_accuracy == own.speaker_frame_accuracy == 1.0
    assert res.speaker_chance == own.speaker_chance and res.speaker_frame_chance == own.speaker_frame_chance
    with pytest.raises(ValueError, match="at least two"):
        analyze_level(held, **args, fit_on=seen[:1])
