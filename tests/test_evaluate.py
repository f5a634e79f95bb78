"""Reconstruction metrics: SI-SDR on known signals, per-level scores of a tiny model."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vqaudio.data import scan_folder
from vqaudio.eval.reconstruction import evaluate_reconstruction, si_sdr
from vqaudio.models import build_model


def test_si_sdr_known_values() -> None:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(16000)
    ref -= ref.mean()
    noise = rng.standard_normal(16000)
    noise -= noise.mean()
    noise -= ref * np.dot(noise, ref) / np.dot(ref, ref)  # orthogonal to the reference
    noise *= np.linalg.norm(ref) / np.linalg.norm(noise) / math.sqrt(10)  # 10 dB below it
    assert abs(si_sdr(ref + noise, ref) - 10.0) < 1e-6
    assert abs(si_sdr(0.3 * ref + 0.3 * noise, ref) - 10.0) < 1e-6  # scale-invariant
    assert si_sdr(ref, ref) > 100


def test_evaluate_reconstruction_scores_every_level(tiny_model_config, toy_corpus) -> None:
    torch.manual_seed(0)
    utts = scan_folder(toy_corpus)[:3]
    model = build_model(tiny_model_config(), sorted({u.speaker for u in utts})).eval()
    scores = evaluate_reconstruction(model, utts)
    assert [s.level for s in scores] == [0, 1]
    for s in scores:
        assert s.utterances == 3
        assert s.bitrate == model.config.bitrate(s.level)
        assert math.isfinite(s.mel_distance) and s.mel_distance > 0
        assert math.isfinite(s.si_sdr)
        assert s.pesq is None or 1.0 <= s.pesq <= 4.7
        assert s.stoi is None or -1.0 <= s.stoi <= 1.0


def test_voice_kinds_and_first_per_speaker() -> None:
    from vqaudio.data import Utterance
    from vqaudio.eval.reconstruction import first_per_speaker, voice_kinds

    def utt(spk: str, i: int, heldout: bool = False) -> Utterance:
        return Utterance(Path(f"{spk}/{i}.wav"), spk, f"{spk}/{i}", None, "test", heldout)

    utts = [utt("a", 0), utt("b", 0, heldout=True), utt("c", 0), utt("a", 1)]
    assert voice_kinds(utts) == ["seen", "heldout", "seen", "seen"]  # the manifest's column
    assert voice_kinds(utts, ["a", "b"]) == ["seen", "heldout", "heldout", "seen"]  # c: not in the model
    assert voice_kinds([utts[0], utts[3]], ["a"]) == ["all", "all"]  # one kind: nothing to split
    assert voice_kinds([utts[1]]) == ["all"]
    assert [u.utt_id for u in first_per_speaker(utts, 1)] == ["a/0", "b/0", "c/0"]
    assert first_per_speaker(utts, 2) == utts


def test_seen_and_heldout_voices_are_scored_apart(tiny_model_config, toy_corpus) -> None:
    from vqaudio.eval.reconstruction import evaluate_baselines

    torch.manual_seed(0)
    utts = sorted(scan_folder(toy_corpus), key=lambda u: u.utt_id)
    spk0, spk2 = ([u for u in utts if u.speaker == s] for s in ("spk0", "spk2"))
    utts = spk0[:1] + spk2[:2]
    model = build_model(tiny_model_config(), ["spk0", "spk1"]).eval()  # spk2 was never trained on
    kinds = ["seen" if u.speaker == "spk0" else "heldout" for u in utts]
    scores = evaluate_reconstruction(model, utts)
    assert [(s.level, s.voices) for s in scores] == [(0, "seen"), (0, "heldout"), (1, "seen"), (1, "heldout")]
    for s in scores:
        assert s.utterances == kinds.count(s.voices)
    # each group's row is what evaluating that group alone gives
    seen_only = evaluate_reconstruction(model, [u for u, k in zip(utts, kinds, strict=True) if k == "seen"])
    assert seen_only[0].voices == "all"
    assert seen_only[0].mel_distance == scores[0].mel_distance and seen_only[1].si_sdr == scores[2].si_sdr

    class Halve:  # a stand-in baseline: half the amplitude, 1 bit per sample
        name = "halve"

        def run(self, ref, sr):  # type: ignore[no-untyped-def]
            return 0.5 * ref, float(len(ref))

    rows = evaluate_baselines(utts, 16000, [Halve()], kinds=kinds)  # type: ignore[list-item]
    assert [(r.name, r.voices, r.utterances) for r in rows] == [
        ("halve", "seen", kinds.count("seen")),
        ("halve", "heldout", kinds.count("heldout")),
    ]
    assert all(r.si_sdr > 100 for r in rows)  # a scaled copy: SI-SDR is scale-invariant
    assert all(r.bitrate == pytest.approx(16000) for r in rows)


def test_cli_evaluate_splits_a_manifest_with_heldout_voices(
    tiny_model_config, toy_corpus, tmp_path: Path
) -> None:
    import json

    from typer.testing import CliRunner

    from vqaudio.checkpoint import save_checkpoint
    from vqaudio.cli import app
    from vqaudio.config import RunConfig

    torch.manual_seed(0)
    cfg = tiny_model_config()
    model = build_model(cfg, ["spk0", "spk1", "spk2"]).eval()
    ckpt = tmp_path / "m.safetensors"
    save_checkpoint(ckpt, model, RunConfig(model=cfg))
    lines = ["# path\tspeaker\ttext\tsplit\tvoices"]
    for u in sorted(scan_folder(toy_corpus), key=lambda u: u.utt_id):
        voices = "heldout" if u.speaker == "spk2" else "seen"
        lines.append(f"{u.path}\t{u.speaker}\t\ttest\t{voices}")
    manifest = tmp_path / "manifest.tsv"
    manifest.write_text("\n".join(lines) + "\n")
    out = tmp_path / "eval.json"
    args = [
        "evaluate",
        "--model",
        str(ckpt),
        "--data",
        str(manifest),
        "--per-speaker",
        "2",
        "--json",
        str(out),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    ev = json.loads(out.read_text())
    assert ev["version"] == 2 and ev["utterances"] == 6
    assert ev["voices"] == {"seen": 4, "heldout": 2}
    assert [(s["level"], s["voices"], s["utterances"]) for s in ev["levels"]] == [
        (0, "seen", 4),
        (0, "heldout", 2),
        (1, "seen", 4),
        (1, "heldout", 2),
    ]
    assert "4 seen, 2 heldout voices" in result.stdout and "heldout" in result.stdout
