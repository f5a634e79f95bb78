"""Write a degraded copy of a corpus's test sentences: noise, a room, EQ / band limits, or all of them
(prints what it wrote; a benchmark's input, not a test).

    python bench/degrade.py --data data/many/manifest.tsv --out exp/degraded/noise --condition noise
    vqaudio evaluate --model runs/default --data exp/degraded/noise/manifest.tsv --split test

Each condition applies the training augmentation's own functions (:mod:`vqaudio.data.augment`) with
probability 1 and the ranges of ``data.augment``'s defaults (:class:`vqaudio.config.AugmentConfig`:
noise at 5-40 dB SNR, rooms with RT60 0.2-0.8 s and DRR 0-12 dB, low-pass 3.4-8 kHz, high-pass
20-300 Hz, two peaks of +-9 dB, shelves of +-6 dB), wider than the shipped recipe trains on, as
recordings are. A codec reproduces what it hears, so `vqaudio evaluate` scores the decoded audio
against the degraded file: the question is how well the model codes audio unlike its clean training
voices, not whether it removes the noise.

The first ``--per-speaker`` test sentences of every voice (by utterance id, as `vqaudio evaluate
--per-speaker` picks them), each seeded by ``(--seed, its
index)``: the same command writes the same files. The manifest keeps the source's columns (speaker,
text, split, the ``voices`` seen/heldout marks), so evaluate's seen and held-out rows stay apart.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from vqaudio.audio import atomic_write_text, audio_info, read_audio, write_audio
from vqaudio.config import (
    AugmentConfig,
    EqAugmentConfig,
    GainAugmentConfig,
    NoiseAugmentConfig,
    ReverbAugmentConfig,
)
from vqaudio.data.augment import augment_batch
from vqaudio.data.corpora import scan_manifest
from vqaudio.errors import UserError
from vqaudio.eval.reconstruction import select_utterances

CONDITIONS = ("noise", "reverb", "eq", "all")


def condition_config(name: str) -> AugmentConfig:
    """``data.augment`` for one condition: the chosen kinds at probability 1, the defaults' ranges."""
    on = {"noise", "reverb", "eq"} if name == "all" else {name}
    return AugmentConfig(
        reverb=ReverbAugmentConfig(prob=1.0 if "reverb" in on else 0.0),
        noise=NoiseAugmentConfig(prob=1.0 if "noise" in on else 0.0),
        eq=EqAugmentConfig(prob=1.0 if "eq" in on else 0.0),
        gain=GainAugmentConfig(prob=0.0),
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="TSV manifest")
    p.add_argument("--out", type=Path, required=True, help="folder for the wavs and manifest.tsv")
    p.add_argument("--condition", choices=CONDITIONS, default="all")
    p.add_argument("--per-speaker", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.per_speaker < 1:
        print("error: --per-speaker must be >= 1", file=sys.stderr)
        return 2
    try:
        utts = scan_manifest(args.data)
        split = "test" if any(u.split for u in utts) else None
        picked = select_utterances(utts, split=split, per_speaker=args.per_speaker)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cfg = condition_config(args.condition)
    lines = ["# path\tspeaker\ttext\tsplit\tvoices"]
    for index, utt in enumerate(picked):
        rate = audio_info(utt.path).sample_rate
        wav = torch.from_numpy(read_audio(utt.path))[None, None]
        degraded = augment_batch(wav, cfg, rate, (args.seed, index)).inputs[0, 0]
        rel = Path("wavs") / utt.speaker / utt.path.name
        (args.out / rel).parent.mkdir(parents=True, exist_ok=True)
        write_audio(args.out / rel, degraded, rate)
        voices = "heldout" if utt.heldout else "seen"
        lines.append("\t".join([rel.as_posix(), utt.speaker, utt.text or "", "test", voices]))
    atomic_write_text(args.out / "manifest.tsv", "\n".join(lines) + "\n")
    print(f"{len(picked)} files ({args.condition}) -> {args.out / 'manifest.tsv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
