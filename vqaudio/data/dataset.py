"""Fixed-length training segments, and a step-indexed sampler that makes them exactly reproducible.

Items are addressed by ``(index, crop_seed)`` pairs produced by :class:`StepBatchSampler`: which
utterance and which crop a training step sees is a pure function of ``(seed, step)``, so a run resumed
at step ``s`` (``start_step=s``) sees exactly the batches an uninterrupted run would have seen, on any
number of ranks and data-loader workers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from vqaudio.audio import audio_info, read_audio
from vqaudio.data.corpora import Utterance
from vqaudio.errors import AudioError, UserError

__all__ = ["SegmentDataset", "StepBatchSampler", "collate", "crop_or_pad", "load_full", "validate_corpus"]

logger = logging.getLogger(__name__)

ItemKey = tuple[int, int]
"""``(utterance index, crop seed)``, as yielded by :class:`StepBatchSampler`."""


def crop_or_pad(wav: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``[length]`` window of ``wav`` ``[T]``; shorter clips are zero-padded at a random offset."""
    if wav.shape[0] >= length:
        start = int(rng.integers(0, wav.shape[0] - length + 1))
        return wav[start : start + length].copy()
    out = np.zeros(length, dtype=np.float32)
    offset = int(rng.integers(0, length - wav.shape[0] + 1))
    out[offset : offset + wav.shape[0]] = wav
    return out


class SegmentDataset(Dataset[tuple[torch.Tensor, int]]):
    """Random fixed-length crops of utterances, with the speaker's index.

    Args:
        utts: the utterances.
        speakers: speaker names; an item's label is its speaker's position in this list.
        sample_rate: audio is resampled to this rate on load.
        segment_samples: crop length; shorter clips are zero-padded at a random offset.
        preload: read all audio once in the constructor (small corpora only).

    ``dataset[(i, crop_seed)]`` returns ``(wav [segment_samples] float32, speaker_index)``, the crop
    drawn with ``np.random.default_rng(crop_seed)``. An utterance that fails to load is logged once and
    replaced by the next loadable one (``i+1``, ``i+2``, ... wrapping), with the same crop seed.
    """

    def __init__(
        self,
        utts: Sequence[Utterance],
        speakers: Sequence[str],
        sample_rate: int,
        segment_samples: int,
        preload: bool = False,
    ) -> None:
        if not utts:
            raise UserError("SegmentDataset: no utterances given")
        if sample_rate <= 0 or segment_samples <= 0:
            raise ValueError(
                f"sample_rate and segment_samples must be > 0, got {sample_rate}, {segment_samples}"
            )
        self.utts = list(utts)
        self.speakers = list(speakers)
        self.sample_rate = sample_rate
        self.segment_samples = segment_samples
        index = {name: i for i, name in enumerate(self.speakers)}
        unknown = next((u for u in self.utts if u.speaker not in index), None)
        if unknown is not None:
            raise UserError(f"{unknown.path}: speaker {unknown.speaker!r} is not in the model's speaker list")
        self.speaker_index = [index[u.speaker] for u in self.utts]
        self._warned: set[int] = set()
        self._cache: list[np.ndarray | None] | None = None
        if preload:
            self._cache = [self._try_load(i) for i in range(len(self.utts))]
            if all(wav is None for wav in self._cache):
                raise AudioError(f"none of the {len(self.utts)} utterances could be loaded (see warnings)")

    def __len__(self) -> int:
        return len(self.utts)

    def _try_load(self, i: int) -> np.ndarray | None:
        """The waveform of utterance ``i``, or ``None`` (warned about once) when it cannot be read."""
        if self._cache is not None:
            return self._cache[i]
        try:
            return read_audio(self.utts[i].path, self.sample_rate)
        except AudioError as err:
            if i not in self._warned:
                self._warned.add(i)
                logger.warning("skipping unreadable training file: %s", err)
            return None

    def __getitem__(self, key: ItemKey) -> tuple[torch.Tensor, int]:
        if not isinstance(key, tuple) or len(key) != 2:
            raise TypeError(f"SegmentDataset items are addressed by (index, crop_seed), got {key!r}")
        index, crop_seed = int(key[0]), int(key[1])
        n = len(self.utts)
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for {n} utterances")
        for step in range(n):
            j = (index + step) % n
            wav = self._try_load(j)
            if wav is not None:
                segment = crop_or_pad(wav, self.segment_samples, np.random.default_rng(crop_seed))
                return torch.from_numpy(segment), self.speaker_index[j]
        raise AudioError(f"none of the {n} utterances could be loaded (first: {self.utts[0].path})")


