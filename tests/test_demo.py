"""Tests for the demo corpus (vqaudio.data.demo, flite, demo_voices): flite voices and the many-voice mode."""

from __future__ import annotations

import ctypes.util
import os
import shutil
from pathlib import Path

import pytest
import soundfile as sf

from vqaudio.data import demo, scan_manifest, split_utterances
from vqaudio.data.demo import (
    DemoCorpus,
    check_flite,
    make_demo_corpus,
    parse_psdur,
    read_arctic_prompts,
    read_labels,
    split_of,
)
from vqaudio.data.demo_voices import (
    HELDOUT_VOICES,
    MANY_VOICES,
    TRAIN_SENTENCES_PER_VOICE,
    VoicePlan,
    plan_voices,
    voice_family,
    voice_sentences,
)
from vqaudio.data.espeak import EspeakServers, parse_espeak_voice
from vqaudio.data.tts import format_labels
from vqaudio.errors import UserError

needs_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="flite is not installed")

# Captured from `flite -voice awb -psdur -t "hello world" -o x.wav` (flite 2.2); the wav is 0.975 s.
AWB_HELLO_WORLD = "pau:0.254 hh:0.296 ax:0.341 l:0.414 ow:0.538 w:0.634 er:0.683 l:0.817 d:0.877 pau:0.979 \n"

SMALL_VOICES = ("kal16", "awb")  # one diphone voice (labels need clipping) and one clustergen voice
SMALL_SENTENCES = 3


# ------------------------------------------------------------------------------------------- prompts


def test_packaged_prompts() -> None:
    prompts = read_arctic_prompts()
    assert len(prompts) == 593
    assert prompts[0] == ("arctic_a0001", "Author of the danger trail, Philip Steels, etc.")
    assert prompts[-1][0] == "arctic_a0593"
    assert len({utt_id for utt_id, _ in prompts}) == 593
    assert all(text and text == text.strip() and "\\" not in text for _, text in prompts)


def test_prompts_with_escaped_quotes(tmp_path: Path) -> None:
    path = tmp_path / "prompts.data"
    path.write_text('( x_0001 "He said \\"stop\\" twice." )\n\n( x_0002 "A back\\\\slash." )\n')
    assert read_arctic_prompts(path) == [("x_0001", 'He said "stop" twice.'), ("x_0002", "A back\\slash.")]


@pytest.mark.parametrize("content", ['( x_0001 "unterminated )\n', "x_0001 text\n", '( a "x" )\n( a "y" )\n'])
def test_bad_prompt_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "prompts.data"
    path.write_text(content)
    with pytest.raises(UserError):
        read_arctic_prompts(path)


def test_missing_prompt_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cannot read"):
        read_arctic_prompts(tmp_path / "nope.data")


# ------------------------------------------------------------------------------------------- psdur


def test_parse_psdur_real_output() -> None:
    intervals = parse_psdur(AWB_HELLO_WORLD)
    assert [label for _, _, label in intervals] == ["pau", "hh", "ax", "l", "ow", "w", "er", "l", "d", "pau"]
    assert intervals[0] == (0.0, 0.254, "pau")
    assert intervals[-1] == (0.877, 0.979, "pau")
    for (_, end, _), (start, _, _) in zip(intervals[:-1], intervals[1:], strict=True):
        assert start == end  # contiguous


@pytest.mark.parametrize("text", ["pau:0.2 hh:0.1", "pau:0.2 hh", "pau:abc", ":0.3", "pau:nan", "pau:-0.1"])
def test_parse_psdur_rejects_bad_output(text: str) -> None:
    with pytest.raises(ValueError):
        parse_psdur(text)


def test_parse_psdur_empty() -> None:
    assert parse_psdur("\n") == []


# ------------------------------------------------------------------------------------------- label files


def test_read_labels_round_trips_and_keeps_the_labels(tmp_path: Path) -> None:
    path = tmp_path / "u.tsv"
    intervals = [(0.0, 0.254, "pau"), (0.254, 0.296, "hh"), (0.296, 0.341, "AH0")]
    path.write_text(format_labels(intervals))
    assert read_labels(path) == intervals  # as written: no silence mapping, no stress stripping


