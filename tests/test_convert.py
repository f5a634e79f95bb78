"""vqaudio convert / speakers: lengths, rates, unknown speakers, speaker facts from the corpus."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

import vqaudio
from vqaudio.checkpoint import save_checkpoint
from vqaudio.cli import app
from vqaudio.config import RunConfig
from vqaudio.convert import conversion_level, convert

runner = CliRunner()


@pytest.fixture
def ckpt(tiny_ckpt: Path) -> Path:
    """The shared tiny checkpoint (speakers ann, bob; facts about ann): read only."""
    return tiny_ckpt


@pytest.mark.parametrize(("sr", "length"), [(16000, 1), (16000, 12345), (44100, 30000), (8000, 4001)])
def test_converted_audio_keeps_rate_and_length(speech, ckpt: Path, sr: int, length: int) -> None:
    model = vqaudio.load_model(ckpt)
    x = np.resize(speech(1.0, sr=sr), length) * 2.0
    y = convert(model, x, sr, "bob")
    assert y.shape == (length,) and np.abs(y).max() <= 1.0
    other = convert(model, x, sr, "ann")
    assert length < 100 or not np.allclose(y, other)


def test_conversion_level_defaults_to_the_configured_one(ckpt: Path) -> None:
    model = vqaudio.load_model(ckpt)
    assert conversion_level(model) == model.num_levels - 1  # conversion_level = -1: the tightest level


def test_cli_convert_and_speakers(speech, ckpt: Path, tmp_path: Path) -> None:
    wav = tmp_path / "in.wav"
    sf.write(wav, np.stack([speech(0.8), speech(0.8, seed=1)], axis=1), 22050)  # stereo, another rate
    out = tmp_path / "out.wav"
    result = runner.invoke(
        app, ["convert", str(wav), "--speaker", "bob", "-o", str(out), "--model", str(ckpt)]
    )
    assert result.exit_code == 0, result.output
    assert sf.info(out).samplerate == 22050 and sf.info(out).frames == sf.info(wav).frames
    listing = runner.invoke(app, ["speakers", "--model", str(ckpt)])
    assert listing.exit_code == 0
    assert listing.stdout.splitlines() == ["ann\tF\t23\tScottish", "bob"]


def test_cli_convert_user_errors(speech, ckpt: Path, tmp_path: Path) -> None:
    wav = tmp_path / "in.wav"
    sf.write(wav, speech(0.5), 16000)
    out = tmp_path / "out.wav"
    result = runner.invoke(
        app, ["convert", str(wav), "--speaker", "bobb", "-o", str(out), "--model", str(ckpt)]
    )
    assert result.exit_code == 2 and "did you mean bob" in result.stderr and not out.exists()
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    result = runner.invoke(
        app, ["convert", str(empty), "--speaker", "bob", "-o", str(out), "--model", str(ckpt)]
    )
    assert result.exit_code == 2 and not out.exists()
    result = runner.invoke(
        app, ["convert", str(wav), "--speaker", "bob", "-o", str(tmp_path / "o.mp3"), "--model", str(ckpt)]
    )
    assert result.exit_code == 2 and "unsupported output format" in result.stderr
    out.write_bytes(b"keep")
    result = runner.invoke(
        app, ["convert", str(wav), "--speaker", "bob", "-o", str(out), "--model", str(ckpt)]
    )
    assert result.exit_code == 2 and out.read_bytes() == b"keep"


# ------------------------------------------------------------------------- speaker encoder, enrol


@pytest.fixture(scope="module")
def ckpt_with_encoder(tiny_model_config, speech, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A tiny model with a speaker encoder, alone in its folder; tests that enrol voices copy it first."""
    import dataclasses

    import torch

    cfg = dataclasses.replace(tiny_model_config(), speaker_encoder=True)
    torch.manual_seed(0)
    model = vqaudio.build_model(cfg, ["ann", "bob"])
    model.train()
    x = torch.from_numpy(np.stack([speech(0.5, s) for s in range(4)]))[:, None]
    out = model(x, torch.tensor([0, 1, 0, 1]))
    assert out.speaker_loss is not None and out.speaker_loss.item() > 0
    model.eval()
    path = tmp_path_factory.mktemp("enc") / "tiny_enc.safetensors"
    save_checkpoint(path, model, RunConfig(model=cfg))
    before = path.read_bytes()
    yield path
    assert [p.name for p in path.parent.iterdir()] == [path.name], "a test wrote beside ckpt_with_encoder"
    assert path.read_bytes() == before, "a test changed ckpt_with_encoder"