def validate_corpus(utts: Sequence[Utterance]) -> tuple[list[Utterance], list[str]]:
    """Cheaply check every file's header (exists, readable, > 0 frames); nothing is decoded.

    Returns:
        ``(good utterances in input order, one-line problem messages starting with the file's path)``.
    """
    good: list[Utterance] = []
    problems: list[str] = []
    for utt in utts:
        try:
            audio_info(utt.path)
        except AudioError as err:
            problems.append(str(err))
        else:
            good.append(utt)
    return good, problems


def load_full(utt: Utterance, sample_rate: int, max_samples: int | None = None) -> torch.Tensor:
    """A whole utterance as ``[T]`` float32 at ``sample_rate``, center-cropped to ``max_samples`` if given."""
    wav = read_audio(utt.path, sample_rate)
    if max_samples is not None and wav.shape[0] > max_samples:
        start = (wav.shape[0] - max_samples) // 2
        wav = wav[start : start + max_samples]
    return torch.from_numpy(np.ascontiguousarray(wav))


class StepBatchSampler(Sampler[list[ItemKey]]):
    """Infinite per-step batches of ``(index, crop_seed)``; a pure function of ``(seed, step)``.

    The global batch of step ``s`` is positions ``[s*G, (s+1)*G)`` (``G = batch_size * world_size``) of
    the endless concatenation of epoch permutations ``default_rng([seed, epoch]).permutation(num_items)``;
    rank ``r`` takes its slice ``[r*batch_size, (r+1)*batch_size)``. The crop seed of global-batch
    position ``j`` is ``SeedSequence([seed, s, j]).generate_state(1)[0]``. Iteration starts at
    ``start_step``, computed directly (no replay), so resuming reproduces the uninterrupted run.

    Args:
        num_items: dataset length.
        batch_size: per-rank batch size.
        seed: non-negative run seed.
        start_step: first step yielded.
        rank, world_size: this process' shard of the global batch.
    """

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        seed: int,
        start_step: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__()
        if num_items <= 0:
            raise UserError("StepBatchSampler: the dataset is empty")
        if batch_size <= 0 or world_size <= 0:
            raise ValueError(f"batch_size and world_size must be positive, got {batch_size}, {world_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        if seed < 0 or start_step < 0:
            raise ValueError(f"seed and start_step must be non-negative, got {seed}, {start_step}")
        self.num_items = num_items
        self.batch_size = batch_size
        self.seed = seed
        self.start_step = start_step
        self.rank = rank
        self.world_size = world_size
        self._perms: dict[int, np.ndarray] = {}

    @property
    def global_batch_size(self) -> int:
        """Items per step over all ranks."""
        return self.batch_size * self.world_size

    def epoch_of(self, step: int) -> int:
        """The epoch in which ``step``'s global batch starts."""
        return step * self.global_batch_size // self.num_items

    def _permutation(self, epoch: int) -> np.ndarray:
        perm = self._perms.get(epoch)
        if perm is None:
            if len(self._perms) >= 4:
                self._perms.pop(min(self._perms))
            perm = np.random.default_rng([self.seed, epoch]).permutation(self.num_items)
            self._perms[epoch] = perm
        return perm

    def batch_for_step(self, step: int) -> list[ItemKey]:
        """This rank's ``batch_size`` items ``(index, crop_seed)`` for ``step``."""
        if step < 0:
            raise ValueError(f"step must be non-negative, got {step}")
        first = step * self.global_batch_size
        batch: list[ItemKey] = []
        for j in range(self.rank * self.batch_size, (self.rank + 1) * self.batch_size):
            epoch, k = divmod(first + j, self.num_items)
            crop_seed = np.random.SeedSequence([self.seed, step, j]).generate_state(1)[0]
            batch.append((int(self._permutation(epoch)[k]), int(crop_seed)))
        return batch

    def __iter__(self) -> Iterator[list[ItemKey]]:
        step = self.start_step
        while True:
            yield self.batch_for_step(step)
            step += 1


def collate(batch: Sequence[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack dataset items into ``(wav [B, 1, T] float32, speaker [B] int64)``."""
    if not batch:
        raise ValueError("collate: empty batch")
    wavs = torch.stack([wav for wav, _ in batch]).unsqueeze(1)
    speakers = torch.tensor([speaker for _, speaker in batch], dtype=torch.long)
    return wavs, speakers