@pytest.mark.parametrize(
    "text",
    [
        "0.0\t0.5\tpau\n0.4\t0.9\ta\n",  # overlapping
        "0.0\t0.5\tpau\n0.5\t0.5\ta\n",  # empty
        "0.5\t0.9\ta\n0.0\t0.5\tpau\n",  # out of order
        "0.0\t0.5\n",  # no label
        "0.0\tx\tpau\n",  # not a time
        "0.0\t0.5\tpau\n0.5\n",  # cut short
        "0.0\tnan\tpau\n",
    ],
)
def test_read_labels_rejects_what_was_not_written_here(tmp_path: Path, text: str) -> None:
    path = tmp_path / "u.tsv"
    path.write_text(text)
    with pytest.raises(ValueError, match=str(path)):
        read_labels(path)
    with pytest.raises(ValueError, match="cannot read"):
        read_labels(tmp_path / "missing.tsv")


# ------------------------------------------------------------------------------------------- splits


def test_split_of_is_stable_and_proportional() -> None:
    ids = [utt_id for utt_id, _ in read_arctic_prompts()]
    first = [split_of(i) for i in ids]
    assert first == [split_of(i) for i in ids]
    counts = {name: first.count(name) for name in ("train", "valid", "test")}
    assert 0.05 * len(ids) < counts["valid"] < 0.15 * len(ids)
    assert 0.05 * len(ids) < counts["test"] < 0.15 * len(ids)
    assert {split_of(i, 0.0, 0.0) for i in ids} == {"train"}


# ---------------------------------------------------------------------------------------- no flite