def test_speaker_encoder_learns_only_from_its_regression_loss(tiny_model_config) -> None:
    import dataclasses

    import torch

    cfg = dataclasses.replace(tiny_model_config(), speaker_encoder=True)
    model = vqaudio.build_model(cfg, ["ann", "bob"])
    model.train()
    out = model(torch.randn(2, 1, 2000) * 0.1, torch.tensor([0, 1]))
    out.speaker_loss.backward()
    assert all(p.grad is not None for p in model.speaker_encoder.parameters() if p.requires_grad)
    assert model.speaker_embedding.weight.grad is None  # the table is the target, not moved by it


def test_enroll_and_convert_with_references(speech, ckpt_with_encoder: Path, tmp_path: Path) -> None:
    ckpt_with_encoder = Path(shutil.copy(ckpt_with_encoder, tmp_path))  # enrolling writes beside it
    ref = tmp_path / "ref.wav"
    sf.write(ref, np.stack([speech(1.5, seed=3, sr=44100)] * 2, axis=1), 44100)  # stereo, other rate
    before = ckpt_with_encoder.read_bytes()
    result = runner.invoke(app, ["enroll", str(ref), "--name", "carol", "--model", str(ckpt_with_encoder)])
    assert result.exit_code == 0, result.output
    assert ckpt_with_encoder.read_bytes() == before  # never modified in place
    sidecar = ckpt_with_encoder.with_suffix(".voices.json")
    assert "carol" in sidecar.read_text()
    listing = runner.invoke(app, ["speakers", "--model", str(ckpt_with_encoder)])
    assert listing.stdout.splitlines()[-1] == "carol\tenrolled"
    src = tmp_path / "src.wav"
    sf.write(src, speech(0.7), 16000)
    for args in (["--speaker", "carol"], ["--reference", str(ref), "--reference", str(ref)]):
        out = tmp_path / f"out_{args[0][2:]}.wav"
        result = runner.invoke(
            app, ["convert", str(src), "-o", str(out), "--model", str(ckpt_with_encoder), *args]
        )
        assert result.exit_code == 0, result.output
        assert sf.info(out).frames == sf.info(src).frames
    again = runner.invoke(app, ["enroll", str(ref), "--name", "ann", "--model", str(ckpt_with_encoder)])
    assert again.exit_code == 2 and "already a training speaker" in again.stderr


