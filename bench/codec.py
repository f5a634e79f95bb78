"""Codec benchmark: file bitrate against nominal for 1-, 3- and 60-s inputs (header and framing
included), encode/decode real-time factors per level, bitrates with and without --entropy, and peak
memory encoding a 1-hour file (prints numbers; not a test).

    python bench/codec.py --model runs/mini --audio data/demo/wavs/awb --threads 2
    python bench/codec.py --model runs/mini --hour          # + peak RSS for 1 hour vs 1 minute of audio

``--audio`` is a folder whose files are concatenated into ``--seconds`` of speech (default: the
built-in synthetic speech).  RTF = compute seconds per audio second, best of ``--repeats``.
"""

from __future__ import annotations

import argparse
import io
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from vqaudio import load_model
from vqaudio.audio import read_audio
from vqaudio.checkpoint import save_checkpoint
from vqaudio.codec.compress import code_tables, decode_file, encode_file
from vqaudio.data.synthetic import toy_utterance


def _speech(folder: str | None, seconds: float, sr: int) -> np.ndarray:
    if folder:
        parts, total = [], 0
        for p in sorted(Path(folder).rglob("*.wav")):
            parts.append(read_audio(p, sr))
            total += parts[-1].size
            if total >= seconds * sr:
                break
        x = np.concatenate(parts)
    else:
        x = toy_utterance(np.random.default_rng(0), sr, seconds, 120.0, 1.0)
    return np.resize(x, int(seconds * sr)).astype(np.float32)


def _best(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


_CHILD = """
import sys, torch
torch.set_num_threads(int(sys.argv[3]))
from vqaudio import load_model
from vqaudio.codec.compress import encode_file
m = load_model(sys.argv[1])
encode_file(m, sys.argv[2], sys.argv[2] + ".vqa", levels=[0])
# VmHWM: this process's peak RSS (ru_maxrss would include the parent's, kept across exec on Linux)
print(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")))
"""


def _peak_rss_mib(model: str, wav: Path, threads: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, model, str(wav), str(threads)],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def _write_long(path: Path, seconds: int, sr: int, block: np.ndarray) -> None:
    with sf.SoundFile(path, "w", sr, 1, subtype="PCM_16") as f:
        for _ in range(seconds * sr // block.size):
            f.write(block)


def _file_sizes(model, x: np.ndarray, work: Path) -> None:  # type: ignore[no-untyped-def]
    """File bitrate vs nominal per level and duration, packed and entropy-coded; the 48k rows are the
    same speech as a 48 kHz stereo file (its rate, length and channels go into the header)."""
    sr = model.sample_rate
    print("file size vs nominal (whole files, header and framing included):")
    cols = ("level", "input", "nominal", "bytes", "file b/s", "vs nom", "entropy", "vs nom")
    print(" ".join(f"{c:>9}" for c in cols))
    for level in range(model.num_levels):
        nominal = model.config.bitrate(level)
        for seconds, rate in ((1, sr), (3, sr), (3, 48000), (60, sr)):
            clip = x[: seconds * sr]
            path = work / f"clip{seconds}_{rate}.wav"
            if rate == sr:
                sf.write(path, clip, sr, subtype="PCM_16")
            else:
                up = read_audio(_write_tmp(work, clip, sr), rate)
                sf.write(path, np.stack([up, up], axis=1), rate, subtype="PCM_16")
            size = {}
            for entropy in (False, True):
                buf = io.BytesIO()
                encode_file(model, path, buf, [level], entropy=entropy)
                size[entropy] = len(buf.getvalue())
            packed, coded = (size[e] * 8 / seconds for e in (False, True))
            label = f"{seconds}s@{rate // 1000}k"
            print(
                f"{level:>9} {label:>9} {nominal:>9.0f} {size[False]:>9} {packed:>9.0f} "
                f"{packed / nominal - 1:>+9.1%} {coded:>9.0f} {coded / nominal - 1:>+9.1%}"
            )


def _write_tmp(work: Path, clip: np.ndarray, sr: int) -> Path:
    path = work / "tmp.wav"
    sf.write(path, clip, sr, subtype="FLOAT")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--audio", help="folder of speech files (default: synthetic speech)")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--hour", action="store_true", help="also measure peak RSS encoding 1 hour of audio")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="vqaudio-bench-"))
    model = load_model(args.model)
    # a single-file checkpoint with code tables (older checkpoints lack them); same weights, same SHA
    ckpt = work / "model.safetensors"
    save_checkpoint(
        ckpt, model, model.checkpoint.config, model.checkpoint.step, code_tables=code_tables(model)
    )
    model = load_model(ckpt)
    sr = model.sample_rate
    x = _speech(args.audio, args.seconds, sr)
    wav = work / "speech.wav"
    sf.write(wav, x, sr, subtype="PCM_16")
    print(
        f"model={args.model} threads={torch.get_num_threads()} audio={args.seconds:.0f} s "
        f"({'speech from ' + args.audio if args.audio else 'synthetic'})"
    )
    if args.seconds >= 60:
        _file_sizes(model, x, work)
    cols = ("level", "nominal", "packed", "entropy", "saving", "enc RTF", "dec RTF")
    print(" ".join(f"{c:>8}" for c in cols))
    for level in range(model.num_levels):
        sizes = {}
        for entropy in (False, True):
            buf = io.BytesIO()
            encode_file(model, wav, buf, [level], entropy=entropy)
            sizes[entropy] = len(buf.getvalue())
        te = _best(lambda lv=level: encode_file(model, wav, io.BytesIO(), [lv]), args.repeats)
        data = io.BytesIO()
        encode_file(model, wav, data, [level])
        stream = data.getvalue()
        td = _best(lambda s=stream: decode_file(model, io.BytesIO(s), io.BytesIO()), args.repeats)
        bps = {k: v * 8 / args.seconds for k, v in sizes.items()}
        print(
            f"{level:>8} {model.config.bitrate(level):>8.0f} {bps[False]:>8.0f} {bps[True]:>8.0f} "
            f"{1 - bps[True] / bps[False]:>8.1%} {te / args.seconds:>8.4f} {td / args.seconds:>8.4f}"
        )
    if args.hour:
        block = x[: 10 * sr]
        short, long = work / "minute.wav", work / "hour.wav"
        _write_long(short, 60, sr, block)
        _write_long(long, 3600, sr, block)
        print(
            f"peak RSS encoding level 0: 1 minute {_peak_rss_mib(str(ckpt), short, args.threads):.0f} MiB, "
            f"1 hour {_peak_rss_mib(str(ckpt), long, args.threads):.0f} MiB "
            f"(this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)"
        )


if __name__ == "__main__":
    main()