def test_missing_flite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(UserError, match=r"flite not found: install it with `sudo apt-get install flite`"):
        check_flite()
    with pytest.raises(UserError, match="flite not found"):
        make_demo_corpus(tmp_path / "corpus", num_sentences=1)
    assert not (tmp_path / "corpus" / "manifest.tsv").exists()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_sentences": 0},
        {"num_sentences": 594},
        {"voices": ()},
        {"voices": ("awb", "awb")},
        {"jobs": 0},
        {"valid_fraction": 0.6, "test_fraction": 0.5},
        {"sample_rate": 0},
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(UserError):
        make_demo_corpus(tmp_path, **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ with flite


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> DemoCorpus:
    calls: list[tuple[int, int]] = []
    corpus = make_demo_corpus(
        tmp_path_factory.mktemp("demo"),
        voices=SMALL_VOICES,
        num_sentences=SMALL_SENTENCES,
        progress=lambda done, total: calls.append((done, total)),
    )
    total = len(SMALL_VOICES) * SMALL_SENTENCES
    assert sorted(calls) == [(i, total) for i in range(1, total + 1)]
    return corpus


@needs_flite
def test_layout(small_corpus: DemoCorpus) -> None:
    root = small_corpus.root
    prompts = read_arctic_prompts()[:SMALL_SENTENCES]
    assert small_corpus.voices == SMALL_VOICES
    assert small_corpus.num_utterances == 6
    for utt_id, text in prompts:
        assert (root / "text" / f"{utt_id}.txt").read_text().strip() == text
        for voice in SMALL_VOICES:
            assert (root / "wavs" / voice / f"{utt_id}.wav").is_file()
            assert (root / "labels" / voice / f"{utt_id}.tsv").is_file()
    assert "flite" in (root / "README.txt").read_text()
    assert "CMU ARCTIC" in (root / "README.txt").read_text()
    assert not list(root.rglob(".*.tmp*"))
    umask = os.umask(0o022)
    os.umask(umask)
    assert (root / "manifest.tsv").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


@needs_flite
def test_audio_and_labels(small_corpus: DemoCorpus) -> None:
    total = 0.0
    for wav in sorted(small_corpus.root.glob("wavs/*/*.wav")):
        info = sf.info(str(wav))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert 1.0 < info.duration < 10.0
        total += info.frames / info.samplerate
        audio, _ = sf.read(str(wav))
        assert abs(audio).max() > 0.05  # not silence
        labels = read_labels(small_corpus.root / "labels" / wav.parent.name / f"{wav.stem}.tsv")
        assert labels[0][0] == 0.0 and labels[0][2] == "pau" and labels[-1][2] == "pau"
        assert abs(labels[-1][1] - info.frames / info.samplerate) < 1e-3  # labels cover the audio
        for (_, end, _), (start, _, _) in zip(labels[:-1], labels[1:], strict=True):
            assert start == pytest.approx(end, abs=1e-6)
        assert all(end > start for start, end, _ in labels)
        assert len([label for _, _, label in labels if label != "pau"]) > 10
    assert total == pytest.approx(small_corpus.duration_s, abs=1e-3)


@needs_flite
def test_manifest_and_splits(small_corpus: DemoCorpus) -> None:
    root = small_corpus.root
    prompts = dict(read_arctic_prompts()[:SMALL_SENTENCES])
    lines = (root / "manifest.tsv").read_text().splitlines()
    assert lines[0].startswith("#")
    rows = [line.split("\t") for line in lines[1:]]
    assert len(rows) == len(SMALL_VOICES) * SMALL_SENTENCES
    split_per_voice: dict[str, dict[str, str]] = {}
    for path, speaker, text, split in rows:
        utt_id = Path(path).stem
        assert (root / path).is_file() and Path(path).parent.name == speaker
        assert text == prompts[utt_id]
        assert split == split_of(utt_id)
        split_per_voice.setdefault(speaker, {})[utt_id] = split
    assert set(split_per_voice) == set(SMALL_VOICES)
    assert split_per_voice["kal16"] == split_per_voice["awb"]  # same sentence, same split, every voice

    from_files = {name: (root / "splits" / f"{name}.txt").read_text().split() for name in demo.SPLITS}
    assert from_files == small_corpus.splits
    all_ids = [i for ids in from_files.values() for i in ids]
    assert sorted(all_ids) == sorted(prompts)  # disjoint and complete


@needs_flite
def test_rerun_is_idempotent_and_repairs(tmp_path: Path) -> None:
    first = make_demo_corpus(tmp_path, voices=("slt",), num_sentences=2, jobs=1)
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    stamps = {p: p.stat().st_mtime_ns for p in files}
    data = {p: p.read_bytes() for p in files}

    second = make_demo_corpus(tmp_path, voices=("slt",), num_sentences=2, jobs=1)
    assert second == first
    assert {p: p.stat().st_mtime_ns for p in files} == stamps  # nothing rewritten

    # A truncated wav and a missing label (as a crash without atomic writes could leave) are regenerated.
    wav = tmp_path / "wavs" / "slt" / "arctic_a0001.wav"
    wav.write_bytes(wav.read_bytes()[:44])
    label = tmp_path / "labels" / "slt" / "arctic_a0002.tsv"
    label.unlink()
    (tmp_path / "wavs" / "slt" / ".arctic_a0001.abc123.tmp.wav").write_bytes(b"half")
    third = make_demo_corpus(tmp_path, voices=("slt",), num_sentences=2, jobs=1)
    assert third == first
    assert wav.read_bytes() == data[wav]  # flite is deterministic
    assert label.read_bytes() == data[label]
    assert not list(tmp_path.rglob(".*.tmp*"))


@needs_flite
def test_resamples_when_flite_rate_differs(tmp_path: Path) -> None:
    # The plain "kal" voice synthesises at 8 kHz: never assume flite's rate.
    corpus = make_demo_corpus(tmp_path, voices=("kal",), num_sentences=1, sample_rate=16000)
    info = sf.info(str(tmp_path / "wavs" / "kal" / "arctic_a0001.wav"))
    assert info.samplerate == 16000
    labels = read_labels(tmp_path / "labels" / "kal" / "arctic_a0001.tsv")
    assert labels[-1][1] == pytest.approx(info.frames / 16000, abs=1e-3)
    assert corpus.duration_s == pytest.approx(info.duration, abs=1e-3)


@needs_flite
def test_unknown_voice(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"no voice nosuchvoice; available voices: .*kal16"):
        make_demo_corpus(tmp_path, voices=("awb", "nosuchvoice"), num_sentences=1)
    assert not list(tmp_path.rglob("*.wav"))


def test_split_variant_names() -> None:
    assert demo.split_variant("awb") == ("awb", None)
    assert demo.split_variant("awb-v2") == ("awb", demo.VOICE_VARIANTS[1])
    assert demo.split_variant("my-voice-v1")[0] == "my-voice"
    # out of the table or not a variant tag: a plain voice name
    assert demo.split_variant(f"awb-v{len(demo.VOICE_VARIANTS) + 1}")[1] is None
    assert demo.split_variant("awb-vx") == ("awb-vx", None)


@needs_flite
def test_variant_voices_shift_pitch_and_spectrum_but_keep_timing(tmp_path: Path) -> None:
    import librosa
    import numpy as np

    corpus = make_demo_corpus(tmp_path, voices=["awb"], num_sentences=1, variants=3, jobs=2)
    assert corpus.voices == ("awb", "awb-v1", "awb-v2", "awb-v3")
    assert "derived from a flite voice" in (tmp_path / "README.txt").read_text()
    utt = "arctic_a0001"
    stats = {}
    for voice in corpus.voices:
        audio, sr = sf.read(tmp_path / "wavs" / voice / f"{utt}.wav", dtype="float32")
        labels = demo.read_labels(tmp_path / "labels" / voice / f"{utt}.tsv")
        assert abs(labels[-1][1] - len(audio) / sr) < 1e-3
        f0, _, _ = librosa.pyin(audio, fmin=60, fmax=400, sr=sr)
        centroid = librosa.feature.spectral_centroid(y=audio, sr=sr).mean()
        stats[voice] = (len(audio) / sr, float(np.nanmedian(f0)), float(centroid))
    base_len, base_f0, base_centroid = stats["awb"]
    for k, (scale, f0) in enumerate(demo.VOICE_VARIANTS[:3], start=1):
        length, pitch, centroid = stats[f"awb-v{k}"]
        assert abs(length - base_len) < 0.05 * base_len  # durations come back after resampling
        assert abs(np.log2(pitch / f0)) < 0.25  # within a quarter octave of the asked mean f0
        assert (centroid > base_centroid) == (scale > 1.0)  # the spectrum moves with the scale


def test_variants_out_of_range(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="variants must be between"):
        make_demo_corpus(tmp_path, voices=["awb"], num_sentences=1, variants=len(demo.VOICE_VARIANTS) + 1)


# ------------------------------------------------------------------------------------- many voices

needs_espeak = pytest.mark.skipif(
    ctypes.util.find_library("espeak-ng") is None, reason="espeak-ng is not installed"
)
MIXED_VOICES = ("awb", "en-us+m3", "en-gb+f2-s160")  # a flite and two espeak-ng voices
MIXED_HELDOUT = ("en-gb+f2-s160",)
MIXED_SENTENCES = 6  # arctic_a0001..6: 4 train, a0002 test, a0005 valid


def test_many_voice_list() -> None:
    # the numbers the CLI help, demo_voices' docstring, README and CHANGELOG state
    assert (len(set(MANY_VOICES)), len(set(HELDOUT_VOICES)), TRAIN_SENTENCES_PER_VOICE) == (68, 8, 60)
    assert len(MANY_VOICES) == 68 and len(HELDOUT_VOICES) == 8
    assert set(HELDOUT_VOICES) <= set(MANY_VOICES)
    assert {voice_family(v) for v in MANY_VOICES} == {"flite", "flite-derived", "espeak"}
    assert len({voice_family(v) for v in HELDOUT_VOICES}) >= 2
    assert len(MANY_VOICES) - len(HELDOUT_VOICES) >= 52  # plenty left to train on
    for name in MANY_VOICES:
        if voice_family(name) == "espeak":
            parse_espeak_voice(name)
    plan = plan_voices(many_voices=True)
    assert plan == VoicePlan(MANY_VOICES, HELDOUT_VOICES, TRAIN_SENTENCES_PER_VOICE)
    assert plan_voices(many_voices=True, sentences_per_voice=3).train_per_voice == 3


def test_heldout_voices_can_say_fewer_training_sentences() -> None:
    from vqaudio.data.demo_voices import voice_sentences

    plan = plan_voices(["awb", "slt", "en-us+m7"], heldout=["en-us+m7"], heldout_sentences_per_voice=2)
    assert [plan.train_sentences(v) for v in plan.voices] == [None, None, 2]
    order = [f"s{i}" for i in range(20)]
    splits = {u: "test" if i < 3 else "train" for i, u in enumerate(order)}
    said = {v: voice_sentences(v, splits, plan.train_sentences(v), order) for v in plan.voices}
    assert said["awb"] == said["slt"] == order  # seen voices: every sentence
    assert said["en-us+m7"][:3] == order[:3] and len(said["en-us+m7"]) == 5  # test + 2 training
    assert plan_voices(["awb", "slt"], heldout=["slt"]).train_sentences("slt") is None


@needs_flite
@needs_espeak
def test_many_voices_are_known_to_the_synthesisers() -> None:
    available = demo.flite_voices()
    assert all(demo.split_variant(v)[0] in available for v in MANY_VOICES if voice_family(v) != "espeak")
    with EspeakServers() as servers:
        servers.check([v for v in MANY_VOICES if voice_family(v) == "espeak"])


def test_voice_sentences() -> None:
    order = [f"s{i:03d}" for i in range(100)]
    splits = {u: split_of(u) for u in order}
    shared = [u for u in order if splits[u] != "train"]
    train = [u for u in order if splits[u] == "train"]
    picks = {}
    for voice in ("awb", "awb-v1", "en-us+m3"):
        chosen = voice_sentences(voice, splits, 5, order)
        assert chosen == voice_sentences(voice, splits, 5, list(order))  # deterministic
        assert [u for u in chosen if splits[u] != "train"] == shared  # every valid/test sentence
        assert len([u for u in chosen if splits[u] == "train"]) == 5
        assert chosen == sorted(chosen)  # corpus order
        picks[voice] = frozenset(chosen) - set(shared)
    assert len(set(picks.values())) == 3  # each voice gets its own training sentences
    assert voice_sentences("awb", splits, None, order) == order
    assert voice_sentences("awb", splits, 10_000, order) == order
    assert voice_sentences("awb", splits, 0, order) == shared
    assert set(train) == {u for v in MANY_VOICES for u in voice_sentences(v, splits, 10, order)} - set(shared)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"many_voices": True, "voices": ["awb"]}, "many-voice mode has its own voices"),
        ({"many_voices": True, "variants": 1}, "many-voice mode has its own voices"),
        ({"voices": ["awb"], "heldout": ["slt"]}, "held-out voice slt is not one of"),
        ({"voices": ["awb"], "sentences_per_voice": -1}, "sentences_per_voice must be >= 0"),
        ({"voices": ["awb", "slt"], "heldout": ["slt"], "heldout_sentences_per_voice": -1}, "must be >= 0"),
        ({"voices": ["awb"], "heldout_sentences_per_voice": 2}, "needs held-out voices"),
        ({"voices": ["awb", "awb-v1"], "variants": 1}, "repeated voice"),
        ({"voices": ["en-us+m3-s999"]}, "speed must be"),
        ({"voices": ["en-us+m3+x"]}, "bad espeak-ng voice"),
    ],
)
def test_bad_voice_options(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UserError, match=message):
        make_demo_corpus(tmp_path, num_sentences=1, **kwargs)  # type: ignore[arg-type]
    assert not list(tmp_path.rglob("*.wav"))


