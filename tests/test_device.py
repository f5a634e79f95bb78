"""Device names: what commands (``--device``) and training (``train.device``) accept, and their errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from vqaudio.cli import app
from vqaudio.device import resolve_device
from vqaudio.errors import UserError


def test_names_resolve() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if torch.cuda.is_available():
        assert resolve_device("cuda", local_rank=torch.cuda.device_count()) == torch.device("cuda", 0)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bogus", "--device 'bogus' is not a device"),
        ("meta", "--device 'meta' is not a device"),
        ("cuda:99", "cuda:99 but" if torch.cuda.is_available() else "no CUDA device is available"),
    ],
)
def test_bad_names_are_user_errors_naming_the_option(name: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        resolve_device(name)
    with pytest.raises(UserError, match="^train.device"):
        resolve_device(name, option="train.device")


def test_encode_with_a_bad_device_is_one_line_exit_2(tiny_ckpt: Path, tmp_path: Path) -> None:
    wav = tmp_path / "x.wav"
    sf.write(wav, np.zeros(1600, np.float32), 16000)
    for device in ("bogus", *([] if torch.cuda.is_available() else ["cuda"])):
        args = [
            "encode",
            str(wav),
            "-o",
            str(tmp_path / "x.vqa"),
            "--model",
            str(tiny_ckpt),
            "--device",
            device,
        ]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, result.output
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "--device" in errors[0] and "train.device" not in errors[0]
        assert not (tmp_path / "x.vqa").exists()


def test_inference_modules_import_nothing_from_training(subprocess_env: dict[str, str]) -> None:
    import subprocess
    import sys

    code = (
        "import sys, vqaudio.eval, vqaudio.eval.reconstruction, vqaudio.eval.conversion, "
        "vqaudio.eval.phones, vqaudio.eval.baselines, vqaudio.eval.report, vqaudio.codec.compress, "
        "vqaudio.convert, vqaudio.device; print([m for m in sys.modules if m.startswith('vqaudio.train')])"
    )
    done = subprocess.run([sys.executable, "-c", code], env=subprocess_env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