def test_reference_user_errors(speech, ckpt_with_encoder: Path, ckpt: Path, tmp_path: Path) -> None:
    src = tmp_path / "src.wav"
    sf.write(src, speech(0.5), 16000)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 16000)
    ref = tmp_path / "ref.wav"
    sf.write(ref, speech(1.0), 16000)
    out = tmp_path / "out.wav"
    cases = [
        (["--reference", str(empty)], ckpt_with_encoder, "no samples"),
        (["--speaker", "bob", "--reference", str(ref)], ckpt_with_encoder, "not both"),
        ([], ckpt_with_encoder, "not both"),
        (["--reference", str(ref)], ckpt, "no speaker encoder"),
    ]
    for args, model, message in cases:
        result = runner.invoke(app, ["convert", str(src), "-o", str(out), "--model", str(model), *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr.lower() or message in result.stderr, (message, result.stderr)
        assert not out.exists()


# ------------------------------------------------------------------------------- eval-convert


def test_mcd_is_zero_for_identical_and_small_for_time_stretched(speech) -> None:
    from vqaudio.eval.conversion import mel_cepstral_distortion

    a = speech(1.0, seed=1)
    b = speech(1.0, seed=2)
    stretched = np.interp(np.linspace(0, len(a) - 1, int(len(a) * 1.2)), np.arange(len(a)), a)
    assert mel_cepstral_distortion(a, a, 16000) == pytest.approx(0.0, abs=1e-6)
    assert mel_cepstral_distortion(a, stretched.astype(np.float32), 16000) < mel_cepstral_distortion(
        a, b, 16000
    )


def test_eval_convert_on_a_parallel_corpus(
    ckpt_with_encoder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from vqaudio.eval import conversion

    # a stand-in speaker embedding (Resemblyzer is optional): level and brightness of the audio
    def fake_embedder():  # type: ignore[no-untyped-def]
        def embed(wav: np.ndarray, sr: int) -> np.ndarray:
            return np.array([wav.std() + 1e-3, np.abs(np.diff(wav)).mean() + 1e-3, 0.01])

        return embed

    monkeypatch.setattr(conversion, "_speaker_embedder", fake_embedder)

    rows = ["# path\tspeaker\ttext\tsplit\tvoices"]
    for spk, f0 in (("ann", 110.0), ("bob", 200.0), ("cat", 150.0)):  # cat: never trained on
        for i in range(4):
            wav = tmp_path / spk / f"s{i}.wav"
            wav.parent.mkdir(exist_ok=True)
            rng = np.random.default_rng(i)
            from vqaudio.data.synthetic import toy_utterance

            sf.write(wav, toy_utterance(rng, 16000, 0.6, f0, 1.0), 16000)
            lab = tmp_path / "labels" / spk / f"s{i}.tsv"
            lab.parent.mkdir(parents=True, exist_ok=True)
            lab.write_text("0.0\t0.2\tsil\n0.2\t0.4\tAA1\n0.4\t0.6\tS\n")
            voices = "heldout" if spk == "cat" else "seen"
            rows.append(f"{spk}/s{i}.wav\t{spk}\ttext {i}\t{'test' if i < 2 else 'train'}\t{voices}")
    manifest = tmp_path / "manifest.tsv"
    manifest.write_text("\n".join(rows) + "\n")
    out = tmp_path / "scores.json"
    result = runner.invoke(
        app,
        [
            "eval-convert",
            "--model",
            str(ckpt_with_encoder),
            "--data",
            str(manifest),
            "--sentences",
            "2",
            "--json",
            str(out),
            "--labels",
            str(tmp_path / "labels"),
        ],
    )
    assert result.exit_code == 0, result.output
    scores = json.loads(out.read_text())
    assert scores["conversions"] == 4  # 2 sentences x (ann->bob, bob->ann): the model's voices by default
    assert scores["version"] == 2 and list(scores["groups"]) == ["seen->seen"]
    assert scores["groups"]["seen->seen"]["conversions"] == 4
    assert scores["mcd_converted"] > 0 and scores["mcd_source_baseline"] > 0
    assert 0.0 <= scores["phone_accuracy_converted"] <= 1.0
    assert 0.0 <= scores["phone_accuracy_source"] <= 1.0
    assert 0.0 <= scores["closer_to_target"] <= 1.0
    for key in ("similarity_to_target", "similarity_to_source", "unconverted_similarity_to_target"):
        assert -1.0 <= scores[key] <= 1.0
    row = scores["pairs"][0]
    assert row["sim_target"] != row["sim_target_unconverted"]  # the output is embedded, not the source
    result = runner.invoke(
        app,
        [
            "eval-convert",
            "--model",
            str(ckpt_with_encoder),
            "--data",
            str(manifest),
            "--sentences",
            "2",
            "--reference-voice",
            "bob,cat",
            "--reference-seconds",
            "1",
            "--json",
            str(out),
            "--labels",
            str(tmp_path / "labels"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "enrolled bob" in result.stderr and "enrolled cat" in result.stderr
    scores = json.loads(out.read_text())
    # ann is the only source left; bob (a training voice) and cat (held out) are the enrolled targets
    assert sorted({(p["source"], p["target"], p["group"]) for p in scores["pairs"]}) == [
        ("ann", "bob", "seen->seen"),
        ("ann", "cat", "seen->heldout"),
    ]
    groups = scores["groups"]
    assert [groups[g]["conversions"] for g in ("seen->heldout", "seen->seen")] == [2, 2]
    for g in groups.values():
        assert g["content_kept"] == pytest.approx(g["phone_accuracy_converted"] / g["phone_accuracy_source"])
    cat = [p for p in scores["pairs"] if p["target"] == "cat"]
    assert groups["seen->heldout"]["mcd_converted"] == pytest.approx(np.mean([p["mcd"] for p in cat]))
    assert "seen->heldout" in result.stdout, result.stdout
    bad = runner.invoke(
        app,
        ["eval-convert", "--model", str(ckpt_with_encoder), "--data", str(manifest), "--voices", "ann,zed"],
    )
    assert bad.exit_code == 2 and "zed" in bad.stderr


def test_convert_returns_float_audio_that_is_its_codes_decoded(speech, ckpt: Path) -> None:
    """No WAV on the way: the output is not 16-bit quantised, and it is the level's codes decoded."""
    import torch

    from vqaudio.codec.compress import decode_audio, encode_audio

    model = vqaudio.load_model(ckpt)
    x = speech(1.3, seed=3) * 0.5
    lv = conversion_level(model)
    y = convert(model, x, 16000, "bob")
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.any(y * 32768 != np.round(y * 32768))
    codes = encode_audio(model, x, 16000, level=lv)
    np.testing.assert_array_equal(y, decode_audio(model, codes, lv, "bob", num_samples=len(x)))
    whole = model.decode(model.encode(torch.from_numpy(x), level=lv), level=lv, speaker="bob")[0, 0]
    np.testing.assert_allclose(y, whole.clamp(-1, 1).numpy(), atol=1e-5)
