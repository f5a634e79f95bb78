"""A toy speech-like corpus generated from numbers alone (no download, no TTS needed).

Each "speaker" has its own pitch and vocal-tract length; each utterance is a random sequence of
vowel-like (harmonics shaped by formants), fricative-like (band-passed noise) and silent segments.
It is meant for smoke tests and the tiny recipe, not for judging audio quality.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vqaudio.audio import write_audio
from vqaudio.errors import UserError

__all__ = ["make_toy_corpus", "toy_utterance"]

# first three formants (Hz) of a few vowels, for an adult male vocal tract
_VOWELS = np.array(
    [
        [730, 1090, 2440],
        [270, 2290, 3010],
        [300, 870, 2240],
        [530, 1840, 2480],
        [570, 840, 2410],
        [660, 1720, 2410],
    ],
    dtype=np.float64,
)


def toy_utterance(
    rng: np.random.Generator, sample_rate: int, seconds: float, f0: float, tract: float
) -> np.ndarray:
    """One utterance ``[T]`` float32 in [-1, 1]: vowels, fricatives and pauses."""
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    out = np.zeros(n)
    pos = 0
    while pos < n:
        seg = int(rng.uniform(0.06, 0.22) * sample_rate)
        end = min(n, pos + seg)
        kind = rng.choice(3, p=[0.6, 0.25, 0.15])
        tt = t[pos:end]
        if kind == 0:  # vowel: harmonics of a gliding f0 weighted by formant resonances
            f = f0 * (1 + 0.08 * np.sin(2 * np.pi * rng.uniform(1, 4) * tt + rng.uniform(0, 6)))
            phase = 2 * np.pi * np.cumsum(f) / sample_rate
            formants = _VOWELS[rng.integers(len(_VOWELS))] * tract
            harmonics = np.arange(1, int(0.45 * sample_rate / f0))
            freqs = harmonics * f0
            amp = sum(1.0 / (1 + ((freqs - fm) / (60 + 0.05 * fm)) ** 2) for fm in formants) / harmonics**0.5
            sig = (amp[:, None] * np.sin(harmonics[:, None] * phase[None])).sum(0)
        elif kind == 1:  # fricative: high-passed noise
            noise = rng.standard_normal(end - pos)
            spec = np.fft.rfft(noise)
            freqs = np.fft.rfftfreq(end - pos, 1 / sample_rate)
            spec *= freqs > rng.uniform(2000, 4000) * tract
            sig = 0.3 * np.fft.irfft(spec, end - pos)
        else:
            sig = np.zeros(end - pos)
        ramp = np.minimum(
            1, np.minimum(np.arange(end - pos), np.arange(end - pos)[::-1]) / (0.01 * sample_rate)
        )
        out[pos:end] = sig * ramp
        pos = end
    out = out / max(np.abs(out).max(), 1e-9) * 0.7
    out += 1e-3 * rng.standard_normal(n)
    return out.astype(np.float32)


def make_toy_corpus(
    out_dir: str | Path,
    *,
    speakers: int = 4,
    utterances: int = 12,
    seconds: float = 2.0,
    sample_rate: int = 16000,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write ``out_dir/<speaker>/<utt>.wav``: a plain-folder corpus (speaker = folder name).

    Raises:
        UserError: ``out_dir`` is a file or cannot be created, or (unless ``overwrite``) one of the files
            to write exists already; checked before anything is written.
    """
    root = Path(out_dir)
    if root.exists() and not root.is_dir():
        raise UserError(f"{root}: not a folder")
    paths = [root / f"spk{s}" / f"spk{s}_{u:03d}.wav" for s in range(speakers) for u in range(utterances)]
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        raise UserError(
            f"{existing[0]} exists ({len(existing)} of the corpus's files do; use --force to overwrite)"
        )
    try:
        for s in range(speakers):
            (root / f"spk{s}").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"{root}: cannot create the corpus folder ({err.strerror or err})") from None
    rng = np.random.default_rng(seed)
    for s in range(speakers):
        f0 = 90 + 150 * s / max(1, speakers - 1)
        tract = 1.0 + 0.25 * s / max(1, speakers - 1)
        for u in range(utterances):
            wav = toy_utterance(rng, sample_rate, seconds * rng.uniform(0.7, 1.3), f0, tract)
            write_audio(paths[s * utterances + u], wav, sample_rate)
    return root
