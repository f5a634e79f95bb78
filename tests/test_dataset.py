"""Tests for vqaudio.data.dataset: reproducible crops, bad-file handling, the step-indexed sampler."""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from vqaudio.data import (
    SegmentDataset,
    StepBatchSampler,
    Utterance,
    collate,
    load_full,
    validate_corpus,
)
from vqaudio.errors import AudioError, UserError

SR = 16000
SEG = 64


def ramp(n: int, start: int = 1) -> np.ndarray:
    """Distinct nonzero int16 values, so a crop reveals where it came from."""
    return np.arange(start, start + n, dtype=np.int16)


def write_ramp(path: Path, n: int, start: int = 1, sr: int = SR) -> np.ndarray:
    """Write an int16 ramp; return what read_audio gives back (x / 32768)."""
    x = ramp(n, start)
    sf.write(path, x, sr, subtype="PCM_16")
    return x.astype(np.float32) / 32768


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[list[Utterance], dict[str, np.ndarray]]:
    """u0 long (alice), u1 short (bob), u2 long (bob)."""
    spec = {"u0": ("alice", 1000, 1), "u1": ("bob", 20, 2000), "u2": ("bob", 500, 5000)}
    utts, signals = [], {}
    for utt_id, (spk, n, start) in spec.items():
        path = tmp_path / f"{utt_id}.wav"
        signals[utt_id] = write_ramp(path, n, start)
        utts.append(Utterance(path, spk, utt_id))
    return utts, signals


def locate(segment: np.ndarray, source: np.ndarray) -> int:
    """Offset of ``segment`` inside ``source`` (asserting it is an exact window)."""
    start = int(np.flatnonzero(source == segment[0])[0])
    np.testing.assert_array_equal(segment, source[start : start + len(segment)])
    return start


# ----------------------------------------------------------------------------------------- dataset


def test_crop_is_a_pure_function_of_index_and_seed(corpus) -> None:
    utts, signals = corpus
    ds = SegmentDataset(utts, ["alice", "bob"], SR, SEG)
    assert len(ds) == 3
    wav, spk = ds[(0, 123)]
    assert wav.dtype == torch.float32 and wav.shape == (SEG,) and spk == 0
    again, _ = SegmentDataset(utts, ["alice", "bob"], SR, SEG)[(0, 123)]
    torch.testing.assert_close(wav, again, rtol=0, atol=0)
    starts = {locate(ds[(0, seed)][0].numpy(), signals["u0"]) for seed in range(40)}
    assert len(starts) > 30 and min(starts) >= 0 and max(starts) <= 1000 - SEG
    assert ds[(2, 5)][1] == 1


def test_short_clip_is_zero_padded_at_random_offset(corpus) -> None:
    utts, signals = corpus
    ds = SegmentDataset(utts, ["alice", "bob"], SR, SEG)
    offsets = set()
    for seed in range(300):
        wav = ds[(1, seed)][0].numpy()
        nonzero = np.flatnonzero(wav)
        offset = int(nonzero[0])
        np.testing.assert_array_equal(wav[offset : offset + 20], signals["u1"])
        assert np.count_nonzero(wav) == 20
        offsets.add(offset)
    assert 0 in offsets and SEG - 20 in offsets and len(offsets) > 20


def test_preload_gives_identical_items(corpus) -> None:
    utts, _ = corpus
    lazy = SegmentDataset(utts, ["alice", "bob"], SR, SEG)
    eager = SegmentDataset(utts, ["alice", "bob"], SR, SEG, preload=True)
    for key in [(0, 1), (1, 2), (2, 3), (2, 99)]:
        torch.testing.assert_close(lazy[key][0], eager[key][0], rtol=0, atol=0)
        assert lazy[key][1] == eager[key][1]


def test_resampled_on_load(tmp_path: Path) -> None:
    path = tmp_path / "hi.wav"
    sf.write(path, np.full(4800, 0.25, np.float32), 48000)
    ds = SegmentDataset([Utterance(path, "s", "hi")], ["s"], SR, 3200)
    wav = ds[(0, 0)][0]
    assert wav.shape == (3200,)
    assert int(torch.count_nonzero(wav)) in (1599, 1600, 1601)  # 4800 samples at 48 kHz -> 1600 at 16 kHz


