"""Shared fixtures: a small synthetic corpus and the ``--set`` overrides that make training fast."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from vqaudio.data.synthetic import make_toy_corpus

REPO = Path(__file__).resolve().parents[1]
TINY_RECIPE = REPO / "recipes" / "tiny.yaml"

TinyOverrides = Callable[..., list[str]]


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run a test with one intra-op thread: tiny models are no slower, and a busy machine (other test
    processes on the same cores) does not stall OpenMP's spinning threads. Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def toy_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three toy speakers (spk0..spk2) with five ~1 s utterances each, in a plain folder layout."""
    return make_toy_corpus(tmp_path_factory.mktemp("toy"), speakers=3, utterances=5, seconds=1.0)


@pytest.fixture(scope="session")
def tiny_recipe() -> Path:
    return TINY_RECIPE


def _overrides(root: Path | str, max_steps: int, extra: dict[str, Any]) -> list[str]:
    values: dict[str, Any] = {
        "data.root": str(root),
        "data.segment_seconds": 0.25,
        "data.batch_size": 2,
        "data.valid_per_speaker": 1,
        "data.valid_max_seconds": 0.5,
        "data.num_workers": 0,
        "data.preload": "true",
        "train.max_steps": max_steps,
        "train.warmup_steps": 1,
        "train.log_every": 1,
        "train.eval_every": 1000,
        "train.save_every": 1000,
        "train.device": "cpu",
    }
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]


@pytest.fixture(scope="session")
def tiny_overrides(toy_corpus: Path) -> TinyOverrides:
    """``tiny_overrides(max_steps=4, **{"data.num_workers": 2})`` -> ``--set`` strings for the tiny recipe.

    Quarter-second segments, batches of 2, validation on one short utterance per speaker, CPU; a step
    checkpoint only at the end (or on a stop) and an evaluation at step 0 and at the end. Extra keys
    (dotted config paths) override these; ``root`` picks another corpus.
    """

    def make(max_steps: int = 3, root: Path | str | None = None, **extra: Any) -> list[str]:
        return _overrides(root if root is not None else toy_corpus, max_steps, extra)

    return make


@pytest.fixture(scope="session")
def tiny_args(tiny_overrides: TinyOverrides) -> TinyOverrides:
    """The same as :func:`tiny_overrides`, as command-line arguments (``--set`` before each one)."""

    def make(max_steps: int = 3, root: Path | str | None = None, **extra: Any) -> list[str]:
        return [arg for item in tiny_overrides(max_steps, root, **extra) for arg in ("--set", item)]

    return make


@pytest.fixture(scope="session")
def subprocess_env() -> dict[str, str]:
    """Environment for ``python -m vqaudio`` subprocesses: the repo importable, one thread, plain output."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env["OMP_NUM_THREADS"] = "1"
    env["NO_COLOR"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env