@needs_flite
@needs_espeak
def test_unknown_espeak_voice(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no voice variant 'nosuch'"):
        make_demo_corpus(tmp_path, voices=("awb", "en-us+nosuch"), num_sentences=1)
    assert not list(tmp_path.rglob("*.wav"))


def _mixed(root: Path) -> DemoCorpus:
    return make_demo_corpus(
        root, voices=MIXED_VOICES, heldout=MIXED_HELDOUT, num_sentences=MIXED_SENTENCES, sentences_per_voice=1
    )


@pytest.fixture(scope="module")
def mixed_corpus(tmp_path_factory: pytest.TempPathFactory) -> DemoCorpus:
    if shutil.which("flite") is None or ctypes.util.find_library("espeak-ng") is None:
        pytest.skip("flite or espeak-ng is not installed")
    return _mixed(tmp_path_factory.mktemp("mixed"))


def test_mixed_corpus_manifest(mixed_corpus: DemoCorpus) -> None:
    root = mixed_corpus.root
    assert mixed_corpus.voices == MIXED_VOICES and mixed_corpus.heldout == MIXED_HELDOUT
    assert mixed_corpus.num_utterances == 3 * 3  # each voice: the valid and the test sentence + 1 train
    lines = (root / "manifest.tsv").read_text().splitlines()
    assert lines[0] == "# path\tspeaker\ttext\tsplit\tvoices"
    rows = [line.split("\t") for line in lines[1:]]
    assert len(rows) == 9 and all(len(row) == 5 for row in rows)
    for path, speaker, _, split, voices in rows:
        assert (root / path).is_file() and (root / "labels" / speaker / f"{Path(path).stem}.tsv").is_file()
        assert voices == ("heldout" if speaker in MIXED_HELDOUT else "seen")
        assert split == split_of(Path(path).stem)
    for voice in MIXED_VOICES:
        said = sorted(Path(p).stem for p, s, *_ in rows if s == voice)
        assert {"arctic_a0002", "arctic_a0005"} <= set(said) and len(said) == 3
    assert (root / "splits" / "heldout_speakers.txt").read_text() == "en-gb+f2-s160\n"
    readme = (root / "README.txt").read_text()
    assert "espeak-ng" in readme and "PHONEME MNEMONICS" in readme and "held out" in readme

    utts = scan_manifest(root / "manifest.tsv")
    assert {u.speaker for u in utts if u.heldout} == set(MIXED_HELDOUT)
    train, valid = split_utterances(utts, valid_per_speaker=5)
    assert train and valid
    assert not {u.speaker for u in train + valid} & set(MIXED_HELDOUT)


def test_mixed_corpus_labels(mixed_corpus: DemoCorpus) -> None:
    for wav in sorted(mixed_corpus.root.glob("wavs/*/*.wav")):
        info = sf.info(str(wav))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        labels = read_labels(mixed_corpus.root / "labels" / wav.parent.name / f"{wav.stem}.tsv")
        assert labels[0][0] == 0.0 and abs(labels[-1][1] - info.frames / info.samplerate) < 1e-3


def test_mixed_corpus_is_deterministic(mixed_corpus: DemoCorpus, tmp_path: Path) -> None:
    again = _mixed(tmp_path)
    assert again.num_utterances == mixed_corpus.num_utterances
    assert again.duration_s == pytest.approx(mixed_corpus.duration_s)
    first = {
        p.relative_to(mixed_corpus.root): p.read_bytes() for p in mixed_corpus.root.rglob("*") if p.is_file()
    }
    second = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert first == second  # every wav, label, split and the manifest, byte for byte


def test_no_heldout_keeps_four_columns(small_corpus: DemoCorpus) -> None:
    lines = (small_corpus.root / "manifest.tsv").read_text().splitlines()
    assert lines[0] == "# path\tspeaker\ttext\tsplit" and all(len(x.split("\t")) == 4 for x in lines)
    assert (small_corpus.root / "splits" / "heldout_speakers.txt").read_text() == ""
    assert small_corpus.heldout == ()
