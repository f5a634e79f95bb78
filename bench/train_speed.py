"""Training speed of a recipe, broken down by part (prints numbers; not a test).

    python bench/train_speed.py --recipe recipes/mini.yaml --threads 2
    python bench/train_speed.py --recipe recipes/mini.yaml --against 60a3bbb     # side by side with a commit
    python bench/train_speed.py --recipe recipes/vctk.yaml --device cuda --data /data/VCTK-Corpus-0.92

It builds the real trainer of the recipe (corpus, model, losses, optimiser; ``--data`` replaces
``data.root``, default ``data/demo/manifest.tsv`` for the demo recipes), runs ``--warmup`` steps (k-means
initialisation, ``train.compile``), then times ``--steps`` training steps of the trainer's own step
function and prints

* steps/s and seconds of audio trained per second (without and with validation and checkpoint saving,
  amortised over ``train.eval_every`` / ``train.save_every``);
* the mean milliseconds per step of each part: data, each level's encoder / quantiser / decoder forward
  and encoder / decoder backward (module hooks), each level's losses, the rest of the backward pass
  (losses, quantisers), the optimiser, and validation and saving amortised.

``--against REV`` checks REV out in a temporary ``git worktree`` and runs both trees ``--rounds`` times,
alternating, each in its own process with the same threads; the best round of each is compared, so a
claimed speed-up is a ratio measured in one session. Each tree reads its own version of a relative
``--recipe`` (so the ratio includes recipe changes) and this checkout's corpus. A tree without the
per-part timer (older commits) reports totals only. CUDA: every part boundary synchronises, so the
parts add up to the step; peak memory is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import nullcontext
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve()
_REPO = _HERE.parent.parent


# ----------------------------------------------------------------------------------- one measurement


class _ModuleTimes:
    """Forward time (pre/post hooks) and backward time (first gradient at the output to the last
    parameter gradient accumulated) of named modules, summed over the timed steps."""

    def __init__(self, device: Any) -> None:
        import torch

        self.torch = torch
        self.device = device
        self.forward: defaultdict[str, float] = defaultdict(float)
        self.backward: defaultdict[str, float] = defaultdict(float)
        self.active = False
        self._t0: dict[str, float] = {}
        self._bw_start: dict[str, float] = {}
        self._bw_end: dict[str, float] = {}

    def _now(self) -> float:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def watch(self, name: str, module: Any, backward: bool = True) -> None:
        def pre(mod: Any, args: Any) -> None:
            if self.active:
                self._t0[name] = self._now()

        def post(mod: Any, args: Any, out: Any) -> None:
            if not self.active:
                return
            self.forward[name] += self._now() - self._t0[name]
            if backward and self.torch.is_tensor(out) and out.requires_grad:
                out.register_hook(lambda g: self._mark_start(name))

        module.register_forward_pre_hook(pre)
        module.register_forward_hook(post)
        if backward:
            for p in module.parameters():
                p.register_post_accumulate_grad_hook(lambda p: self._mark_end(name))

    def _mark_start(self, name: str) -> None:
        if self.active and name not in self._bw_start:
            self._bw_start[name] = self._now()

    def _mark_end(self, name: str) -> None:
        if self.active:
            self._bw_end[name] = self._now()

    def end_step(self) -> None:
        for name, start in self._bw_start.items():
            if name in self._bw_end:
                self.backward[name] += max(0.0, self._bw_end[name] - start)
        self._bw_start.clear()
        self._bw_end.clear()


def _measure(args: argparse.Namespace) -> dict[str, Any]:
    """Build the trainer of ``args.recipe`` in this process (the ``vqaudio`` on the path) and time it."""
    import torch
    from rich.console import Console

    import vqaudio
    from vqaudio.config import load_config
    from vqaudio.train.trainer import Trainer

    sets = list(args.set or [])
    if args.data:
        sets.append(f"data.root={args.data}")
    sets += [f"train.threads={args.threads}", f"train.device={args.device}", "train.max_minutes=0"]
    sets += [f"train.max_steps={max(args.warmup + args.steps + 10, 1000)}", "train.audio_examples=0"]
    cfg = load_config(args.recipe, sets)
    eval_every, save_every = cfg.train.eval_every, cfg.train.save_every
    with tempfile.TemporaryDirectory(prefix="vqaudio_train_speed_") as tmp:
        console = Console(stderr=True, quiet=True)
        t0 = time.perf_counter()
        trainer = Trainer(cfg, Path(tmp) / "run", False, console)
        setup = time.perf_counter() - t0
        device = trainer.device
        model = trainer.model
        has_timer = hasattr(trainer, "timer")
        hooks = _ModuleTimes(device)
        shared = getattr(model.config, "shared_front", False)
        for i, level in enumerate(model.levels):
            if shared and i == 0:  # level 0's stages are called one by one: time them as such
                hooks.watch("shared front (L0 encoder strides)", level.encoder.down)
                hooks.watch("L0 encoder bottleneck", level.encoder.bottleneck)
            else:
                hooks.watch(f"L{i} encoder", level.encoder)
            hooks.watch(f"L{i} quantizer", level.quantizer, backward=False)
            hooks.watch(f"L{i} decoder", level.decoder)
        if getattr(model, "speaker_encoder", None) is not None:
            hooks.watch("speaker encoder", model.speaker_encoder)
        model.train()

        section = trainer.timer.section if has_timer else (lambda name: nullcontext())
        step = getattr(trainer, "train_step", None) or trainer._train_step  # before TrainLoop: _train_step

        def one_step() -> float:
            t = time.perf_counter()
            with section("data"):
                wav, spk = next(trainer.loader_iter)
                wav, spk = wav.to(device), spk.to(device)
            step(wav, spk)
            trainer.step += 1
            hooks.end_step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            return time.perf_counter() - t

        warm = [one_step() for _ in range(args.warmup)]
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        if has_timer:
            trainer.timer.reset()
            trainer.timer.enabled = True
        hooks.active = True
        t0 = time.perf_counter()
        for _ in range(args.steps):
            one_step()
        wall = time.perf_counter() - t0
        hooks.active = False
        if has_timer:
            trainer.timer.enabled = False
        t0 = time.perf_counter()
        trainer.validate()
        valid = time.perf_counter() - t0
        model.train()
        t0 = time.perf_counter()
        trainer.save()
        save = time.perf_counter() - t0
        close = getattr(trainer, "close", None)  # older trees: the log only
        close() if close is not None else trainer.log.close()
    n = args.steps
    step_s = wall / n
    extra = valid / eval_every + save / save_every
    audio_per_step = cfg.data.batch_size * cfg.data.segment_seconds
    parts: dict[str, float] = {}
    if has_timer:
        sec = trainer.timer.seconds
        parts["data"] = sec.get("data", 0.0) / n
        for name in hooks.forward:
            parts[f"{name} forward"] = hooks.forward[name] / n
        if "augment" in sec:  # data.augment, on the device before the forward pass
            parts["augmentation"] = sec["augment"] / n
        parts["forward, other"] = (sec.get("forward", 0.0) - sum(hooks.forward.values())) / n
        for name in sorted(k for k in sec if k.startswith("loss/")):
            parts[name] = sec[name] / n
        for name in hooks.backward:
            parts[f"{name} backward"] = hooks.backward[name] / n
        parts["backward, other (losses, quantisers)"] = (
            sec.get("backward", 0.0) - sum(hooks.backward.values())
        ) / n
        parts["optimizer (clip + AdamW)"] = sec.get("optimizer", 0.0) / n
        if "discriminator" in sec:
            parts["discriminator step"] = sec["discriminator"] / n
    parts[f"validation / {eval_every}"] = valid / eval_every
    parts[f"save / {save_every}"] = save / save_every
    return {
        "vqaudio": str(Path(vqaudio.__file__).parent.parent),
        "version": getattr(vqaudio, "__version__", "?"),
        "torch": torch.__version__,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "params": sum(p.numel() for p in model.parameters()),
        "setup_s": setup,
        "first_step_s": warm[0] if warm else None,
        "warmup_steps": args.warmup,
        "steps": n,
        "step_ms": 1000 * step_s,
        "steps_per_s": 1 / step_s,
        "steps_per_s_with_eval": 1 / (step_s + extra),
        "audio_s_per_s": audio_per_step / step_s,
        "audio_s_per_s_with_eval": audio_per_step / (step_s + extra),
        "parts_ms": {k: 1000 * v for k, v in parts.items()},
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        "detailed": has_timer,
    }


# ----------------------------------------------------------------------------------- reporting


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def _print_one(r: dict[str, Any], label: str = "") -> None:
    print(
        f"{label}{r['vqaudio']}: vqaudio {r['version']}, torch {r['torch']}, {r['device']}, "
        f"{r['threads']} threads, {r['params'] / 1e6:.2f}M parameters"
    )
    first = r["first_step_s"]
    print(
        f"  setup {r['setup_s']:.1f} s; first step {first:.2f} s (k-means init, compile); "
        f"{r['steps']} timed steps after {r['warmup_steps']} warm-up steps"
        if first is not None
        else f"  setup {r['setup_s']:.1f} s; {r['steps']} timed steps"
    )
    print(
        f"  {r['step_ms']:.1f} ms/step = {r['steps_per_s']:.2f} steps/s = "
        f"{r['audio_s_per_s']:.1f} s of audio/s; "
        f"with validation and saving amortised {r['steps_per_s_with_eval']:.2f} steps/s"
    )
    if r["peak_memory_gib"] is not None:
        print(f"  peak CUDA memory {r['peak_memory_gib']:.2f} GiB")
    parts = r["parts_ms"]
    if not r["detailed"]:
        print("  (this tree has no per-part timer: totals only)")
    width = max(len(k) for k in parts)
    total = r["step_ms"]
    for name, ms in parts.items():
        print(f"    {name:<{width}}  {ms:8.2f} ms  {100 * ms / total:5.1f}%")


def _run_tree(tree: Path, argv: list[str]) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    env.setdefault("OMP_NUM_THREADS", argv[argv.index("--threads") + 1] if "--threads" in argv else "2")
    proc = subprocess.run(
        [sys.executable, str(_HERE), *argv, "--inner"],
        cwd=str(tree),
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"train_speed: the run in {tree} failed (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _against(args: argparse.Namespace, argv: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="vqaudio_against_") as tmp:
        base = Path(tmp) / "tree"
        subprocess.run(
            ["git", "-C", str(_REPO), "worktree", "add", "--detach", str(base), args.against],
            check=True,
            capture_output=True,
        )
        try:
            rev = subprocess.run(
                ["git", "-C", str(base), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
            ).stdout.strip()
            new_best: dict[str, Any] | None = None
            old_best: dict[str, Any] | None = None
            for k in range(args.rounds):
                for which in ("new", "old"):
                    r = _run_tree(_REPO if which == "new" else base, argv)
                    print(f"round {k + 1} {which}: {r['steps_per_s']:.3f} steps/s", file=sys.stderr)
                    if which == "new" and (new_best is None or r["steps_per_s"] > new_best["steps_per_s"]):
                        new_best = r
                    if which == "old" and (old_best is None or r["steps_per_s"] > old_best["steps_per_s"]):
                        old_best = r
        finally:
            subprocess.run(["git", "-C", str(_REPO), "worktree", "remove", "--force", str(base)], check=False)
    assert new_best is not None and old_best is not None
    print(f"# {args.recipe} on {_cpu_name()}, best of {args.rounds} alternating rounds each")
    _print_one(old_best, f"[{args.against} = {rev}] ")
    _print_one(new_best, "[this tree] ")
    ratio = new_best["steps_per_s"] / old_best["steps_per_s"]
    ratio_eval = new_best["steps_per_s_with_eval"] / old_best["steps_per_s_with_eval"]
    print(f"speed-up (this tree / {args.against}): {ratio:.2f}x steps/s, {ratio_eval:.2f}x with validation")
    print(
        f"(each tree read its own {args.recipe} when the path is relative: "
        "a recipe change is part of the ratio)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="recipes/mini.yaml")
    ap.add_argument("--set", action="append", help="key.path=value override (repeatable)")
    ap.add_argument("--data", help="corpus (data.root); default: the recipe's, e.g. data/demo/manifest.tsv")
    ap.add_argument("--steps", type=int, default=30, help="timed steps")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first (k-means init, compile)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--against", metavar="REV", help="also time git revision REV, side by side")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds per tree with --against")
    ap.add_argument("--json", help="also write the result(s) as JSON here")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    argv = [a for a in sys.argv[1:] if a != "--inner"]
    if args.against:
        i = argv.index("--against")
        argv = argv[:i] + argv[i + 2 :]
        if not args.data:  # the corpus lives in this checkout only: give both trees its absolute path
            from vqaudio.config import load_config

            root = load_config(args.recipe, list(args.set or [])).data.root
            if root:
                argv += ["--data", str(Path(root).resolve())]
        _against(args, argv)
        return
    import torch

    torch.set_num_threads(args.threads)
    result = _measure(args)
    if args.inner:
        print(json.dumps(result))
        return
    print(f"# {args.recipe} on {_cpu_name()}")
    _print_one(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