@pytest.mark.parametrize("preload", [False, True])
def test_bad_file_is_replaced_by_next_and_logged_once(
    corpus, tmp_path: Path, caplog: pytest.LogCaptureFixture, preload: bool
) -> None:
    utts, _ = corpus
    broken = tmp_path / "broken.wav"
    broken.write_text("not audio")
    with_bad = [utts[0], Utterance(broken, "alice", "broken"), utts[2]]
    with caplog.at_level(logging.WARNING):
        ds = SegmentDataset(with_bad, ["alice", "bob"], SR, SEG, preload=preload)
        replaced = [ds[(1, seed)] for seed in (7, 8, 7)]
    for (wav, spk), seed in zip(replaced, (7, 8, 7), strict=True):
        expected, expected_spk = ds[(2, seed)]
        torch.testing.assert_close(wav, expected, rtol=0, atol=0)
        assert spk == expected_spk == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(broken) in warnings[0]

    # Wraps around: the last utterance falls back to the first.
    ds2 = SegmentDataset([utts[0], utts[2], Utterance(broken, "bob", "broken")], ["alice", "bob"], SR, SEG)
    torch.testing.assert_close(ds2[(2, 3)][0], ds2[(0, 3)][0], rtol=0, atol=0)


def test_file_deleted_mid_run_is_replaced(corpus) -> None:
    utts, _ = corpus
    ds = SegmentDataset(utts, ["alice", "bob"], SR, SEG)
    utts[1].path.unlink()
    torch.testing.assert_close(ds[(1, 4)][0], ds[(2, 4)][0], rtol=0, atol=0)


def test_all_bad_raises_audio_error(tmp_path: Path) -> None:
    bad = [Utterance(tmp_path / f"gone{i}.wav", "s", f"gone{i}") for i in range(3)]
    ds = SegmentDataset(bad, ["s"], SR, SEG)
    with pytest.raises(AudioError, match="none of the 3"):
        ds[(1, 0)]
    with pytest.raises(AudioError, match="none of the 3"):
        SegmentDataset(bad, ["s"], SR, SEG, preload=True)


def test_dataset_argument_errors(corpus) -> None:
    utts, _ = corpus
    with pytest.raises(UserError, match=f"{utts[1].path}.*'bob'"):
        SegmentDataset(utts, ["alice"], SR, SEG)
    with pytest.raises(UserError, match="no utterances"):
        SegmentDataset([], ["alice"], SR, SEG)
    ds = SegmentDataset(utts, ["alice", "bob"], SR, SEG)
    with pytest.raises(TypeError, match="crop_seed"):
        ds[0]  # type: ignore[index]
    with pytest.raises(IndexError):
        ds[(3, 0)]


def test_validate_corpus_reports_every_bad_file(corpus, tmp_path: Path) -> None:
    utts, _ = corpus
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    header_only = tmp_path / "header.wav"
    sf.write(header_only, np.zeros(0, np.float32), SR)
    text = tmp_path / "text.wav"
    text.write_text("hello")
    bad_paths = [tmp_path / "missing.flac", empty, header_only, text]
    mixed = [utts[0], *(Utterance(p, "x", p.stem) for p in bad_paths), utts[2]]
    good, problems = validate_corpus(mixed)
    assert good == [utts[0], utts[2]]
    assert len(problems) == 4
    for path, message in zip(bad_paths, problems, strict=True):
        assert message.startswith(str(path)) and "\n" not in message


def test_load_full(corpus) -> None:
    utts, signals = corpus
    whole = load_full(utts[0], SR, None)
    assert whole.dtype == torch.float32
    np.testing.assert_array_equal(whole.numpy(), signals["u0"])
    np.testing.assert_array_equal(load_full(utts[0], SR, 100).numpy(), signals["u0"][450:550])
    np.testing.assert_array_equal(load_full(utts[1], SR, 100).numpy(), signals["u1"])


def test_collate() -> None:
    wavs, speakers = collate([(torch.ones(5), 2), (torch.zeros(5), 0)])
    assert wavs.shape == (2, 1, 5) and wavs.dtype == torch.float32
    assert speakers.tolist() == [2, 0] and speakers.dtype == torch.long


# ----------------------------------------------------------------------------------------- sampler


def take(sampler: StepBatchSampler, n: int) -> list[list[tuple[int, int]]]:
    return list(itertools.islice(iter(sampler), n))


