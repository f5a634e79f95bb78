"""Tests for vqaudio.data.corpora: corpus layouts on disk, speaker info, deterministic splits."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vqaudio.data import (
    CORPUS_KINDS,
    SpeakerInfo,
    Utterance,
    read_vctk_speaker_info,
    scan_corpus,
    scan_folder,
    scan_librispeech,
    scan_ljspeech,
    scan_manifest,
    scan_vctk,
    speaker_list,
    split_utterances,
)
from vqaudio.errors import ConfigError, UserError

SPEAKER_INFO_092 = (
    "ID  AGE  GENDER  ACCENTS  REGION COMMENTS \n"
    + """\
p225  23  F    English    Southern  England
p280  25  F    Unknown    France (mic2 files unavailable)
p315  18  M    American    Connecticut  (Text unavailable)
p376  22  M    Indian
s5  22  F    British    Southern  England

"""
)

SPEAKER_INFO_080 = """\
ID  AGE  GENDER  ACCENTS  REGION
225  23  F    English    Southern  England
226  22  M    English    Surrey
315  18  M    American    Connecticut
"""


def audio(path: Path, n: int = 160, sr: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.full(n, 0.1, np.float32), sr)
    return path


def text(path: Path, content: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    return path


@pytest.fixture
def vctk092(tmp_path: Path) -> Path:
    """VCTK 0.92: p225 complete, p280 lacks two mic2 files, p315 has no transcripts, plus s5."""
    root = tmp_path / "VCTK-Corpus-0.92"
    wavs = root / "wav48_silence_trimmed"
    for spk, n in (("p225", 3), ("p280", 3), ("p315", 2), ("s5", 1)):
        for k in range(1, n + 1):
            utt = f"{spk}_{k:03d}"
            audio(wavs / spk / f"{utt}_mic1.flac")
            if not (spk == "p280" and k <= 2):
                audio(wavs / spk / f"{utt}_mic2.flac")
            if spk != "p315":
                text(root / "txt" / spk / f"{utt}.txt", f"Text of {utt}.\n")
    text(wavs / "log.txt", "not audio")
    text(root / "speaker-info.txt", SPEAKER_INFO_092)
    return root


@pytest.fixture
def vctk080(tmp_path: Path) -> Path:
    root = tmp_path / "VCTK-Corpus"
    for spk in ("p225", "p315"):
        for k in (1, 2):
            audio(root / "wav48" / spk / f"{spk}_{k:03d}.wav", sr=48000)
            if spk != "p315":
                text(root / "txt" / spk / f"{spk}_{k:03d}.txt", f"Please call {spk} {k}.")
    text(root / "speaker-info.txt", SPEAKER_INFO_080)
    return root


# ------------------------------------------------------------------------------------------- VCTK


def test_vctk_092_mic1(vctk092: Path) -> None:
    utts = scan_vctk(vctk092)
    assert [u.utt_id for u in utts] == [
        "p225_001", "p225_002", "p225_003", "p280_001", "p280_002", "p280_003", "p315_001", "p315_002",
        "s5_001",
    ]  # fmt: skip
    first = utts[0]
    assert first == Utterance(
        vctk092 / "wav48_silence_trimmed" / "p225" / "p225_001_mic1.flac",
        "p225",
        "p225_001",
        "Text of p225_001.",
    )
    assert {u.speaker for u in utts} == {"p225", "p280", "p315", "s5"}
    assert [u.text for u in utts if u.speaker == "p315"] == [None, None]  # audio kept without text
    assert all(u.path.is_file() and u.path.name.endswith("_mic1.flac") for u in utts)


def test_vctk_092_mic2_skips_missing_recordings_with_one_warning(
    vctk092: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        utts = scan_vctk(vctk092, mic="mic2")
    assert [u.utt_id for u in utts if u.speaker == "p280"] == ["p280_003"]
    assert len(utts) == 7 and all(u.path.name.endswith("_mic2.flac") for u in utts)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "skipped 2" in warnings[0] and "p280" in warnings[0]


def test_vctk_parent_folder_and_bad_mic(vctk092: Path) -> None:
    assert scan_vctk(vctk092.parent) == scan_vctk(vctk092)
    with pytest.raises(ConfigError, match="mic3"):
        scan_vctk(vctk092, mic="mic3")
    with pytest.raises(UserError, match="not a VCTK folder"):
        scan_vctk(vctk092 / "txt")


def test_vctk_parent_with_both_versions_is_ambiguous(vctk092: Path, vctk080: Path) -> None:
    with pytest.raises(UserError, match="both"):
        scan_vctk(vctk092.parent)


def test_vctk_080_layout(vctk080: Path) -> None:
    utts = scan_vctk(vctk080, mic="mic2")  # mic is meaningless for 0.80: one recording per utterance
    assert [(u.utt_id, u.speaker, u.text) for u in utts] == [
        ("p225_001", "p225", "Please call p225 1."),
        ("p225_002", "p225", "Please call p225 2."),
        ("p315_001", "p315", None),
        ("p315_002", "p315", None),
    ]
    assert utts[0].path == vctk080 / "wav48" / "p225" / "p225_001.wav"


def test_speaker_info_092(vctk092: Path) -> None:
    info = read_vctk_speaker_info(vctk092 / "speaker-info.txt")
    assert list(info) == ["p225", "p280", "p315", "p376", "s5"]
    assert info["p225"] == SpeakerInfo("p225", "23", "F", "English", "Southern England")
    assert info["p280"].region == "France"  # comment dropped
    assert info["p315"] == SpeakerInfo("p315", "18", "M", "American", "Connecticut")
    assert info["p376"] == SpeakerInfo("p376", "22", "M", "Indian", None)
    assert info["s5"].gender == "F"


def test_speaker_info_080_ids_get_p_prefix(vctk080: Path) -> None:
    info = read_vctk_speaker_info(vctk080 / "speaker-info.txt")
    assert list(info) == ["p225", "p226", "p315"]
    assert info["p226"] == SpeakerInfo("p226", "22", "M", "English", "Surrey")


def test_speaker_info_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        read_vctk_speaker_info(tmp_path / "nope.txt")
    bad = text(tmp_path / "speaker-info.txt", "ID AGE GENDER\np225 23 F English\nspeaker two\n")
    with pytest.raises(UserError, match=f"{bad}:3"):
        read_vctk_speaker_info(bad)


# ---------------------------------------------------------------------------- other corpus layouts


def test_librispeech(tmp_path: Path) -> None:
    root = tmp_path / "train-clean-100"
    for spk, chapter, n in (("19", "198", 2), ("26", "495", 1), ("26", "496", 1)):
        lines = []
        for k in range(n):
            utt = f"{spk}-{chapter}-{k:04d}"
            audio(root / spk / chapter / f"{utt}.flac")
            lines.append(f"{utt} WORDS OF {utt}")
        text(root / spk / chapter / f"{spk}-{chapter}.trans.txt", "\n".join(lines) + "\n")
    utts = scan_librispeech(root)
    assert [(u.speaker, u.utt_id, u.text) for u in utts] == [
        ("19", "19-198-0000", "WORDS OF 19-198-0000"),
        ("19", "19-198-0001", "WORDS OF 19-198-0001"),
        ("26", "26-495-0000", "WORDS OF 26-495-0000"),
        ("26", "26-496-0000", "WORDS OF 26-496-0000"),
    ]
    assert utts[0].path == root / "19" / "198" / "19-198-0000.flac"


def test_ljspeech(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "LJSpeech-1.1"
    for utt in ("LJ001-0001", "LJ001-0002"):
        audio(root / "wavs" / f"{utt}.wav", sr=22050)
    text(
        root / "metadata.csv",
        'LJ001-0002|in 1880 "quoted"|in eighteen eighty "quoted"\n'
        "LJ001-0001|Printing, Dr. Smith|Printing, Doctor Smith\n"
        "LJ001-0003|missing wav|missing wav\n",
    )
    with caplog.at_level(logging.WARNING):
        utts = scan_ljspeech(root)
    assert [(u.utt_id, u.speaker, u.text) for u in utts] == [
        ("LJ001-0001", "LJ", "Printing, Doctor Smith"),
        ("LJ001-0002", "LJ", 'in eighteen eighty "quoted"'),
    ]
    assert any("skipped 1" in r.getMessage() for r in caplog.records)

    text(root / "metadata.csv", "LJ001-0001|ok|ok\nno pipe here\n")
    with pytest.raises(UserError, match=r"metadata\.csv:2"):
        scan_ljspeech(root)


def test_folder(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    audio(root / "alice" / "b.WAV")
    audio(root / "alice" / "a.flac")
    audio(root / "bob" / "deep" / "x.Flac")
    audio(root / "top.wav")
    audio(root / "alice" / "._a.wav")  # macOS resource fork: hidden, skipped
    text(root / "alice" / "notes.txt", "not audio")
    utts = scan_folder(root)
    assert [(u.utt_id, u.speaker) for u in utts] == [
        ("alice/a", "alice"),
        ("alice/b", "alice"),
        ("bob/deep/x", "deep"),
        ("top", "mine"),
    ]
    assert utts[2].path == root / "bob" / "deep" / "x.Flac"


def test_folder_follows_symlinks_without_looping(tmp_path: Path) -> None:
    data = tmp_path / "elsewhere" / "carol"
    audio(data / "c.wav")
    root = tmp_path / "root"
    root.mkdir()
    (root / "carol").symlink_to(data, target_is_directory=True)
    (data / "loop").symlink_to(root, target_is_directory=True)
    assert [(u.utt_id, u.speaker) for u in scan_folder(root)] == [("carol/c", "carol")]


def test_manifest(tmp_path: Path) -> None:
    a = audio(tmp_path / "wavs" / "a.wav")
    b = audio(tmp_path / "abs" / "b.flac")
    manifest = text(
        tmp_path / "lists" / "train.tsv",
        f"# path\tspeaker\ttext\n\n../wavs/a.wav\talice\thello there\n{b}\tbob\n",
    )
    utts = scan_manifest(manifest)
    assert [(u.path.resolve(), u.speaker, u.text) for u in utts] == [
        (a.resolve(), "alice", "hello there"),
        (b, "bob", None),
    ]
    assert utts[0].utt_id == "../wavs/a"
    assert utts[1].utt_id == "bob/b"  # absolute and outside the manifest's folder: speaker/stem

    bad = text(tmp_path / "bad.tsv", "# comment\nwavs/a.wav\talice\nwavs/b.wav only-one-column\n")
    with pytest.raises(UserError, match=f"{bad}:3"):
        scan_manifest(bad)
    with pytest.raises(UserError, match="folder"):
        scan_corpus("tsv", tmp_path)


def _absolute_manifest(root: Path) -> Path:
    """A corpus of 3 speakers x 6 files under ``root/wavs`` and, in ``root``, a manifest of absolute paths."""
    rows = []
    for spk in ("ann", "bob", "cat"):
        for i in range(6):
            rows.append(f"{audio(root / 'wavs' / spk / f'{i}.wav')}\t{spk}")
    return text(root / "corpus.tsv", "\n".join(rows) + "\n")


def test_manifest_ids_do_not_depend_on_where_the_corpus_lies(tmp_path: Path) -> None:
    from vqaudio.analysis.metrics import split_utterances as analysis_split

    here = scan_manifest(_absolute_manifest(tmp_path / "here"))
    there = scan_manifest(_absolute_manifest(tmp_path / "elsewhere" / "deeper"))
    assert [u.path for u in here] != [u.path for u in there]
    ids = [u.utt_id for u in here]
    assert ids == [u.utt_id for u in there] and ids[:2] == ["wavs/ann/0", "wavs/ann/1"]
    for seed in (0, 1):
        split_here = [[u.utt_id for u in part] for part in split_utterances(here, 2, seed)]
        assert split_here == [[u.utt_id for u in part] for part in split_utterances(there, 2, seed)]
    assert [a.tolist() for a in analysis_split(ids, 0.5, 0)] == [
        a.tolist() for a in analysis_split([u.utt_id for u in there], 0.5, 0)
    ]
    # the manifest read through a symlinked folder, its rows written with the real path: the same ids
    (tmp_path / "link").symlink_to(tmp_path / "here", target_is_directory=True)
    assert [u.utt_id for u in scan_manifest(tmp_path / "link" / "corpus.tsv")] == ids
    # rows written through the link, the manifest read from the real folder: the same ids
    linked = text(tmp_path / "here" / "linked.tsv", f"{tmp_path / 'link' / 'wavs' / 'bob' / '3.wav'}\tbob\n")
    assert [u.utt_id for u in scan_manifest(linked)] == ["wavs/bob/3"]
    # a relative row is kept as written; an absolute one outside the manifest's folder is speaker/stem
    mixed = text(
        tmp_path / "lists" / "m.tsv",
        f"../here/wavs/ann/0.wav\tann\n{tmp_path / 'here/wavs/cat/5.wav'}\tcat\n",
    )
    assert [u.utt_id for u in scan_manifest(mixed)] == ["../here/wavs/ann/0", "cat/5"]


# ---------------------------------------------------------------------------------------- dispatch


def test_scan_corpus_dispatch_and_errors(tmp_path: Path, vctk092: Path) -> None:
    assert scan_corpus("vctk", vctk092, mic="mic2") == scan_vctk(vctk092, mic="mic2")
    assert [u.utt_id for u in scan_corpus("folder", vctk092 / "wav48_silence_trimmed")][:2] == [
        "p225/p225_001_mic1",
        "p225/p225_001_mic2",
    ]
    with pytest.raises(ConfigError, match="expected one of: vctk, librispeech, ljspeech, folder, tsv"):
        scan_corpus("timit", vctk092)
    with pytest.raises(UserError, match="does not exist"):
        scan_corpus("folder", tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    for kind in ("folder", "librispeech"):
        with pytest.raises(UserError, match=f"{empty}.*no audio.*{kind}"):
            scan_corpus(kind, empty)
    assert CORPUS_KINDS == ("vctk", "librispeech", "ljspeech", "folder", "tsv")
    from vqaudio.data.corpora import _SCANNERS

    assert set(CORPUS_KINDS) == {"vctk", *_SCANNERS}  # the config's kinds are the ones with a reader


# ------------------------------------------------------------------------------------------ splits


def fake_utts(counts: dict[str, int]) -> list[Utterance]:
    return [
        Utterance(Path(f"/data/{spk}/{k}.wav"), spk, f"{spk}_{k:03d}")
        for spk, n in counts.items()
        for k in range(n)
    ]


def test_split_is_order_independent_with_per_speaker_counts() -> None:
    utts = fake_utts({"a": 20, "b": 5, "c": 3, "d": 1})
    train, valid = split_utterances(utts, valid_per_speaker=3, seed=7)
    shuffled = utts[:]
    random.Random(1).shuffle(shuffled)
    assert split_utterances(shuffled, 3, seed=7) == (train, valid)
    count = {spk: sum(u.speaker == spk for u in valid) for spk in "abcd"}
    assert count == {"a": 3, "b": 3, "c": 2, "d": 0}  # every speaker keeps >= 1 training utterance
    assert speaker_list(train) == ["a", "b", "c", "d"]
    assert sorted(train + valid, key=lambda u: u.utt_id) == sorted(utts, key=lambda u: u.utt_id)
    assert not set(train) & set(valid)


def test_split_depends_on_seed_and_is_pinned() -> None:
    utts = fake_utts({"a": 20})
    valid = [u.utt_id for u in split_utterances(utts, 3, seed=0)[1]]
    assert valid != [u.utt_id for u in split_utterances(utts, 3, seed=1)[1]]
    # Pinned: SHA-256 of f"{seed}:{utt_id}". Changing this silently moves utterances between splits.
    assert valid == ["a_003", "a_008", "a_017"]
    assert split_utterances(utts, 0) == (utts, [])
    with pytest.raises(ConfigError):
        split_utterances(utts, -1)


def test_speaker_list() -> None:
    assert speaker_list(fake_utts({"z": 2, "a": 1, "m": 3})) == ["a", "m", "z"]
    assert speaker_list([]) == []


def test_manifest_split_column_is_respected_by_split_utterances(tmp_path: Path) -> None:
    import soundfile as sf

    from vqaudio.data import scan_manifest, split_utterances

    rows = []
    for spk in ("a", "b"):
        for i, split in enumerate(["train", "train", "valid", "valid", "valid", "test"]):
            wav = tmp_path / spk / f"{i}.wav"
            wav.parent.mkdir(exist_ok=True)
            sf.write(wav, np.zeros(160, dtype=np.float32), 16000)
            rows.append(f"{spk}/{i}.wav\t{spk}\ttext {i}\t{split}")
    manifest = tmp_path / "m.tsv"
    manifest.write_text("# path\tspeaker\ttext\tsplit\n" + "\n".join(rows) + "\n")
    utts = scan_manifest(manifest)
    assert [u.split for u in utts[:6]] == ["train", "train", "valid", "valid", "valid", "test"]
    assert utts[0].text == "text 0"
    train, valid = split_utterances(utts, valid_per_speaker=2)
    assert {u.split for u in train} == {"train"} and len(train) == 4
    assert {u.split for u in valid} == {"valid"} and len(valid) == 4
    bad = tmp_path / "bad.tsv"
    bad.write_text("a/0.wav\ta\ttext\tbogus\n")
    with pytest.raises(UserError, match="split must be one of"):
        scan_manifest(bad)


def test_manifest_voices_column(tmp_path: Path) -> None:
    rows = [
        "# path\tspeaker\ttext\tsplit\tvoices",
        "a/1.wav\ta\tone\ttrain\tseen",
        "h/1.wav\th\tone\ttrain\theldout",
        "h/2.wav\th\ttwo\ttest\theldout",
        "b/1.wav\tb\tone\tvalid\t",  # an empty 5th column is seen
        "c/1.wav\tc\tone\ttest\tseen\tan extra column, ignored",
    ]
    utts = scan_manifest(text(tmp_path / "m.tsv", "\n".join(rows) + "\n"))
    assert [(u.speaker, u.split, u.heldout) for u in utts] == [
        ("a", "train", False),
        ("h", "train", True),
        ("h", "test", True),
        ("b", "valid", False),
        ("c", "test", False),
    ]
    bad = text(tmp_path / "bad.tsv", "a/1.wav\ta\tone\ttrain\tseen\nb/1.wav\tb\tone\ttrain\tunseen\n")
    with pytest.raises(UserError, match=rf"{bad}:2: voices must be seen or heldout, got 'unseen'"):
        scan_manifest(bad)
    mixed = text(tmp_path / "mixed.tsv", "a/1.wav\ta\t\t\theldout\na/2.wav\ta\t\t\tseen\n")
    with pytest.raises(UserError, match=rf"{mixed}:2: speaker 'a' is seen here but heldout on line 1"):
        scan_manifest(mixed)


def test_four_column_manifests_are_unchanged(tmp_path: Path) -> None:
    manifest = text(tmp_path / "m.tsv", "# path\tspeaker\ttext\tsplit\na/1.wav\ta\thi\ttest\nb/1.wav\tb\n")
    assert scan_manifest(manifest) == [
        Utterance(tmp_path / "a/1.wav", "a", "a/1", "hi", "test", False),
        Utterance(tmp_path / "b/1.wav", "b", "b/1", None, None, False),
    ]


def test_heldout_speakers_never_reach_train_or_valid() -> None:
    utts = fake_utts({"a": 10, "b": 10})
    held = [
        Utterance(Path(f"/data/h/{k}.wav"), "h", f"h_{k:03d}", split=split, heldout=True)
        for k, split in enumerate([None, "train", "valid", "test"] * 3)
    ]
    for valid_per_speaker in (0, 3, 100):
        train, valid = split_utterances(utts + held, valid_per_speaker)
        assert (train, valid) == split_utterances(utts, valid_per_speaker)  # as if they were not there
        assert "h" not in speaker_list(train + valid)
    assert split_utterances(held, 3) == ([], [])


def test_tsv_manifest_takes_speaker_info_lying_next_to_it(vctk092: Path, tmp_path: Path) -> None:
    from vqaudio.data import corpus_speaker_info

    manifest = text(tmp_path / "manifest.tsv", "a.wav\tp225\n")
    assert corpus_speaker_info("tsv", manifest) == {}
    (tmp_path / "speaker-info.txt").symlink_to(vctk092 / "speaker-info.txt")
    info = corpus_speaker_info("tsv", manifest)
    assert info["p225"] == SpeakerInfo("p225", "23", "F", "English", "Southern England")
    assert corpus_speaker_info("folder", tmp_path) == {}
