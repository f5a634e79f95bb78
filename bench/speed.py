"""Encode / decode real-time factor of a model, per level (prints numbers; not a test).

    python bench/speed.py                       # default 16 kHz architecture, random weights
    python bench/speed.py --model runs/vctk     # a trained checkpoint or run directory
    python bench/speed.py --recipe recipes/mini.yaml --seconds 60 --threads 2 --device cpu

RTF = seconds of compute per second of audio (lower is faster; < 1 is faster than real time).
Each figure is the best of --repeats runs after a warm-up, so load from other processes inflates
it least.  On CUDA the decode is also timed batched (--batch items at once).
"""

from __future__ import annotations

import argparse
import time

import torch

from vqaudio import build_model, load_config, load_model


def _timed(fn, device: torch.device, repeats: int) -> float:  # type: ignore[no-untyped-def]
    fn()
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="checkpoint or run directory (default: random weights)")
    ap.add_argument("--recipe", help="recipe whose model to build with random weights")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16, help="batch size for the batched GPU decode")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.model:
        model = load_model(args.model, device)
    else:
        cfg = load_config(args.recipe)
        model = build_model(cfg.model, ["spk"]).to(device).eval()
    params = sum(p.numel() for p in model.parameters())
    sr = model.sample_rate
    wav = (0.1 * torch.randn(1, 1, int(args.seconds * sr))).to(device)
    print(
        f"device={device} threads={torch.get_num_threads()} audio={args.seconds:.0f}s "
        f"params={params / 1e6:.2f}M"
    )
    print(f"{'level':>5} {'hop':>5} {'bit/s':>7} {'enc RTF':>9} {'dec RTF':>9} {'total':>9}")
    with torch.inference_mode():
        for level in range(model.num_levels):
            codes = model.encode(wav, level=level)
            te = _timed(lambda lv=level: model.encode(wav, level=lv), device, args.repeats)
            td = _timed(lambda lv=level, c=codes: model.decode(c, level=lv, speaker=0), device, args.repeats)
            bitrate = model.config.bitrate(level)
            print(
                f"{level:>5} {model.hops[level]:>5} {bitrate:>7.0f} {te / args.seconds:>9.4f} "
                f"{td / args.seconds:>9.4f} {(te + td) / args.seconds:>9.4f}"
            )
            if device.type == "cuda":
                batch = codes.as_subclass(torch.Tensor).expand(args.batch, -1).contiguous()
                tb = _timed(
                    lambda lv=level, c=batch: model.decode(c, level=lv, speaker=0), device, args.repeats
                )
                print(f"      batched decode x{args.batch}: RTF {tb / (args.seconds * args.batch):.6f}")
    if device.type == "cuda":
        print(f"peak CUDA memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
