"""The recipes end to end on CPU: egs/mini/run.sh on a few demo sentences, egs/vctk/run.sh on a tiny fake
VCTK 0.92 tree with a tiny model (stage 0, tools/setup.sh, is not run)."""

from __future__ import annotations

import ctypes.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vqaudio.data.synthetic import toy_utterance
from vqaudio.pretrained import default_model_path

REPO = Path(__file__).resolve().parents[1]
STAGES = ["setup", "corpus", "shipped", "train", "evaluate", "convert", "analyse", "report"]


@pytest.mark.skipif(
    shutil.which("flite") is None or ctypes.util.find_library("espeak-ng") is None,
    reason="flite or espeak-ng is not installed",
)
def test_mini_recipe_stages_run_and_skip_when_done(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    env = dict(subprocess_env, VQAUDIO=f"{sys.executable} -m vqaudio", PYTHON=sys.executable)
    data, exp = tmp_path / "data", tmp_path / "exp"
    cmd = [
        "bash",
        str(REPO / "egs" / "mini" / "run.sh"),
        "--stage",
        "1",
        "--sentences",
        "30",
        "--minutes",
        "0.02",
        "--conv-sentences",
        "1",
        "--per-speaker",
        "1",
        "--threads",
        "1",
        "--data",
        str(data),
        "--exp",
        str(exp),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (data / "manifest.tsv").is_file()
    finished = json.loads((exp / "train" / "finished.json").read_text())
    assert finished["reason"] == "time_budget" and finished["step"] < finished["max_steps"] == 6000
    # every stage says how long it took; a budget that ends training early is said, in the log and report
    assert all(f"stage {n} ({name}) took " in proc.stderr for n, name in enumerate(STAGES) if n >= 1)
    assert "wall time per stage:" in proc.stderr and "  total: " in proc.stderr
    assert f"budget ended training at step {finished['step']} of the recipe's 6000" in proc.stderr
    assert f"training: {finished['step']} steps at " in proc.stderr
    scores = json.loads((exp / "eval.json").read_text())
    # 1 test sentence of each of 8 voices: the 4 trained on, and 4 held out
    assert scores["utterances"] == 8 and scores["voices"] == {"seen": 4, "heldout": 4}
    assert [(s["level"], s["voices"]) for s in scores["levels"]][:6] == [
        (lv, g) for lv in range(3) for g in ("seen", "heldout")
    ]
    manifest = (data / "manifest.tsv").read_text().splitlines()
    heldout = {line.split("\t")[1] for line in manifest[1:] if line.endswith("\theldout")}
    assert heldout == {"awb-v3", "slt-v5", "en-us+m7", "en-gb+f4"}
    assert (exp / "analysis" / "metrics.json").is_file()
    report = (exp / "report.md").read_text()
    assert f"ended training at step {finished['step']} of the recipe's 6000" in report
    assert "Codes vs phones" in report
    assert "| codec | voices | bitrate" in report and report.count("\n| ") >= 5
    if shutil.which("c2enc") and shutil.which("opusenc"):  # the classical baselines run on the same files
        assert "Codec2 2400" in report and "Opus 6 kbit/s" in report
    # stage 5: scores of 1 test sentence x 12 pairs of seen voices, one sentence of each in every voice
    conv = json.loads((exp / "convert.json").read_text())
    assert conv["conversions"] == 12 and len({p["sentence"] for p in conv["pairs"]}) == 1
    voices = ["awb", "kal16", "rms", "slt"]
    assert sorted(p.stem for p in (exp / "convert" / "originals").iterdir()) == voices
    assert all((exp / "convert" / f"to_{t}" / f"{s}.wav").is_file() for t in voices for s in voices)
    assert "Voice conversion (`vqaudio eval-convert`): 12 conversions of 1 test sentence(s)" in report
    assert "| closer to target than to source |" in report and "[wav](convert/to_slt/awb.wav)" in report
    # stage 2: the shipped model, when this install has one, on a voice neither model heard
    shipped = exp / "shipped"
    if default_model_path() is None:
        assert "ships no model" in proc.stderr and "## The shipped model" not in report
    else:
        for name in (
            "codec/original.vqa",
            "codec/decoded.wav",
            "convert/as_kal16.wav",
            "convert/as_en-us+m7.wav",
        ):
            assert (shipped / name).is_file(), name
        ev = json.loads((shipped / "eval.json").read_text())
        assert ev["voices"] == {"seen": 4, "heldout": 4}
        sc = json.loads((shipped / "convert.json").read_text())
        assert set(sc["groups"]) == {"seen->heldout"} and sc["conversions"] == 4 * 4 * 1
        assert (shipped / "analysis" / "metrics.json").is_file()
        assert report.index("## The shipped model") < report.index("## The model trained here")
    # a re-run skips the finished training and the stages whose output is newer than it
    again = subprocess.run(
        cmd[:3] + ["2", "--stop-stage", "6"] + cmd[4:], env=env, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0 and "already finished" in again.stderr
    assert again.stderr.count("is up to date; skipping") == 3 + (default_model_path() is not None)
    bad = subprocess.run(
        ["bash", str(REPO / "egs" / "mini" / "run.sh"), "--bogus"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "unknown option" in bad.stderr


# ----------------------------------------------------------------------------------------------- VCTK

SHARED = (  # read by every speaker, as VCTK's rainbow passage and elicitation paragraph are
    "Please call Stella.",
    "Ask her to bring these things with her from the store.",
    "When the sunlight strikes raindrops in the air, they act as a prism.",
)
SPEAKERS = (("p225", "F"), ("p226", "M"), ("p227", "M"))
TINY_LEVEL = "codebook_size: 64, code_dim: 8, channels: 4, max_channels: 16, bottleneck_blocks: 2"
TINY_LEVELS = (
    f"[{{strides: [4, 5], {TINY_LEVEL}}}, {{strides: [4, 4, 5], {TINY_LEVEL}}}]"  # recipes/tiny.yaml
)
TINY_SETS = {
    "model.levels": TINY_LEVELS,
    "model.speaker_dim": 8,
    "model.quantizer.kmeans_iters": 3,
    "loss.fft_sizes": "[256, 512]",
    "data.segment_seconds": 0.25,
    "data.batch_size": 2,
    "data.valid_max_seconds": 0.5,
    "data.num_workers": 0,
    "data.preload": "true",
    "train.max_steps": 3,
    "train.warmup_steps": 1,
    "train.log_every": 1,
    "train.eval_every": 1000,
    "train.save_every": 1000,
}


def textgrid(seconds: float, phones: list[str]) -> str:
    """A Praat TextGrid (long text form) with one 'phones' tier of equal intervals over ``seconds``."""
    step = seconds / len(phones)
    items = "".join(
        f"        intervals [{i + 1}]:\n            xmin = {i * step}\n            xmax = {(i + 1) * step}\n"
        f'            text = "{p}"\n'
        for i, p in enumerate(phones)
    )
    return (
        'File type = "ooTextFile"\nObject class = "TextGrid"\n\n'
        f"xmin = 0\nxmax = {seconds}\ntiers? <exists>\nsize = 1\nitem []:\n    item [1]:\n"
        '        class = "IntervalTier"\n        name = "phones"\n'
        f"        xmin = 0\n        xmax = {seconds}\n        intervals: size = {len(phones)}\n{items}"
    )


def make_fake_vctk(root: Path, own: int = 3, sample_rate: int = 48000) -> tuple[Path, Path]:
    """``root/VCTK-Corpus-0.92`` (3 speakers x (3 shared + ``own`` sentences), mic1 and mic2 flac, txt/,
    speaker-info.txt) and ``root/mfa`` (TextGrids of the shared sentences, MFA's ``<spk>/<utt>`` names)."""
    vctk, mfa = root / "VCTK-Corpus-0.92", root / "mfa"
    rng = np.random.default_rng(0)
    info = ["ID  AGE  GENDER  ACCENTS  REGION COMMENTS "]
    for s, (spk, gender) in enumerate(SPEAKERS):
        info.append(f"{spk}  23  {gender}    English    Southern  England")
        for folder in (vctk / "wav48_silence_trimmed" / spk, vctk / "txt" / spk, mfa / spk):
            folder.mkdir(parents=True)
        texts = [*SHARED, *(f"Sentence number {k} of {spk}." for k in range(own))]
        for k, text in enumerate(texts, 1):
            utt = f"{spk}_{k:03d}"
            wav = toy_utterance(rng, sample_rate, 0.8, 90.0 + 70 * s, 1.0 + 0.12 * s)
            for mic in ("mic1", "mic2"):
                sf.write(vctk / "wav48_silence_trimmed" / spk / f"{utt}_{mic}.flac", wav, sample_rate)
            (vctk / "txt" / spk / f"{utt}.txt").write_text(text + "\n")
            if k <= len(SHARED):
                (mfa / spk / f"{utt}.TextGrid").write_text(
                    textgrid(0.75, ["sil", "AH", "S", "T", "IY", "sil"])
                )
    (vctk / "speaker-info.txt").write_text("\n".join(info) + "\n")
    return vctk, mfa


def test_vctk_recipe_on_a_fake_corpus(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    vctk, mfa = make_fake_vctk(tmp_path)
    env = dict(subprocess_env, VQAUDIO=f"{sys.executable} -m vqaudio", PYTHON=sys.executable)
    data, exp = tmp_path / "data", tmp_path / "exp"
    base = ["bash", str(REPO / "egs" / "vctk" / "run.sh"), "--data", str(data), "--exp", str(exp)]
    sets = [arg for k, v in TINY_SETS.items() for arg in ("--set", f"{k}={v}")]
    cmd = [*base, "--stage", "1", "--vctk", str(vctk), "--textgrids", str(mfa), "--test-sentences", "2"]
    cmd += ["--device", "cpu", "--threads", "1", *sets]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    # stage 1: two shared sentences held out for every speaker, linked under a name they share
    rows = [line.split("\t") for line in (data / "manifest.tsv").read_text().splitlines()[1:]]
    test = sorted(r[0] for r in rows if r[3] == "test")
    assert test == [f"wavs/{s}/shared_{n}.flac" for s, _ in SPEAKERS for n in ("001", "002")]
    assert all((data / p).resolve().name.endswith("_mic1.flac") for p in test)
    assert sorted(r[3] for r in rows).count("valid") == 6 and len(rows) == 18
    assert not any("Please call Stella" in r[2] for r in rows if r[3] != "test")
    assert (data / "voices.txt").read_text().split() == ["p225", "p226", "p227"]
    linked = data / "labels" / "p226" / "shared_002.TextGrid"
    assert linked.resolve() == (mfa / "p226" / "p226_002.TextGrid").resolve()
    # stages 2-6
    assert json.loads((exp / "train" / "finished.json").read_text())["step"] == 3
    # speaker-info.txt next to the manifest: the checkpoint keeps gender/accent for `vqaudio speakers`
    listed = subprocess.run(
        [sys.executable, "-m", "vqaudio", "speakers", "--model", str(exp / "train")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0 and "p226" in listed.stdout and "England" in listed.stdout
    assert json.loads((exp / "eval.json").read_text())["utterances"] == 6
    conv = json.loads((exp / "convert.json").read_text())
    assert conv["conversions"] == 12 and conv["phone_accuracy_source"] is not None
    assert (exp / "convert" / "originals" / "p225.flac").is_file()
    assert (exp / "convert" / "to_p227" / "p225.wav").is_file()
    assert json.loads((exp / "analysis" / "metrics.json").read_text())["utterances"] == 6
    report = (exp / "report.md").read_text()
    assert report.startswith("# vqaudio on VCTK 0.92")
    for section in (
        "| codec | bitrate",
        "Voice conversion",
        "12 conversions of 2 test sentence(s)",
        "Codes vs phones",
    ):
        assert section in report
    # re-run without TextGrids: finished stages are skipped, the analysis says why it does not run
    again = subprocess.run([*base, "--stage", "2"], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already finished" in again.stderr and again.stderr.count("is up to date; skipping") == 2
    assert "stage 5: skipped: no phone labels (give --textgrids DIR" in again.stderr


def test_vctk_recipe_bad_input(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    script = ["bash", str(REPO / "egs" / "vctk" / "run.sh"), "--data", str(tmp_path / "d"), "--stage", "1"]

    def run(*args: str) -> tuple[int, list[str]]:
        env = dict(subprocess_env, PYTHON=sys.executable)
        done = subprocess.run([*script, *args], env=env, capture_output=True, text=True, timeout=60)
        return done.returncode, [line for line in done.stderr.splitlines() if line.strip()]

    code, lines = run()
    assert code == 2 and lines == [
        "error: --vctk DIR is required: the VCTK-Corpus-0.92 folder (with wav48_silence_trimmed/ and txt/)"
    ]
    code, lines = run("--vctk", str(tmp_path / "missing"))
    assert code == 2 and lines == [f"error: --vctk {tmp_path / 'missing'}: no such folder"]
    code, lines = run("--vctk", str(tmp_path), "--stop-stage", "1")  # a folder, but not VCTK
    assert code == 2 and lines[-1].startswith("error: ") and "not a VCTK folder" in lines[-1]
    assert not (tmp_path / "d" / "manifest.tsv").exists()