def test_sampler_is_deterministic_and_pure() -> None:
    a = take(StepBatchSampler(50, 4, seed=3), 30)
    assert a == take(StepBatchSampler(50, 4, seed=3), 30)
    assert a != take(StepBatchSampler(50, 4, seed=4), 30)
    assert all(len(batch) == 4 for batch in a)
    assert all(isinstance(i, int) and isinstance(s, int) for batch in a for i, s in batch)
    sampler = StepBatchSampler(50, 4, seed=3)
    far = sampler.batch_for_step(10_000)
    assert sampler.batch_for_step(7) == a[7]
    assert sampler.batch_for_step(10_000) == far
    seeds = [s for batch in a for _, s in batch]
    assert len(set(seeds)) == len(seeds)  # distinct crops for every (step, position)


@pytest.mark.parametrize(("num_items", "batch"), [(50, 4), (7, 3), (3, 8)])
def test_resume_from_step_equals_uninterrupted(num_items: int, batch: int) -> None:
    full = take(StepBatchSampler(num_items, batch, seed=11), 40)
    for start in (1, 13, 17, 39):
        resumed = take(StepBatchSampler(num_items, batch, seed=11, start_step=start), 40 - start)
        assert resumed == full[start:]


def test_epochs_cover_every_item_even_across_wraps() -> None:
    sampler = StepBatchSampler(12, 4, seed=0)
    first_epoch = [i for step in range(3) for i, _ in sampler.batch_for_step(step)]
    assert sorted(first_epoch) == list(range(12))
    assert sampler.epoch_of(3) == 1
    second_epoch = [i for step in range(3, 6) for i, _ in sampler.batch_for_step(step)]
    assert sorted(second_epoch) == list(range(12)) and second_epoch != first_epoch

    wrapping = StepBatchSampler(5, 4, seed=0)  # 4 steps = 16 positions = 3 epochs + 1 item
    counts = Counter(i for step in range(5) for i, _ in wrapping.batch_for_step(step))
    assert counts == dict.fromkeys(range(5), 4)

    tiny = StepBatchSampler(3, 8, seed=0)  # dataset smaller than a batch
    batch = [i for i, _ in tiny.batch_for_step(0)]
    assert len(batch) == 8 and set(batch) == {0, 1, 2}


def test_rank_shards_are_disjoint_and_form_the_global_batch() -> None:
    world = 3
    single = StepBatchSampler(40, 2 * world, seed=5)
    ranks = [StepBatchSampler(40, 2, seed=5, rank=r, world_size=world) for r in range(world)]
    for step in (0, 1, 6, 7, 100):
        shards = [r.batch_for_step(step) for r in ranks]
        assert sum(shards, []) == single.batch_for_step(step)
        if step == 6:  # positions 36..41 straddle two epochs of 40 items: repeats are allowed there
            continue
        indices = [{i for i, _ in shard} for shard in shards]
        assert all(not a & b for a, b in itertools.combinations(indices, 2))
    resumed = StepBatchSampler(40, 2, seed=5, start_step=6, rank=1, world_size=world)
    assert next(iter(resumed)) == ranks[1].batch_for_step(6)


def test_sampler_argument_errors() -> None:
    with pytest.raises(UserError, match="empty"):
        StepBatchSampler(0, 4, seed=0)
    for kwargs in ({"rank": 2, "world_size": 2}, {"rank": -1}, {"start_step": -1}, {"world_size": 0}):
        with pytest.raises(ValueError):
            StepBatchSampler(10, 4, seed=0, **kwargs)
    with pytest.raises(ValueError):
        StepBatchSampler(10, 0, seed=0)
    with pytest.raises(ValueError):
        StepBatchSampler(10, 4, seed=-1)


def test_dataloader_is_reproducible_with_workers(corpus) -> None:
    utts, _ = corpus
    ds = SegmentDataset(utts, ["alice", "bob"], SR, SEG)

    def batches(workers: int, start: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        sampler = StepBatchSampler(len(ds), 4, seed=1, start_step=start)
        loader = DataLoader(ds, batch_sampler=sampler, collate_fn=collate, num_workers=workers)
        return list(itertools.islice(iter(loader), 4 - start))

    plain = batches(0, 0)
    wavs, speakers = plain[0]
    assert wavs.shape == (4, 1, SEG) and speakers.shape == (4,) and speakers.dtype == torch.long
    for got in (batches(2, 0), [*plain[:2], *batches(2, 2)]):
        for (w1, s1), (w2, s2) in zip(plain, got, strict=True):
            torch.testing.assert_close(w1, w2, rtol=0, atol=0)
            assert torch.equal(s1, s2)
