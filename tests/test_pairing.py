"""Tests for vqaudio.data.pairing: audio (a folder or a manifest) paired with label files by one rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from vqaudio.data.pairing import LabelledUtterance, find_pairs
from vqaudio.errors import UserError


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def manifest(path: Path, rows: list[str]) -> Path:
    path.write_text("".join(f"{row}\n" for row in rows))
    return path


def audio_and_labels(pairs: list[LabelledUtterance]) -> list[tuple[Path, Path]]:
    return [(p.audio, p.labels) for p in pairs]


def test_folder(tmp_path: Path) -> None:
    audio, labels = tmp_path / "wavs", tmp_path / "labels"
    a1 = touch(audio / "p1" / "u1.wav")
    a2 = touch(audio / "p1" / "u2.flac")
    a3 = touch(audio / "p2" / "u3.WAV")
    lonely = touch(audio / "p2" / "u4.wav")
    touch(audio / "p2" / "._u3.wav")  # macOS metadata: ignored
    dup_a = [touch(audio / "p1" / "dup.wav"), touch(audio / "p2" / "dup.wav")]
    l1 = touch(labels / "p1" / "u1.tsv")
    l2 = touch(labels / "u2.TextGrid")  # flat labels folder: matched by stem
    l3 = touch(labels / "p2" / "u3.lab")
    orphan = touch(labels / "extra" / "u9.tsv")
    touch(labels / "dup.tsv")
    touch(labels / "notes.md")  # not a label file
    pairs, problems = find_pairs(audio, labels)
    assert audio_and_labels(pairs) == sorted([(a1, l1), (a2, l2), (a3, l3)])
    assert pairs[0] == LabelledUtterance(a1, l1, "p1", "p1/u1")
    assert f"audio without labels: {lonely}" in problems
    assert f"labels without audio: {orphan}" in problems
    ambiguous = [p for p in problems if p.startswith("ambiguous stem 'dup'")]
    assert len(ambiguous) == 1 and all(str(p) in ambiguous[0] for p in dup_a)
    assert len(problems) == 3
    assert all("\n" not in p for p in problems)
    only_tsv, problems = find_pairs(audio, labels, fmt="tsv")
    assert audio_and_labels(only_tsv) == [(a1, l1)]
    assert f"audio without labels: {a2}" in problems


def test_same_folder_several_formats(tmp_path: Path) -> None:
    root = tmp_path / "TIMIT" / "TRAIN" / "DR1" / "FCJF0"
    wav = touch(root / "SA1.WAV")
    phn = touch(root / "SA1.PHN")
    touch(root / "SA1.TXT")
    touch(root / "SA1.WRD")
    both = [touch(tmp_path / "x" / "u.wav"), touch(tmp_path / "x" / "u.flac")]
    pairs, problems = find_pairs(tmp_path, tmp_path)
    assert audio_and_labels(pairs) == [(wav, phn)]
    assert len(problems) == 2
    assert problems[0] == f"several audio files for x/u: {both[1]}, {both[0]}"
    assert problems[1].startswith(f"1 names have label files in several formats; used e.g. {phn} over")
    pairs, timit_problems = find_pairs(tmp_path, tmp_path, fmt="timit")
    assert audio_and_labels(pairs) == [(wav, phn)] and timit_problems == problems[:1]
    with pytest.raises(UserError, match="audio folder or manifest not found"):
        find_pairs(tmp_path / "nope", tmp_path)
    with pytest.raises(UserError, match="labels folder not found"):
        find_pairs(tmp_path, tmp_path / "nope")
    with pytest.raises(UserError, match="unknown label format 'praat'"):
        find_pairs(tmp_path, tmp_path, fmt="praat")
    with pytest.raises(UserError, match="--split needs a TSV manifest"):
        find_pairs(tmp_path, tmp_path, split="test")


def test_manifest_honours_the_format(tmp_path: Path) -> None:
    wav = touch(tmp_path / "corpus" / "wavs" / "p1" / "u1.wav")
    lab = touch(tmp_path / "labels" / "p1" / "u1.lab")
    tsv = touch(tmp_path / "labels" / "p1" / "u1.tsv")
    rows = manifest(tmp_path / "m.tsv", [f"{wav}\tp1\t\ttest\theldout"])
    labels = tmp_path / "labels"
    pairs, problems = find_pairs(rows, labels, fmt="tsv")
    # an absolute row below the manifest's folder: the id is the path relative to that folder
    assert pairs == [LabelledUtterance(wav, tsv, "p1", "corpus/wavs/p1/u1", heldout=True)]
    assert problems == []
    pairs, problems = find_pairs(rows, labels, fmt="htk")
    assert audio_and_labels(pairs) == [(wav, lab)] and problems == []
    pairs, problems = find_pairs(rows, labels)  # auto: lab before tsv, and says so
    assert audio_and_labels(pairs) == [(wav, lab)]
    assert problems == [
        f"1 names have label files in several formats; used e.g. {lab} over {tsv} "
        "(priority .textgrid, .phn, .lab, .tsv, .txt; pass fmt to choose)"
    ]
    pairs, problems = find_pairs(rows, labels, fmt="textgrid")
    assert pairs == [] and problems == [f"audio without labels: {wav}"]


def test_manifest_longest_unique_ending_and_ambiguity(tmp_path: Path) -> None:
    labels = tmp_path / "labels"
    l1, l2 = touch(labels / "p1" / "u1.tsv"), touch(labels / "p2" / "u1.tsv")
    touch(labels / "p3" / "u3.tsv")  # a manifest selects: labels of other utterances are no problem
    a1 = touch(tmp_path / "a" / "P1" / "U1.wav")  # names compare ignoring case
    a2 = touch(tmp_path / "a" / "p2" / "u1.flac")
    rows = manifest(tmp_path / "m.tsv", ["# path\tspeaker", f"{a1}\tp1", f"{a2}\tp2"])
    pairs, problems = find_pairs(rows, labels)
    assert audio_and_labels(pairs) == [(a1, l1), (a2, l2)] and problems == []
    # two rows end in p1/u1 and one label file does: ambiguous, neither is paired
    a3 = touch(tmp_path / "b" / "p1" / "u1.wav")
    rows = manifest(tmp_path / "m.tsv", [f"{a1}\tp1", f"{a2}\tp2", f"{a3}\tp1"])
    pairs, problems = find_pairs(rows, labels)
    assert audio_and_labels(pairs) == [(a2, l2)]
    assert len(problems) == 1 and problems[0].startswith("ambiguous stem 'U1': audio ")
    assert str(a1) in problems[0] and str(a3) in problems[0] and str(l1) in problems[0]


def test_folder_and_manifest_follow_one_rule(tmp_path: Path) -> None:
    labels = tmp_path / "labels"
    l1, l2 = touch(labels / "p1" / "u1.tsv"), touch(labels / "p2" / "u1.tsv")
    a1 = touch(tmp_path / "wavs" / "set" / "p1" / "u1.wav")  # relative paths differ: the endings pair
    a2 = touch(tmp_path / "wavs" / "set" / "p2" / "u1.wav")
    expected = [(a1, l1), (a2, l2)]
    pairs, problems = find_pairs(tmp_path / "wavs", labels)
    assert audio_and_labels(pairs) == expected and problems == []
    rows = manifest(tmp_path / "m.tsv", [f"{a1}\tp1", f"{a2}\tp2"])
    pairs, problems = find_pairs(rows, labels)
    assert audio_and_labels(pairs) == expected and problems == []


def test_manifest_split(tmp_path: Path) -> None:
    labels = tmp_path / "labels"
    wavs = [touch(tmp_path / "wavs" / "p1" / f"u{i}.wav") for i in range(4)]
    label_files = [touch(labels / "p1" / f"u{i}.tsv") for i in (0, 1, 2)]  # u3 has none
    splits = ["train", "test", "train", "train"]
    rows = manifest(tmp_path / "m.tsv", [f"{w}\tp1\t\t{s}" for w, s in zip(wavs, splits, strict=True)])
    pairs, problems = find_pairs(rows, labels, split="test")
    assert audio_and_labels(pairs) == [(wavs[1], label_files[1])] and problems == []  # u3 is not in it
    pairs, problems = find_pairs(rows, labels, split="train")
    assert [p.audio for p in pairs] == [wavs[0], wavs[2]] and problems == [f"audio without labels: {wavs[3]}"]


def test_names_that_only_share_the_file_name_are_not_paired(tmp_path: Path) -> None:
    # p1's label is missing and p9's is the only u1.tsv: other speakers' labels, not p1's
    labels = tmp_path / "labels"
    other = touch(labels / "p9" / "u1.tsv")
    wav = touch(tmp_path / "wavs" / "p1" / "u1.wav")
    pairs, problems = find_pairs(tmp_path / "wavs", labels)
    assert pairs == [] and problems == [f"audio without labels: {wav}", f"labels without audio: {other}"]
    pairs, problems = find_pairs(manifest(tmp_path / "m.tsv", [f"{wav}\tp1"]), labels)
    assert pairs == [] and problems == [f"audio without labels: {wav}"]
