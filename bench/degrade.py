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

The first ``--per-speaker`` test sentences of every voice (by path), each seeded by ``(--seed, its
index)``: the same command writes the same files. The manifest keeps the source's columns (speaker,
text, split, the ``voices`` seen/heldout marks), so evaluate's seen and held-out rows stay apart.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import soundfile as sf
import torch

from vqaudio.config import (
    AugmentConfig,
    EqAugmentConfig,
    GainAugmentConfig,
    NoiseAugmentConfig,
    ReverbAugmentConfig,
)
from vqaudio.data.augment import augment_batch
from vqaudio.data.corpora import Utterance, scan_manifest
from vqaudio.errors import UserError

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
    try:
        utts = scan_manifest(args.data)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    picked: dict[str, list[Utterance]] = {}
    for utt in sorted((u for u in utts if u.split in (None, "test")), key=lambda u: str(u.path)):
        group = picked.setdefault(utt.speaker, [])
        if len(group) < args.per_speaker:
            group.append(utt)
    if not picked or args.per_speaker < 1:
        print(f"error: {args.data}: no test sentences to degrade (--per-speaker >= 1)", file=sys.stderr)
        return 2
    cfg = condition_config(args.condition)
    lines = ["# path\tspeaker\ttext\tsplit\tvoices"]
    for index, utt in enumerate(u for group in picked.values() for u in group):
        audio, rate = sf.read(utt.path, dtype="float32", always_2d=True)
        wav = torch.from_numpy(audio.mean(axis=1))[None, None]
        degraded = augment_batch(wav, cfg, rate, (args.seed, index)).inputs[0, 0].numpy()
        rel = Path("wavs") / utt.speaker / utt.path.name
        dst = args.out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_suffix(".tmp.wav")
        sf.write(tmp, degraded, rate, subtype="PCM_16")
        os.replace(tmp, dst)
        voices = "heldout" if utt.heldout else "seen"
        lines.append("\t".join([rel.as_posix(), utt.speaker, utt.text or "", "test", voices]))
    manifest = args.out / "manifest.tsv"
    tmp = manifest.with_suffix(".tsv.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, manifest)
    print(f"{len(lines) - 1} files of {len(picked)} voices ({args.condition}) -> {manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
