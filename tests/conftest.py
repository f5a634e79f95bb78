"""Shared fixtures: tiny model configs, toy speech, a tiny trained checkpoint (read only), a small
synthetic corpus and the ``--set`` overrides that make training fast.

Test modules never import each other (``tests/test_architecture.py`` checks it): what several of them
need lives here, as a fixture. A plain function many tests call is exposed by a fixture that returns it.
Session-scoped objects are shared by every test that asks for them, so they are only read; the
checkpoint and the model loaded from it check, when the session ends, that no test changed them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

import vqaudio
from vqaudio.checkpoint import save_checkpoint
from vqaudio.codec.compress import code_tables
from vqaudio.config import LevelConfig, ModelConfig, QuantizerConfig, RunConfig
from vqaudio.data.labels import PhoneIntervals
from vqaudio.data.synthetic import make_toy_corpus, toy_utterance

REPO = Path(__file__).resolve().parents[1]
TINY_RECIPE = REPO / "recipes" / "tiny.yaml"
SR = 16000
TINY_SPEAKERS = ("ann", "bob")

TinyOverrides = Callable[..., list[str]]
Speech = Callable[..., np.ndarray]
TrainedTiny = Callable[[int], vqaudio.VQVAE]


# --- tiny models -----------------------------------------------------------------------------------------


def _tiny_model_config() -> ModelConfig:
    small = dict(codebook_size=32, code_dim=4, channels=4, max_channels=8, bottleneck_blocks=1)
    return ModelConfig(
        # level 1 ends in an inverse-STFT head (hop 20) after one upsampling: both decoder kinds are tested
        levels=[
            LevelConfig(strides=[2, 5], **small),
            LevelConfig(strides=[4, 5, 2], istft_strides=2, **small),
        ],
        quantizer=QuantizerConfig(kmeans_iters=2),
        speaker_dim=4,
    )


def _shared_front_config() -> ModelConfig:
    """Three levels reading level 0's encoder features (hops 10 / 20 / 40); level 2 ends in an iSTFT head."""
    small = dict(codebook_size=32, code_dim=4, channels=4, max_channels=8, bottleneck_blocks=1)
    return ModelConfig(
        levels=[
            LevelConfig(strides=[2, 5], **small),
            LevelConfig(strides=[2, 5, 2], **small),
            LevelConfig(strides=[2, 5, 4], istft_strides=2, **small),
        ],
        quantizer=QuantizerConfig(kmeans_iters=2),
        speaker_dim=4,
        shared_front=True,
    )


def _speech(seconds: float, seed: int = 0, sr: int = SR) -> np.ndarray:
    return toy_utterance(np.random.default_rng(seed), sr, seconds, 120.0, 1.0)


def _trained_tiny(seed: int) -> vqaudio.VQVAE:
    torch.manual_seed(seed)
    model = vqaudio.build_model(_tiny_model_config(), list(TINY_SPEAKERS))
    model.train()
    x = torch.from_numpy(np.stack([_speech(0.5, s) for s in range(4)]))[:, None]
    for _ in range(3):  # initialise codebooks and EMA statistics from data
        model(x, torch.tensor([0, 1, 0, 1]))
    return model.eval()


@pytest.fixture(scope="session")
def tiny_model_config() -> Callable[[], ModelConfig]:
    """``tiny_model_config()`` -> a new two-level :class:`ModelConfig` (hops 10 and 40, K = 32) of a model
    with a few thousand parameters; each call returns a fresh object, so a test may change its own."""
    return _tiny_model_config


@pytest.fixture(scope="session")
def shared_front_config() -> Callable[[], ModelConfig]:
    """``shared_front_config()`` -> a new three-level shared-front :class:`ModelConfig` (hops 10/20/40)."""
    return _shared_front_config


@pytest.fixture(scope="session")
def speech() -> Speech:
    """``speech(seconds, seed=0, sr=16000)`` -> a toy utterance (float32 ``[T]``, f0 120 Hz)."""
    return _speech


@pytest.fixture(scope="session")
def trained_tiny() -> TrainedTiny:
    """``trained_tiny(seed)`` -> a new tiny model (speakers ann, bob), codebooks initialised from toy
    speech by three training passes, in eval mode. Each call builds its own: a test may change it."""
    return _trained_tiny


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A checkpoint of ``trained_tiny(0)`` with its code tables, and facts about speaker ann, alone in its
    folder. Shared by many modules: read it, never write it or beside it (enrolling a voice writes a
    sidecar next to the model; use your own copy for that). Checked when the session ends."""
    folder = tmp_path_factory.mktemp("tiny_ckpt")
    path = folder / "tiny.safetensors"
    model = _trained_tiny(0)
    model.speaker_info = {"ann": {"gender": "F", "age": "23", "accent": "Scottish", "region": None}}
    save_checkpoint(path, model, RunConfig(model=_tiny_model_config()), code_tables=code_tables(model))
    digest = _digest(path)
    yield path
    assert sorted(p.name for p in folder.iterdir()) == [path.name], "a test wrote beside tiny_ckpt"
    assert _digest(path) == digest, "a test changed the shared tiny_ckpt"


@pytest.fixture(scope="session")
def tiny_model(tiny_ckpt: Path) -> Iterator[vqaudio.VQVAE]:
    """The model of :func:`tiny_ckpt`, loaded once, in eval mode. Shared: only encode / decode with it
    (a test that trains, moves or edits a model builds its own with ``trained_tiny``)."""
    model = vqaudio.load_model(tiny_ckpt)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    yield model
    assert not model.training, "a test left the shared tiny_model in training mode"
    after = model.state_dict()
    changed = [k for k, v in before.items() if not torch.equal(v, after[k].cpu())]
    assert not changed, f"a test changed the shared tiny_model: {changed[:5]}"


# --- labels -------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def say_hi_phones() -> PhoneIntervals:
    """1.2 s of phones, "say hi" between silences (sil S EY HH AY sil), as ``tests/test_labels.py``'s
    TextGrids hold them with stress stripped. Immutable (read-only arrays)."""
    return PhoneIntervals.from_tuples(
        [(0, 0.2, "sil"), (0.2, 0.35, "S"), (0.35, 0.6, "EY"), (0.6, 0.7, "HH"), (0.7, 0.9, "AY")]
        + [(0.9, 1.2, "sil")]
    )


# --- training -------------------------------------------------------------------------------------------


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


def _bench_module(name: str) -> ModuleType:
    path = REPO / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def bench_module() -> Callable[[str], ModuleType]:
    """``bench_module(name)`` -> ``bench/<name>.py`` imported (bench/ holds scripts, not a package)."""
    return _bench_module


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
