"""Codec-level speed of a vqaudio model next to EnCodec 24 kHz's architecture, in one run (prints
numbers; not a test).  Issue #12: encode + decode at least 4x faster than EnCodec on 2 threads.

    python bench/encodec_speed.py                                  # recipes/default.yaml, random weights
    python bench/encodec_speed.py --model speech16k                # a shipped model, checkpoint or run dir
    python bench/encodec_speed.py --recipe recipes/mini.yaml --level 0 --seconds 10 --threads 2

EnCodec is bench/encodec_arch.py's re-implementation of its 24 kHz model (Défossez et al. 2022) with
random weights, at 6 kbit/s (8 codebooks); its encode includes the RVQ's nearest-codeword search and
its decode the codeword sums.  Both models get the same duration of noise (EnCodec at 24 kHz,
vqaudio at its own rate), run under ``torch.inference_mode()``, and are timed in turn (EnCodec
encode, vqaudio encode, EnCodec decode, vqaudio decode, repeated), so load from other processes hits
both alike.  RTF = seconds of compute per second of audio, the best of --repeats runs after a warm-up.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch
from encodec_arch import REFERENCE_PARAMS, EncodecArch  # bench/encodec_arch.py: a script sees its folder

from vqaudio import build_model, load_config, load_model

DEFAULT_RECIPE = "recipes/default.yaml"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _best_interleaved(fns: list[Callable[[], object]], device: torch.device, repeats: int) -> list[float]:
    """Best wall time of each of ``fns`` over ``repeats`` rounds, each round calling them in turn,
    after one warm-up call each."""
    for fn in fns:
        fn()
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="checkpoint, run directory or shipped model name")
    ap.add_argument(
        "--recipe", help=f"recipe whose model to build with random weights (default {DEFAULT_RECIPE})"
    )
    ap.add_argument("--level", type=int, default=0, help="vqaudio level to time (0: the codec level)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # as load_model does; applies to both models
    device = torch.device(args.device)
    torch.manual_seed(0)
    if args.model:
        ours = load_model(args.model, device)
        name = args.model
    else:
        recipe = args.recipe or Path(__file__).resolve().parent.parent / DEFAULT_RECIPE
        ours = build_model(load_config(recipe).model, ["spk"]).to(device).eval()
        name = f"{args.recipe or DEFAULT_RECIPE} (random weights)"
    ref = EncodecArch().to(device).eval()
    level = args.level

    wav_ref = (0.1 * torch.randn(1, 1, int(args.seconds * ref.sample_rate))).to(device)
    wav_ours = (0.1 * torch.randn(1, 1, int(args.seconds * ours.sample_rate))).to(device)
    with torch.inference_mode():
        codes_ref = ref.encode(wav_ref)
        codes_ours = ours.encode(wav_ours, level=level)
        t_enc_ref, t_enc_ours, t_dec_ref, t_dec_ours = _best_interleaved(
            [
                lambda: ref.encode(wav_ref),
                lambda: ours.encode(wav_ours, level=level),
                lambda: ref.decode(codes_ref, wav_ref.shape[-1]),
                lambda: ours.decode(codes_ours, level=level, speaker=0),
            ],
            device,
            args.repeats,
        )

    def count(module: torch.nn.Module) -> float:
        return sum(p.numel() for p in module.parameters()) / 1e6

    s = args.seconds
    print(
        f"device={device} threads={torch.get_num_threads()} torch={torch.__version__} audio={s:g}s "
        f"best of {args.repeats} after a warm-up"
    )
    print(
        f"EnCodec 24 kHz architecture, random weights: {count(ref):.2f}M params "
        f"(reference implementation {REFERENCE_PARAMS / 1e6:.2f}M), "
        f"{ref.quantizer.codebooks.numel() / 1e6:.2f}M codebook entries"
    )
    print(
        f"vqaudio {name}: level {level} of {ours.num_levels}, {count(ours.levels[level]):.2f}M params "
        f"in the level ({count(ours):.2f}M in the model), {ours.sample_rate} Hz, hop {ours.hops[level]}"
    )
    print(f"{'model':>8} {'bit/s':>7} {'enc RTF':>9} {'dec RTF':>9} {'total':>9}")
    rows = [
        ("EnCodec", ref.bitrate, t_enc_ref, t_dec_ref),
        ("vqaudio", ours.config.bitrate(level), t_enc_ours, t_dec_ours),
    ]
    for label, bitrate, te, td in rows:
        print(f"{label:>8} {bitrate:>7.0f} {te / s:>9.4f} {td / s:>9.4f} {(te + td) / s:>9.4f}")
    total = (t_enc_ref + t_dec_ref) / (t_enc_ours + t_dec_ours)
    print(
        f"vqaudio is {total:.2f}x faster than EnCodec (encode {t_enc_ref / t_enc_ours:.2f}x, "
        f"decode {t_dec_ref / t_dec_ours:.2f}x); issue #12 asks for >= 4x: "
        f"{'met' if total >= 4 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
