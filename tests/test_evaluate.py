"""Reconstruction metrics: SI-SDR on known signals, per-level scores recomputed independently, and the
scores of known reconstructions (the input itself, the input plus noise at a known SNR)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vqaudio.audio import read_audio
from vqaudio.data import scan_folder
from vqaudio.eval.reconstruction import evaluate_reconstruction, si_sdr
from vqaudio.models import build_model
from vqaudio.spectral import mel_distance

try:
    from pesq import pesq as pesq_wb
except ImportError:  # optional (the metrics extra): the scores then have no PESQ
    pesq_wb = None
try:
    from pystoi import stoi
except ImportError:
    stoi = None


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


def _si_sdr_db(estimate: np.ndarray, reference: np.ndarray) -> float:
    """SI-SDR written out again (Le Roux et al., 2019): the part of ``estimate`` along ``reference``
    against the rest, both zero-mean."""
    e, r = estimate - estimate.mean(), reference - reference.mean()
    target = r * (e @ r) / (r @ r)
    return 10 * math.log10((target @ target) / ((e - target) @ (e - target)))


def test_evaluate_reconstruction_scores_are_each_levels_own(tiny_model_config, toy_corpus) -> None:
    """Every row holds the means of its level's round trips (decoded with each utterance's speaker),
    recomputed here: SI-SDR by hand, PESQ and STOI with their packages when installed."""
    torch.manual_seed(0)
    utts = scan_folder(toy_corpus)[:3]
    model = build_model(tiny_model_config(), sorted({u.speaker for u in utts})).eval()
    scores = evaluate_reconstruction(model, utts)
    assert [s.level for s in scores] == [0, 1] and [s.voices for s in scores] == ["all", "all"]
    for s in scores:
        pairs = []  # (decoded, reference)
        for u in utts:
            ref = read_audio(u.path, model.sample_rate)
            with torch.no_grad():
                codes = model.encode(torch.from_numpy(ref), level=s.level)
                y = model.decode(codes, level=s.level, speaker=u.speaker).clamp(-1, 1)[0, 0].numpy()
            pairs.append((y, ref))
        assert s.utterances == 3 and s.bitrate == model.config.bitrate(s.level)
        assert s.si_sdr == pytest.approx(np.mean([_si_sdr_db(y, r) for y, r in pairs]), abs=1e-3)
        mels = [mel_distance(torch.from_numpy(y)[None], torch.from_numpy(r)[None], 16000) for y, r in pairs]
        assert s.mel_distance == pytest.approx(float(torch.cat(mels).mean()), rel=1e-5) and s.mel_distance > 0
        if pesq_wb is None:
            assert s.pesq is None
        else:
            assert s.pesq == pytest.approx(np.mean([pesq_wb(16000, r, y, "wb") for y, r in pairs]))
        if stoi is None:
            assert s.stoi is None
        else:
            assert s.stoi == pytest.approx(np.mean([stoi(r, y, 16000) for y, r in pairs]), abs=1e-6)
    # an untrained model is far from its input: nothing like the identity's scores below
    assert all(s.si_sdr < 10 for s in scores)


def _degrading(model: torch.nn.Module, snr_db: list[float | None]) -> None:
    """Make ``model`` (this test's own) "decode" level ``i`` to its input plus white noise at
    ``snr_db[i]`` dB (``None``: the input itself), so the scores it should get are known."""
    rng = np.random.default_rng(0)

    def encode(x: torch.Tensor, level: int) -> torch.Tensor:
        return x

    def decode(x: torch.Tensor, level: int, speaker: object = None) -> torch.Tensor:
        wav = x.numpy().astype(np.float64)
        snr = snr_db[level]
        if snr is not None:
            noise = rng.standard_normal(wav.size)
            wav = wav + noise * np.sqrt((wav @ wav) / (noise @ noise) / 10 ** (snr / 10))
        return torch.from_numpy(wav.astype(np.float32)).reshape(1, 1, -1)

    model.encode = encode  # type: ignore[method-assign]
    model.decode = decode  # type: ignore[method-assign]


def test_a_perfect_level_scores_best_and_noisier_levels_worse(shared_front_config, toy_corpus) -> None:
    """Known reconstructions: level 0 returns the input, level 1 adds noise 20 dB below it, level 2
    noise 5 dB below. The scores must say so: SI-SDR ~ the SNR, every score ordered 0 > 1 > 2."""
    utts = scan_folder(toy_corpus)[:3]
    model = build_model(shared_front_config(), sorted({u.speaker for u in utts})).eval()
    _degrading(model, [None, 20.0, 5.0])
    best, mid, worst = evaluate_reconstruction(model, utts)
    assert [s.level for s in (best, mid, worst)] == [0, 1, 2]
    assert best.si_sdr > 100 and best.mel_distance < 1e-4
    assert mid.si_sdr == pytest.approx(20.0, abs=0.1) and worst.si_sdr == pytest.approx(5.0, abs=0.1)
    assert best.mel_distance < mid.mel_distance < worst.mel_distance
    if best.pesq is not None:
        assert best.pesq > 4.5 and mid.pesq < best.pesq - 1.0 and worst.pesq < mid.pesq - 0.25  # type: ignore[operator]
    if best.stoi is not None:
        assert best.stoi > 0.999 and best.stoi > mid.stoi > worst.stoi  # type: ignore[operator]


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
    assert ev["version"] == 3 and ev["utterances"] == 6
    assert ev["voices"] == {"seen": 4, "heldout": 2}
    assert [(s["level"], s["voices"], s["utterances"]) for s in ev["levels"]] == [
        (0, "seen", 4),
        (0, "heldout", 2),
        (1, "seen", 4),
        (1, "heldout", 2),
    ]
    assert "4 seen, 2 heldout voices" in result.stdout and "heldout" in result.stdout
    # version 3: every row carries its files, and its means are the means over them
    for row in ev["levels"]:
        files = row["per_utterance"]
        assert len(files) == row["utterances"]
        assert {f["speaker"] for f in files} == ({"spk2"} if row["voices"] == "heldout" else {"spk0", "spk1"})
        assert len({(f["speaker"], f["utt_id"]) for f in files}) == len(files)
        assert row["mel_distance"] == pytest.approx(np.mean([f["mel_distance"] for f in files]))
        assert row["si_sdr"] == pytest.approx(np.mean([f["si_sdr"] for f in files]))

    # compare: an evaluation against itself differs by exactly 0 on every file
    cmp_json = tmp_path / "cmp.json"
    result = CliRunner().invoke(app, ["compare", str(out), str(out), "--json", str(cmp_json)])
    assert result.exit_code == 0, result.output
    assert "unclear" in result.stdout
    rows = json.loads(cmp_json.read_text())["rows"]
    assert {(r["level"], r["voices"]) for r in rows} == {
        (0, "seen"),
        (0, "heldout"),
        (1, "seen"),
        (1, "heldout"),
    }
    for r in rows:
        assert r["difference"] == 0 and r["ci95"] == [0, 0] and r["after_better"] == 0.5
        assert r["verdict"] == "unclear"
    result = CliRunner().invoke(app, ["compare", str(out), str(out), "--level", "1", "--metric", "si_sdr"])
    assert result.exit_code == 0, result.output
    assert "mel" not in result.stdout and "SI-SDR" in result.stdout


def _eval_doc(rows: dict[tuple[str, str], dict[tuple[str, str], float | None]], version: int = 3) -> dict:
    """A minimal evaluation JSON: rows keyed (name, voices), files keyed (speaker, utt_id) -> PESQ; the
    other metrics derived from it (mel distance falls as PESQ rises)."""
    levels = []
    for (name, voices), files in rows.items():
        per = [
            {
                "utt_id": utt,
                "speaker": spk,
                "pesq": p,
                "stoi": None,
                "mel_distance": 2.0 - (p or 0.0) / 4,
                "si_sdr": 5.0,
            }
            for (spk, utt), p in files.items()
        ]
        levels.append({"name": name, "level": 0, "voices": voices, "per_utterance": per})
    return {"version": version, "levels": levels}


def test_paired_differences_known_values() -> None:
    from vqaudio.errors import UserError
    from vqaudio.eval.reconstruction import paired_differences

    before_p = {("a", "u1"): 1.0, ("a", "u2"): 1.5, ("b", "u1"): 2.0, ("b", "u3"): 1.2, ("b", "u9"): 3.0}
    gains = {("a", "u1"): 0.2, ("a", "u2"): 0.4, ("b", "u1"): 0.1, ("b", "u3"): 0.3}
    # "b/u1" and "a/u1" share an utt_id: files are matched by speaker and utt_id; "b/u9" only in before
    after_p: dict[tuple[str, str], float | None] = {k: before_p[k] + g for k, g in gains.items()}
    after_p[("c", "u5")] = 9.0  # only in after
    before = _eval_doc({("L0", "seen"): before_p, ("L1", "seen"): {("a", "u1"): 1.0}})  # type: ignore[dict-item]
    after = _eval_doc({("L0", "seen"): after_p, ("L0", "heldout"): {("a", "u1"): 1.0}})
    rows = paired_differences(before, after)
    assert {(r["name"], r["voices"]) for r in rows} == {("L0", "seen")}  # the only row both hold
    by_metric = {r["metric"]: r for r in rows}
    assert set(by_metric) == {"pesq", "mel_distance", "si_sdr"}  # stoi: None everywhere, skipped
    g = np.array(list(gains.values()))
    p = by_metric["pesq"]
    assert p["n"] == 4
    assert p["before"] == pytest.approx(np.mean([1.0, 1.5, 2.0, 1.2]))
    assert p["difference"] == pytest.approx(g.mean())
    half = 1.96 * g.std(ddof=1) / 2
    assert p["ci95_files"] == pytest.approx([g.mean() - half, g.mean() + half])
    # over voices: a's residuals sum to +0.1, b's to -0.1; CR1 factor 2 / 1; t with 1 degree of freedom
    assert p["speakers"] == 2 and p["interval"] == "voices"
    half_voices = 12.7062047 * math.sqrt(2 * (0.1**2 + 0.1**2)) / 4
    assert p["ci95"] == pytest.approx([g.mean() - half_voices, g.mean() + half_voices])
    # better on every file, but two voices cannot show it: the verdict follows the interval over voices
    assert p["after_better"] == 1.0 and p["verdict"] == "unclear"
    m = by_metric["mel_distance"]  # lower is better: it fell on every file
    assert m["difference"] == pytest.approx(-g.mean() / 4)
    assert m["after_better"] == 1.0 and m["ci95"][1] > 0
    s = by_metric["si_sdr"]
    assert s["difference"] == 0 and s["after_better"] == 0.5 and s["verdict"] == "unclear"

    # a worse model, and a mixed one whose interval holds 0; a file without PESQ in one of them is skipped
    worse = _eval_doc({("L0", "seen"): {k: v - 0.5 for k, v in before_p.items()}})
    (w,) = [r for r in paired_differences(before, worse) if r["metric"] == "pesq"]
    assert w["difference"] == pytest.approx(-0.5) and w["after_better"] == 0 and w["verdict"] == "worse"
    assert w["ci95"] == pytest.approx([-0.5, -0.5])  # the same change everywhere: no spread at all
    mixed_p: dict[tuple[str, str], float | None] = {("a", "u1"): 1.5, ("a", "u2"): 1.0, ("b", "u1"): 2.1}
    mixed_p[("b", "u3")] = None
    (x,) = [
        r for r in paired_differences(before, _eval_doc({("L0", "seen"): mixed_p})) if r["metric"] == "pesq"
    ]
    assert x["n"] == 3 and x["after_better"] == pytest.approx(2 / 3) and x["verdict"] == "unclear"

    with pytest.raises(UserError, match="version 2"):
        paired_differences(_eval_doc({("L0", "seen"): before_p}, version=2), after)
    with pytest.raises(UserError, match="share no scored files"):
        paired_differences(before, _eval_doc({("L0", "seen"): {("z", "u1"): 1.0}}))


def test_paired_interval_is_over_voices_not_files() -> None:
    """Eight voices with 10 files each: the change is the same within a voice and differs between voices.
    Counted as 80 independent files the interval would exclude 0; counted by voice it must not."""
    from vqaudio.eval.reconstruction import paired_differences

    gain = [0.30, -0.20, 0.25, -0.15, 0.20, -0.10, 0.05, 0.00]  # mean +0.044, spread over voices 0.19
    before_p = {(f"v{v}", f"u{i}"): 1.0 + 0.1 * i for v in range(8) for i in range(10)}
    after_p = {
        (spk, utt): p + gain[int(spk[1:])] + 0.001 * int(utt[1:]) for (spk, utt), p in before_p.items()
    }
    (r,) = [
        r
        for r in paired_differences(
            _eval_doc({("L0", "heldout"): before_p}), _eval_doc({("L0", "heldout"): after_p})
        )
        if r["metric"] == "pesq"
    ]
    assert r["n"] == 80 and r["speakers"] == 8 and r["interval"] == "voices"
    assert r["ci95_files"][0] > 0  # what a per-file interval would claim
    assert r["ci95"][0] < 0 < r["ci95"][1] and r["verdict"] == "unclear"
    # with one file per voice the interval over voices is the ordinary paired t interval
    one = {k: v for k, v in before_p.items() if k[1] == "u0"}
    (o,) = [
        r
        for r in paired_differences(
            _eval_doc({("L0", "seen"): one}),
            _eval_doc({("L0", "seen"): {k: after_p[k] for k in one}}),
        )
        if r["metric"] == "pesq"
    ]
    d = np.array(gain)
    t_half = 2.3646243 * d.std(ddof=1) / math.sqrt(8)
    assert o["ci95"] == pytest.approx([d.mean() - t_half, d.mean() + t_half])
    # all files of one voice: the interval falls back to files
    single = {("v0", f"u{i}"): 1.0 + 0.1 * i for i in range(5)}
    (f,) = [
        r
        for r in paired_differences(
            _eval_doc({("L0", "seen"): single}),
            _eval_doc({("L0", "seen"): {k: v + 0.1 + 0.01 * i for i, (k, v) in enumerate(single.items())}}),
        )
        if r["metric"] == "pesq"
    ]
    assert f["interval"] == "files" and f["ci95"] == f["ci95_files"] and f["verdict"] == "better"


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "no such file"),
        ("version2", "version 2 has no per-file scores"),
        ("metric", "unknown metric 'pesqq'"),
        ("garbage", "not an evaluation JSON"),
        ("level", "nothing to compare"),
    ],
)
def test_compare_bad_input(tmp_path: Path, case: str, message: str) -> None:
    import json

    from typer.testing import CliRunner

    from vqaudio.cli import app

    good = tmp_path / "good.json"
    good.write_text(json.dumps(_eval_doc({("L0", "seen"): {("a", "u1"): 1.0, ("a", "u2"): 2.0}})))
    other = tmp_path / "other.json"
    args = ["compare", str(good), str(other), "--json", str(tmp_path / "out.json")]
    if case == "version2":
        other.write_text(json.dumps(_eval_doc({("L0", "seen"): {("a", "u1"): 1.0}}, version=2)))
    elif case == "garbage":
        other.write_text("{not json")
    elif case in ("metric", "level"):
        other.write_text(good.read_text())
        args += ["--metric", "pesqq"] if case == "metric" else ["--level", "3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out.json").exists()
