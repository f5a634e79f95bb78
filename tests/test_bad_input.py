"""Bad input found by probing the CLI as a user would (issue #14): each case is one line on stderr, exit
code 2, no traceback, no partial output and no damaged file."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

import vqaudio
from vqaudio.checkpoint import save_checkpoint
from vqaudio.cli import app
from vqaudio.config import RunConfig

REPO = Path(__file__).resolve().parents[1]
SR = 16000
runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def ckpt(tiny_ckpt: Path) -> Path:
    """The shared tiny checkpoint: read only."""
    return tiny_ckpt


def _cli(*args: object) -> object:
    return runner.invoke(app, [str(a) for a in args])


def _error(result: object) -> str:
    """The one ``error: ...`` line of a user error (exit code 2, nothing else on stderr)."""
    assert result.exit_code == 2, (result.exit_code, result.output)  # type: ignore[attr-defined]
    lines = result.stderr.splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr  # type: ignore[attr-defined]
    return lines[0]


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


# ------------------------------------------------------------------------------------ encode / decode


def test_two_inputs_with_one_name_are_refused(speech, tmp_path: Path, ckpt: Path) -> None:
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        sf.write(tmp_path / sub / "x.wav", speech(0.3), SR)
    out = tmp_path / "out"
    msg = _error(
        _cli("encode", tmp_path / "a" / "x.wav", tmp_path / "b" / "x.wav", "-o", out, "--model", ckpt)
    )
    assert "a/x.wav and " in msg and "b/x.wav would both write" in msg and not out.exists()
    # their parent folder is fine: the outputs mirror its tree
    assert _cli("encode", tmp_path / "a", tmp_path / "b", "-o", out, "--model", ckpt).exit_code == 2
    assert _cli("encode", tmp_path, "-o", out, "--model", ckpt).exit_code == 0
    assert _files(out) == ["a", "a/x.vqa", "b", "b/x.vqa"]
    decoded = tmp_path / "dec"
    msg = _error(_cli("decode", out / "a" / "x.vqa", out / "b" / "x.vqa", "-o", decoded, "--model", ckpt))
    assert "would both write" in msg and not decoded.exists()


def test_output_must_be_a_stream_and_never_the_input(speech, tmp_path: Path, ckpt: Path) -> None:
    wav = tmp_path / "in.wav"
    sf.write(wav, speech(0.3), SR)
    before = wav.read_bytes()
    msg = _error(_cli("encode", wav, "-o", tmp_path / "y.wav", "--model", ckpt))
    assert "unsupported output format '.wav'" in msg and ".vqa" in msg
    assert "the output is the input" in _error(_cli("encode", wav, "-o", wav, "--model", ckpt, "--force"))
    assert wav.read_bytes() == before and _files(tmp_path) == ["in.wav"]
    vqa = tmp_path / "in.vqa"
    assert _cli("encode", wav, "-o", vqa, "--model", ckpt).exit_code == 0
    assert "the output is the input" in _error(_cli("decode", vqa, "-o", vqa, "--model", ckpt, "--force"))
    assert "unsupported output format '.vqa'" in _error(_cli("decode", vqa, "-o", tmp_path / "o.vqa"))
    # several inputs into something that is not a folder
    msg = _error(_cli("encode", wav, wav.with_name("in.wav"), tmp_path, "-o", vqa, "--model", ckpt))
    assert msg  # (one line, exit 2)


def test_a_corrupt_stream_among_many_is_named(speech, tmp_path: Path, ckpt: Path) -> None:
    src = tmp_path / "wavs"
    src.mkdir()
    for name in ("a", "b"):
        sf.write(src / f"{name}.wav", speech(0.3), SR)
    streams = tmp_path / "vqa"
    assert _cli("encode", src, "-o", streams, "--model", ckpt).exit_code == 0
    data = bytearray((streams / "b.vqa").read_bytes())
    data[-3] ^= 0x10
    (streams / "b.vqa").write_bytes(bytes(data))
    msg = _error(_cli("decode", streams, "-o", tmp_path / "out", "--model", ckpt))
    assert f"{streams / 'b.vqa'}: " in msg and "CRC" in msg


def test_garbage_after_the_last_chunk_is_refused_by_decode_as_by_info(
    speech, tmp_path: Path, ckpt: Path
) -> None:
    wav, vqa = tmp_path / "in.wav", tmp_path / "in.vqa"
    sf.write(wav, speech(0.3), SR)
    assert _cli("encode", wav, "-o", vqa, "--model", ckpt).exit_code == 0
    with open(vqa, "ab") as f:
        f.write(b"garbage")
    assert "trailing data" in _error(_cli("info", vqa))
    out = tmp_path / "out.wav"
    assert "trailing data" in _error(_cli("decode", vqa, "-o", out, "--model", ckpt)) and not out.exists()


def test_info_on_a_folder(tmp_path: Path) -> None:
    assert "is a folder" in _error(_cli("info", tmp_path))


def test_errors_inside_the_progress_bar_start_on_the_first_line(tmp_path: Path, ckpt: Path) -> None:
    bad = tmp_path / "bad.vqa"
    bad.write_bytes(b"\x00" * 100)
    result = _cli("decode", bad, "-o", tmp_path / "out.wav", "--model", ckpt)
    assert result.exit_code == 2 and result.stderr.startswith("error: ")  # type: ignore[attr-defined]


def test_sigterm_during_encode_leaves_no_temporary_file(
    speech, tmp_path: Path, ckpt: Path, subprocess_env: dict[str, str]
) -> None:
    wav, vqa = tmp_path / "long.wav", tmp_path / "long.vqa"
    sf.write(wav, np.tile(speech(1.0), 120), SR)  # 2 minutes: encoding takes a while
    proc = subprocess.Popen(
        [sys.executable, "-m", "vqaudio", "encode", str(wav), "-o", str(vqa), "--model", str(ckpt)],
        env=subprocess_env,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not any(p.name.startswith(".long.") for p in tmp_path.iterdir()):  # the temporary output
        assert proc.poll() is None and time.monotonic() < deadline, "encode ended before it was stopped"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert _files(tmp_path) == ["long.wav"] and "Traceback" not in err


# --------------------------------------------------------------------------------- other commands


def test_export_into_a_folder_or_without_the_suffix(tmp_path: Path, ckpt: Path) -> None:
    (tmp_path / "d").mkdir()
    assert "is a folder" in _error(_cli("export", ckpt, "-o", tmp_path / "d", "--force"))
    assert ".safetensors" in _error(_cli("export", ckpt, "-o", tmp_path / "model.pt"))
    assert _files(tmp_path) == ["d"]


def test_toy_corpus_into_a_file_an_existing_corpus_or_a_read_only_folder(tmp_path: Path) -> None:
    args = ["--speakers", "2", "--utterances", "2", "--seconds", "0.2"]
    afile = tmp_path / "file.txt"
    afile.write_text("keep")
    assert "not a folder" in _error(_cli("toy-corpus", afile, *args))
    corpus = tmp_path / "toy"
    assert _cli("toy-corpus", corpus, *args).exit_code == 0
    first = (corpus / "spk0" / "spk0_000.wav").read_bytes()
    (corpus / "spk0" / "spk0_000.wav").write_bytes(b"mine")
    assert "--force" in _error(_cli("toy-corpus", corpus, *args))
    assert (corpus / "spk0" / "spk0_000.wav").read_bytes() == b"mine"
    assert _cli("toy-corpus", corpus, *args, "--force").exit_code == 0
    assert (corpus / "spk0" / "spk0_000.wav").read_bytes() == first
    if os.geteuid() != 0:  # root writes into read-only folders
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
        try:
            assert "cannot create" in _error(_cli("toy-corpus", locked / "toy", *args))
        finally:
            locked.chmod(stat.S_IRWXU)


def test_enrolling_a_name_twice_needs_force(tiny_model_config, speech, tmp_path: Path) -> None:
    import dataclasses

    cfg = dataclasses.replace(tiny_model_config(), speaker_encoder=True)
    torch.manual_seed(0)
    model = vqaudio.build_model(cfg, ["ann", "bob"])
    model.train()
    model(torch.from_numpy(np.stack([speech(0.5, s) for s in range(4)]))[:, None], torch.tensor([0, 1, 0, 1]))
    ckpt = tmp_path / "enc.safetensors"
    save_checkpoint(ckpt, model.eval(), RunConfig(model=cfg))
    ref = tmp_path / "ref.wav"
    sf.write(ref, speech(1.0), SR)
    first = _cli("enroll", ref, "--name", "carol", "--model", ckpt)
    assert first.exit_code == 0, first.output  # type: ignore[attr-defined]
    sidecar = ckpt.with_suffix(".voices.json")
    before = sidecar.read_bytes()
    assert "--force" in _error(_cli("enroll", ref, ref, "--name", "carol", "--model", ckpt))
    assert sidecar.read_bytes() == before
    assert _cli("enroll", ref, ref, "--name", "carol", "--model", ckpt, "--force").exit_code == 0
    assert sidecar.read_bytes() != before


def test_interrupted_training_exits_with_the_signal(
    tmp_path: Path, tiny_recipe: Path, tiny_args: object, subprocess_env: dict[str, str]
) -> None:
    out, log = tmp_path / "run", tmp_path / "train.log"
    cmd = [sys.executable, "-m", "vqaudio", "train", str(tiny_recipe), "--out", str(out)]
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [*cmd, *tiny_args(10_000)],  # type: ignore[operator]
            env=subprocess_env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:
            deadline = time.monotonic() + 120
            while not re.search(r"^step \d+/", log.read_text(), re.M):  # the first training step
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            proc.send_signal(signal.SIGINT)
            rc = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    assert rc == 128 + signal.SIGINT, text
    assert "resume with --resume" in text and "Traceback" not in text and (out / "checkpoints").is_dir()


class _Opaque:
    pass


def test_a_corrupt_training_state_never_suggests_weights_only_false(tmp_path: Path) -> None:
    from vqaudio.errors import CheckpointError
    from vqaudio.train.rundir import RunDir

    state = tmp_path / "x.state.pt"
    torch.save({"object": _Opaque()}, state)  # not a tensor nor plain data: weights_only=True refuses it
    with pytest.raises(CheckpointError) as info:
        RunDir.load_state(state, torch.device("cpu"))
    assert "weights_only" not in str(info.value) and "never unpickles" in str(info.value)
    state.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError) as info:
        RunDir.load_state(state, torch.device("cpu"))
    assert "\n" not in str(info.value) and "weights_only" not in str(info.value)


def test_numba_caches_outside_the_package(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    code = (
        "import numpy as np; from vqaudio.codec import entropy as e; "
        "t = e.FrequencyTable.from_counts(np.array([1, 2, 1, 1])); "
        "e.decode_codes(e.encode_codes(np.array([0, 1, 2]), t), 3, t); print(e.numba_cache_dir())"
    )
    env = {k: v for k, v in subprocess_env.items() if k != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "cache" / "vqaudio" / "numba")
    assert any((tmp_path / "cache" / "vqaudio" / "numba").rglob("*.nbi"))  # numba's cache index


def test_recipe_scripts_are_executable() -> None:
    scripts = sorted((REPO / "egs").glob("*/run.sh"))
    assert scripts and all(p.stat().st_mode & 0o111 == 0o111 for p in scripts), scripts
