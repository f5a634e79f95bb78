"""Audio <-> .vqa with a model: round trips, chunking, entropy coding, mismatches, bad input (API + CLI)."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

import vqaudio
from vqaudio.checkpoint import save_checkpoint
from vqaudio.cli import app
from vqaudio.codec.bitstream import StreamError, decode_stream, encode_stream, read_header
from vqaudio.codec.compress import (
    code_tables,
    compress,
    decode_audio,
    decompress,
    encode_audio,
    encode_file,
    model_fingerprint,
)
from vqaudio.config import LevelConfig, ModelConfig, QuantizerConfig, RunConfig

SR = 16000


@pytest.fixture
def ckpt(tiny_ckpt: Path) -> Path:
    """The shared tiny checkpoint (with code tables): read only."""
    return tiny_ckpt


@pytest.fixture
def model(tiny_model: vqaudio.VQVAE) -> vqaudio.VQVAE:
    """The shared tiny model loaded from :func:`ckpt`: encode and decode only."""
    return tiny_model


@pytest.mark.parametrize("length", [1, 2, 39, 40, 41, 1234, 16000, 50_001])
@pytest.mark.parametrize("level", [0, 1])
def test_round_trip_keeps_length_and_range(speech, model, length: int, level: int) -> None:
    x = np.resize(speech(1.0), length) * 3.0  # loud: the decoder may overshoot
    y, sr = decompress(model, compress(model, x, SR, level=level, chunk_seconds=0.5))
    assert sr == SR and y.shape == (length,)
    assert np.abs(y).max() <= 1.0


def test_chunked_codes_and_audio_equal_whole_file(speech, model) -> None:
    x = speech(3.3, seed=5)
    for level in range(model.num_levels):
        data = compress(model, x, SR, level=level, chunk_seconds=0.25)
        header, codes = decode_stream(data)
        assert header.num_chunks > 5
        whole = model.encode(torch.from_numpy(x), level=level)
        assert np.array_equal(codes[0], whole[0].numpy())
        y, _ = decompress(model, data)
        ref = model.decode(whole, level=level, speaker="ann")[0, 0].clamp(-1, 1).numpy()
        np.testing.assert_allclose(y, ref, atol=1e-5)


def test_array_core_gives_whole_signal_codes_and_the_streams_audio(speech, model) -> None:
    """encode_audio / decode_audio in chunks: the whole-signal codes and audio, and what a stream decodes."""
    x = speech(2.1, seed=6)
    for level in range(model.num_levels):
        codes = encode_audio(model, x, SR, level, chunk_seconds=0.3)
        whole = model.encode(torch.from_numpy(x), level=level)
        assert codes.dtype == np.int64 and np.array_equal(codes, whole[0].numpy())
        y = decode_audio(model, codes, level, "bob", num_samples=len(x), chunk_seconds=0.3)
        ref = model.decode(whole, level=level, speaker="bob")[0, 0].clamp(-1, 1).numpy()
        np.testing.assert_allclose(y, ref, atol=1e-5)
        stream = compress(model, x, SR, level=level, speaker="bob", chunk_seconds=0.3)
        np.testing.assert_array_equal(y, decompress(model, stream)[0])
    with pytest.raises(ValueError, match="do not make"):
        decode_audio(model, codes, 0, num_samples=10 * len(x))


def test_receptive_field_is_enough(speech, trained_tiny) -> None:
    """Changing audio beyond the computed context never changes a frame's code."""
    torch.manual_seed(0)
    m = trained_tiny(1)
    cfg = m.config.levels[0]
    ctx = max(m.receptive_field(0).encoder)
    x = torch.from_numpy(speech(1.0))
    codes = m.encode(x, level=0)
    far = x.clone()
    cut = 8000 + ctx
    far[cut:] = torch.randn(far.numel() - cut)
    changed = m.encode(far, level=0)
    assert torch.equal(codes[0, : 8000 // cfg.hop], changed[0, : 8000 // cfg.hop])


def test_entropy_coding_round_trip_and_is_smaller(speech, model) -> None:
    x = speech(4.0, seed=2)
    packed = compress(model, x, SR, levels=[0, 1])
    coded = compress(model, x, SR, levels=[0, 1], entropy=True)
    assert len(coded) < len(packed)
    for level in (0, 1):
        a, _ = decompress(model, packed, level=level)
        b, _ = decompress(model, coded, level=level)
        np.testing.assert_array_equal(a, b)


def test_model_mismatch_is_reported(speech, trained_tiny, model) -> None:
    other = trained_tiny(7)
    data = compress(model, speech(0.5), SR)
    with pytest.raises(StreamError, match="model mismatch"):
        decompress(other, data)


def _edited_checkpoint(ckpt: Path, out: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of ``ckpt`` whose JSON metadata ``edit`` changed (the weights are the same)."""
    with safe_open(str(ckpt), framework="pt") as f:
        meta = json.loads(f.metadata()["vqaudio"])
    edit(meta)
    save_file(load_file(str(ckpt)), str(out), metadata={"vqaudio": json.dumps(meta)})
    return out


@pytest.mark.parametrize("edit", ["speakers", "code_tables", "config"])
def test_edited_metadata_is_another_model(speech, tmp_path: Path, ckpt: Path, model, edit: str) -> None:
    """The fingerprint covers what decoding depends on beside the weights: a stream made with the model
    is refused by a copy whose speaker names, code tables or model config were edited."""

    def change(meta: dict[str, Any]) -> None:
        if edit == "speakers":
            meta["speakers"] = meta["speakers"][::-1]
        elif edit == "code_tables":
            meta["code_tables"]["0"] = meta["code_tables"]["1"]
        else:
            meta["config"]["model"]["voice_perturbation"] = 0.25  # any field of the model section

    other = vqaudio.load_model(_edited_checkpoint(ckpt, tmp_path / "edited.safetensors", change))
    assert other.checkpoint.weights_sha256 == model.checkpoint.weights_sha256  # same weights
    data = compress(model, speech(0.5), SR)
    with pytest.raises(StreamError, match="model mismatch"):
        decompress(other, data)
    same = vqaudio.load_model(_edited_checkpoint(ckpt, tmp_path / "same.safetensors", lambda m: None))
    assert model_fingerprint(same) == model_fingerprint(model)
    np.testing.assert_array_equal(decompress(same, data)[0], decompress(model, data)[0])


def test_fingerprint_of_a_model_and_of_its_saved_checkpoint_agree(
    tiny_model_config, speech, trained_tiny, tmp_path: Path
) -> None:
    fresh = trained_tiny(3)
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, fresh, RunConfig(model=tiny_model_config()), code_tables=code_tables(fresh))
    loaded = vqaudio.load_model(path)
    assert model_fingerprint(loaded) == model_fingerprint(fresh)
    data = compress(fresh, speech(0.5), SR)  # made in memory, decoded from the file
    np.testing.assert_array_equal(decompress(loaded, data)[0], decompress(fresh, data)[0])


def test_version_1_streams_still_decode(speech, model) -> None:
    """A stream as vqaudio wrote it before version 2 (JSON header, the weights' SHA-256) decodes to
    the same audio as today's stream of the same codes, and a v1 stream of another model is refused."""
    x = speech(0.7)
    v2 = compress(model, x, SR, levels=[0, 1], speaker="bob")
    h, codes = read_header(io.BytesIO(v2))[0], _codes_of(v2)
    assert h.version == 2
    v1_header = dataclasses.replace(h, version=1, model_id=model.checkpoint.weights_sha256)
    v1 = encode_stream(v1_header, codes)
    assert len(v1) > len(v2) + 250  # the JSON header
    for level in (0, 1):
        np.testing.assert_array_equal(
            decompress(model, v1, level=level)[0], decompress(model, v2, level=level)[0]
        )
    wrong = encode_stream(dataclasses.replace(v1_header, model_id="0" * 64), codes)
    with pytest.raises(StreamError, match="model mismatch"):
        decompress(model, wrong)


def _codes_of(data: bytes) -> list[np.ndarray]:
    return decode_stream(data)[1]


def test_speaker_recorded_and_overridable(speech, model) -> None:
    data = compress(model, speech(0.5), SR, speaker="bob")
    assert read_header(io.BytesIO(data))[0].speaker == "bob"
    a, _ = decompress(model, data)
    b, _ = decompress(model, data, speaker="ann")
    assert not np.allclose(a, b)
    with pytest.raises(vqaudio.errors.UserError, match="unknown speaker"):
        compress(model, speech(0.5), SR, speaker="zed")


# ------------------------------------------------------------------------------------------ CLI

runner = CliRunner()


def _cli(*args: str) -> object:
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize(
    ("sr", "channels", "subtype"),
    [
        (16000, 1, "PCM_16"),
        (8000, 1, "PCM_16"),
        (22050, 2, "PCM_24"),
        (44100, 6, "FLOAT"),
        (48000, 2, "PCM_16"),
    ],
)
def test_cli_round_trip_of_valid_inputs(
    speech, tmp_path: Path, ckpt: Path, sr: int, channels: int, subtype: str
) -> None:
    x = np.stack([speech(0.7, seed=c, sr=sr) * 0.5 for c in range(channels)], axis=1)
    wav = tmp_path / "in.wav"
    sf.write(wav, x, sr, subtype=subtype)
    vqa, out, orig = tmp_path / "in.vqa", tmp_path / "out.wav", tmp_path / "orig.flac"
    assert _cli("encode", wav, "-o", vqa, "--model", ckpt).exit_code == 0
    assert _cli("decode", vqa, "-o", out, "--model", ckpt).exit_code == 0
    assert sf.info(out).samplerate == SR and sf.info(out).frames == round(len(x) * SR / sr)
    assert _cli("decode", vqa, "-o", orig, "--model", ckpt, "--sample-rate", "orig").exit_code == 0
    assert sf.info(orig).samplerate == sr and sf.info(orig).frames == len(x)


def test_cli_one_sample_file(tmp_path: Path, ckpt: Path) -> None:
    wav = tmp_path / "one.wav"
    sf.write(wav, np.array([0.5], dtype=np.float32), SR)
    assert _cli("encode", wav, "-o", tmp_path / "one.vqa", "--model", ckpt).exit_code == 0
    assert (
        _cli("decode", tmp_path / "one.vqa", "-o", tmp_path / "one_out.wav", "--model", ckpt).exit_code == 0
    )
    assert sf.info(tmp_path / "one_out.wav").frames == 1


def test_cli_info_json(speech, tmp_path: Path, ckpt: Path, model) -> None:
    wav = tmp_path / "in.wav"
    sf.write(wav, speech(2.0), SR)
    vqa = tmp_path / "in.vqa"
    assert _cli("encode", wav, "-o", vqa, "--model", ckpt, "--levels", "0,1").exit_code == 0
    result = _cli("info", vqa, "--json")
    assert result.exit_code == 0
    info = json.loads(result.stdout)
    assert info["sample_rate"] == SR and info["num_samples"] == 2 * SR
    assert [lv["level"] for lv in info["levels"]] == [0, 1]
    nominal = sum(SR / h * math.log2(32) for h in model.hops)
    assert info["bitrate_nominal"] == pytest.approx(nominal)
    assert info["bitrate_actual"] == pytest.approx(vqa.stat().st_size * 8 / 2.0)
    assert info["bitrate_payload"] <= info["bitrate_actual"]
    assert info["model_id"] == model_fingerprint(model)[:16] and info["format_version"] == 2
    frames = [math.ceil(2 * SR / h) for h in model.hops[:2]]
    assert info["payload_bytes"] == sum(math.ceil(n * 5 / 8) for n in frames)  # K = 32: 5 bits a code
    assert info["header_bytes"] + info["payload_bytes"] + info["framing_bytes"] == vqa.stat().st_size
    assert info["framing_bytes"] == 4 * info["num_chunks"]  # a CRC per packed chunk, nothing else
    assert info["overhead_percent"] == pytest.approx(100 * (info["bitrate_actual"] / nominal - 1))
    assert _cli("info", vqa).exit_code == 0


def test_cli_many_files_into_a_folder(speech, tmp_path: Path, ckpt: Path) -> None:
    src = tmp_path / "src" / "sub"
    src.mkdir(parents=True)
    for i in range(3):
        sf.write(src / f"u{i}.wav", speech(0.3, seed=i), SR)
    assert (
        _cli("encode", tmp_path / "src", "-o", tmp_path / "codes", "--model", ckpt, "--entropy").exit_code
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "codes" / "sub").iterdir()) == ["u0.vqa", "u1.vqa", "u2.vqa"]
    assert _cli("decode", tmp_path / "codes", "-o", tmp_path / "back", "--model", ckpt).exit_code == 0
    assert len(list((tmp_path / "back" / "sub").glob("*.wav"))) == 3


def _bad_audio(tmp_path: Path, speech: Callable[..., np.ndarray]) -> dict[str, Path]:
    good = speech(0.5)
    files = {}
    files["empty"] = tmp_path / "empty.wav"
    files["empty"].write_bytes(b"")
    files["text"] = tmp_path / "text.wav"
    files["text"].write_text("this is not audio\n" * 20)
    files["header_only"] = tmp_path / "header_only.wav"
    sf.write(files["header_only"], np.zeros(0, dtype=np.float32), SR)
    full = tmp_path / "full.wav"
    sf.write(full, good, SR)
    files["truncated_wav"] = tmp_path / "trunc.wav"
    files["truncated_wav"].write_bytes(full.read_bytes()[:30])
    flac = tmp_path / "full.flac"
    sf.write(flac, good, SR)
    files["truncated_flac"] = tmp_path / "trunc.flac"
    files["truncated_flac"].write_bytes(flac.read_bytes()[: len(flac.read_bytes()) // 2])
    files["nan"] = tmp_path / "nan.wav"
    bad = good.copy()
    bad[100] = np.nan
    sf.write(files["nan"], bad, SR, subtype="FLOAT")
    files["missing"] = tmp_path / "missing.wav"
    return files


def test_cli_bad_audio_exits_2_without_output(speech, tmp_path: Path, ckpt: Path) -> None:
    for name, path in _bad_audio(tmp_path, speech).items():
        out = tmp_path / f"{name}.vqa"
        result = _cli("encode", path, "-o", out, "--model", ckpt)
        assert result.exit_code == 2, (name, result.output)
        assert "error:" in result.stderr and "Traceback" not in result.output
        assert not out.exists(), name
    assert not list(tmp_path.glob(".*.tmp*"))


def test_cli_refuses_to_overwrite_and_bad_output_extension(speech, tmp_path: Path, ckpt: Path) -> None:
    wav = tmp_path / "in.wav"
    sf.write(wav, speech(0.5), SR)
    vqa = tmp_path / "in.vqa"
    vqa.write_bytes(b"precious")
    result = _cli("encode", wav, "-o", vqa, "--model", ckpt)
    assert result.exit_code == 2 and "--force" in result.stderr
    assert vqa.read_bytes() == b"precious"
    assert _cli("encode", wav, "-o", vqa, "--model", ckpt, "--force").exit_code == 0
    for bad in ("out.mp3", "out.xyz"):
        result = _cli("decode", vqa, "-o", tmp_path / bad, "--model", ckpt)
        assert result.exit_code == 2 and "unsupported output format" in result.stderr
        assert not (tmp_path / bad).exists()


def test_cli_corrupt_stream_and_model_mismatch(
    tiny_model_config, speech, trained_tiny, tmp_path: Path, ckpt: Path
) -> None:
    wav = tmp_path / "in.wav"
    sf.write(wav, speech(0.5), SR)
    vqa = tmp_path / "in.vqa"
    assert _cli("encode", wav, "-o", vqa, "--model", ckpt).exit_code == 0
    data = bytearray(vqa.read_bytes())
    data[-3] ^= 0x10
    bad = tmp_path / "bad.vqa"
    bad.write_bytes(bytes(data))
    out = tmp_path / "out.wav"
    result = _cli("decode", bad, "-o", out, "--model", ckpt)
    assert result.exit_code == 2 and not out.exists()
    other = tmp_path / "other.safetensors"
    save_checkpoint(other, trained_tiny(3), RunConfig(model=tiny_model_config()))
    result = _cli("decode", vqa, "-o", out, "--model", other)
    assert result.exit_code == 2 and "model mismatch" in result.stderr and not out.exists()


def test_encode_through_stdin_and_stdout_as_a_subprocess(
    speech, tmp_path: Path, ckpt: Path, subprocess_env
) -> None:
    wav = tmp_path / "in.wav"
    sf.write(wav, speech(0.5), SR)
    enc = subprocess.run(
        [sys.executable, "-m", "vqaudio", "encode", "-", "-o", "-", "--model", str(ckpt)],
        input=wav.read_bytes(),
        capture_output=True,
        env=subprocess_env,
        timeout=120,
    )
    assert enc.returncode == 0, enc.stderr.decode()[-2000:]
    assert enc.stdout[:4] == b"VQA\x1a"
    dec = subprocess.run(
        [sys.executable, "-m", "vqaudio", "decode", "-", "-o", "-", "--model", str(ckpt)],
        input=enc.stdout,
        capture_output=True,
        env=subprocess_env,
        timeout=120,
    )
    assert dec.returncode == 0 and dec.stdout[:4] == b"RIFF"
    bad = subprocess.run(
        [sys.executable, "-m", "vqaudio", "decode", "-", "-o", "-", "--model", str(ckpt)],
        input=b"garbage",
        capture_output=True,
        env=subprocess_env,
        timeout=120,
    )
    assert bad.returncode == 2 and b"Traceback" not in bad.stderr


def test_long_file_is_streamed_in_bounded_chunks(speech, tmp_path: Path, model) -> None:
    """A 60 s file: encode_file reads blocks; at the model's rate its output equals the in-memory path."""
    x = np.resize(speech(2.0), 60 * SR).astype(np.float32) * 0.5
    wav = tmp_path / "long.wav"
    sf.write(wav, x, SR, subtype="FLOAT")
    out = tmp_path / "long.vqa"
    result = encode_file(model, wav, out, levels=[1], chunk_seconds=5.0)
    assert result.header.num_chunks == 12 and result.header.num_samples == 60 * SR
    assert out.read_bytes() == compress(model, x, SR, level=1, chunk_seconds=5.0)


def test_long_file_at_another_rate_is_resampled_in_blocks(speech, tmp_path: Path, model) -> None:
    """At 48 kHz the streaming resampler and the one-shot one differ by float rounding only: a code
    may flip where two codewords are (nearly) tied, nowhere else."""
    x = np.resize(speech(2.0, sr=48000), 60 * 48000) * 0.5
    wav = tmp_path / "long.wav"
    sf.write(wav, x, 48000)
    out = tmp_path / "long.vqa"
    result = encode_file(model, wav, out, levels=[1], chunk_seconds=5.0)
    assert result.header.num_chunks == 12 and result.header.num_samples == 60 * SR
    streamed = decode_stream(out.read_bytes())[1][0]
    whole = decode_stream(compress(model, x, 48000, level=1, chunk_seconds=5.0))[1][0]
    assert streamed.shape == whole.shape
    assert np.mean(streamed == whole) > 0.99


def test_export_keeps_the_sha_and_adds_code_tables(
    tiny_model_config, speech, trained_tiny, tmp_path: Path
) -> None:
    bare = tmp_path / "bare.safetensors"
    save_checkpoint(bare, trained_tiny(0), RunConfig(model=tiny_model_config()))  # no tables handed over
    model = vqaudio.load_model(bare)
    assert model.checkpoint.code_tables == {}
    with pytest.raises(vqaudio.errors.UserError, match="no code frequency tables"):
        compress(model, speech(0.5), SR, entropy=True)
    out = tmp_path / "exported.safetensors"
    assert _cli("export", bare, "-o", out).exit_code == 0
    again = vqaudio.load_model(out)
    assert again.checkpoint.weights_sha256 == model.checkpoint.weights_sha256
    assert again.checkpoint.code_tables == code_tables(model)
    assert _cli("export", bare, "-o", out).exit_code == 2  # exists, no --force


def test_receptive_field_follows_the_encoder_blocks(speech) -> None:
    """Without per-scale encoder blocks the context shrinks, and it is still enough."""
    torch.manual_seed(0)
    small = dict(strides=[2, 5], codebook_size=32, code_dim=4, channels=4, max_channels=8, blocks_per_scale=3)
    cfg = ModelConfig(levels=[LevelConfig(**small)], quantizer=QuantizerConfig(kmeans_iters=2), speaker_dim=4)
    with_blocks = vqaudio.build_model(cfg, ["ann"]).receptive_field(0)
    cfg.levels[0].encoder_blocks_per_scale = 0
    m = vqaudio.build_model(cfg, ["ann"]).eval()
    field = m.receptive_field(0)
    assert max(field.encoder) < max(with_blocks.encoder)
    assert field.decoder == with_blocks.decoder  # the decoder's context is unchanged
    ctx = max(field.encoder)
    x = torch.from_numpy(speech(1.0))
    codes = m.encode(x, level=0)
    far = x.clone()
    far[8000 + ctx :] = torch.randn(far.numel() - 8000 - ctx)
    assert torch.equal(codes[0, :800], m.encode(far, level=0)[0, :800])


def test_shared_front_streams_in_chunks_with_whole_file_codes(
    shared_front_config, speech, tmp_path: Path
) -> None:
    """A shared-front model pads every encoder input to the lcm of the hops; chunked encoding with the
    receptive-field context still gives exactly the whole-file codes at every level, and decodes."""
    from vqaudio.codec.compress import encoder_context

    torch.manual_seed(0)
    model = vqaudio.build_model(shared_front_config(), ["ann"]).eval()
    for level in range(3):
        assert encoder_context(model, level) % model.input_multiple(level) == 0
    x = speech(2.3, seed=4)
    data = compress(model, x, SR, levels=[0, 1, 2], chunk_seconds=0.3)
    header, streamed = decode_stream(data)
    assert header.num_chunks > 3
    for lv in range(3):
        whole = model.encode(torch.from_numpy(x), level=lv)[0].numpy()
        assert np.array_equal(streamed[lv], whole), lv
        y, _ = decompress(model, data, level=lv)
        assert y.shape == x.shape and np.isfinite(y).all()
