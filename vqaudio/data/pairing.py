"""Audio paired with its phone-label files by name (``vqaudio analyze``, ``vqaudio eval-convert --labels``).

The audio is a folder (every audio file below it, speaker = its folder, as :func:`~vqaudio.data.scan_folder`
lists them) or a TSV manifest (:func:`~vqaudio.data.scan_manifest`); the labels are the files below a
folder with a suffix of the label format (:func:`~vqaudio.data.labels.label_suffixes`). A name is a
path without its suffix (a folder's files relative to it, a manifest's audio as it resolves), compared
ignoring case, and one rule pairs both kinds of audio:

1. an audio file and a label file with the same name (``wavs/p1/u1.wav`` <-> ``labels/p1/u1.tsv``);
2. then, longest first, where one name is the ending (trailing folders and file name) of the other and
   no other audio or label file's name ends so: ``labels/p1/u1.tsv`` of ``/corpus/wavs/p1/u1.flac``
   (next to ``labels/p2/u1.tsv``), the flat ``labels/u2.TextGrid`` of ``wavs/p1/u2.wav``.

Where one name has label files in several formats (TIMIT's ``.PHN`` next to its ``.TXT``), the first in
the format's order is taken (auto: TextGrid, PHN, lab, tsv, txt) and one summary problem says so.
Nothing else is guessed; these are reported and left unpaired: several audio files with one name (the
wav and flac of an utterance); ambiguous names (unpaired audio and label files of which one's name ends
with the other's whole name, as ``labels/u1.tsv`` does ``wavs/a/u1.wav`` and ``wavs/b/u1.wav``); audio
without labels; and, for a folder, labels without audio (a manifest is a selection of a corpus, so label
files of the utterances it leaves out are no problem).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from vqaudio.data.corpora import Utterance, scan_folder, scan_manifest
from vqaudio.data.labels import label_suffixes
from vqaudio.errors import UserError

__all__ = ["LabelledUtterance", "find_pairs"]

Name = tuple[str, ...]
"""A path without its suffix, as its components."""


@dataclass(frozen=True)
class LabelledUtterance:
    """An audio file, its label file, and (from a manifest's 5th column) whether its voice is held out."""

    audio: Path
    labels: Path
    speaker: str
    utt_id: str
    heldout: bool = False


def find_pairs(
    audio: str | os.PathLike[str], labels: str | os.PathLike[str], fmt: str = "auto", split: str | None = None
) -> tuple[list[LabelledUtterance], list[str]]:
    """Pair audio (a folder or a TSV manifest) with the label files below ``labels`` by name (see the
    module docstring for the rule).

    Args:
        audio: a folder (speaker = parent folder, ``utt_id`` = relative path without suffix) or a manifest.
        labels: the folder of label files, searched recursively (dotfiles skipped).
        fmt: the label format whose suffixes are searched (``"auto"``: all of them).
        split: only a manifest's rows of this split (the others still count when names are compared).

    Returns:
        ``(pairs, problems)``: pairs in the manifest's order, or sorted by audio path; one-line messages.

    Raises:
        UserError: a missing folder or manifest, ``split`` without a manifest, or an unknown ``fmt``.
    """
    audio, labels = Path(audio), Path(labels)
    if not labels.is_dir():
        raise UserError(f"{labels}: labels folder not found")
    suffixes = label_suffixes(fmt)
    manifest = audio.is_file()
    if manifest:
        utts = scan_manifest(audio)
        names = [u.path.with_suffix("").parts for u in utts]
    elif audio.is_dir():
        if split is not None:
            raise UserError("--split needs a TSV manifest as --audio")
        utts = sorted(scan_folder(audio), key=lambda u: u.path)
        names = [PurePosixPath(u.utt_id).parts for u in utts]
    else:
        raise UserError(f"{audio}: audio folder or manifest not found")
    wanted = [split is None or u.split == split for u in utts]
    label_files, label_problems = _label_files(labels, suffixes)
    unique, problems = _one_file_per_name(utts, names, wanted)
    audio_names = {i: _fold(names[i]) for i in unique}
    label_names = {j: _fold(name) for j, name in enumerate(label_files)}
    label_paths = list(label_files.values())
    matched = _match(audio_names, label_names)
    problems += label_problems
    ambiguous, orphans = _unpaired(audio_names, label_names, matched)
    unpaired: list[tuple[int, str]] = []  # (audio index, problem): in the order of the audio
    for stem_ids, candidates in ambiguous:
        if any(wanted[i] for i in stem_ids):
            unpaired.append(
                (
                    stem_ids[0],
                    f"ambiguous stem {names[stem_ids[0]][-1]!r}: "
                    f"audio {', '.join(str(utts[i].path) for i in stem_ids)}; "
                    f"labels {', '.join(str(label_paths[j]) for j in candidates)}",
                )
            )
    lonely = set(audio_names).difference(matched, *(ids for ids, _ in ambiguous))
    unpaired += [(i, f"audio without labels: {utts[i].path}") for i in lonely if wanted[i]]
    problems += [message for _, message in sorted(unpaired)]
    if not manifest:  # a manifest selects: label files of other utterances are expected
        problems += [f"labels without audio: {label_paths[j]}" for j in orphans]
    pairs = [
        LabelledUtterance(utts[i].path, label_paths[j], utts[i].speaker, utts[i].utt_id, utts[i].heldout)
        for i, j in sorted(matched.items())
        if wanted[i]
    ]
    return pairs, problems


def _label_files(root: Path, suffixes: Sequence[str]) -> tuple[dict[Name, Path], list[str]]:
    """The label files below ``root`` by name (relative path without suffix); where a name has several,
    the first in ``suffixes``' order, and a summary problem that says so."""
    found: dict[Name, list[Path]] = defaultdict(list)
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in suffixes and not p.name.startswith(".") and p.is_file():
            found[p.relative_to(root).with_suffix("").parts].append(p)
    chosen = {
        name: min(files, key=lambda p: suffixes.index(p.suffix.lower())) for name, files in found.items()
    }
    several = [
        f"{chosen[name]} over {', '.join(str(f) for f in files if f != chosen[name])}"
        for name, files in found.items()
        if len(files) > 1
    ]
    if not several:
        return chosen, []
    return chosen, [
        f"{len(several)} names have label files in several formats; used e.g. {several[0]} "
        f"(priority {', '.join(suffixes)}; pass fmt to choose)"
    ]


def _one_file_per_name(
    utts: Sequence[Utterance], names: Sequence[Name], wanted: Sequence[bool]
) -> tuple[list[int], list[str]]:
    """Indices of the utterances whose name no other utterance has, and a problem for each name that
    several have (those of a wanted utterance), listing their files."""
    by_name: dict[Name, list[int]] = defaultdict(list)
    for i, name in enumerate(names):
        by_name[name].append(i)
    problems = [
        f"several audio files for {PurePosixPath(*name)}: {', '.join(str(utts[i].path) for i in ids)}"
        for name, ids in by_name.items()
        if len(ids) > 1 and any(wanted[i] for i in ids)
    ]
    return sorted(ids[0] for ids in by_name.values() if len(ids) == 1), problems


def _match(audio: dict[int, Name], labels: dict[int, Name]) -> dict[int, int]:
    """``{audio index: label index}`` for the names (folded, by index) the module docstring's rule pairs:
    equal names, then, longest first, an ending that one of the two names is whole and that no other
    audio or label name has."""
    matched: dict[int, int] = {}
    longest = max(map(len, [*audio.values(), *labels.values()]), default=0)
    for n in (0, *range(longest, 0, -1)):  # 0: the whole name, then its last n components
        for audio_ids, label_ids in _by_ending(audio, labels, n).values():
            if len(audio_ids) != 1 or len(label_ids) != 1:
                continue
            i, j = audio_ids[0], label_ids[0]
            if n in (0, len(audio[i]), len(labels[j])):  # equal names, or one is the other's ending
                matched.setdefault(i, j)  # a pair found at a longer ending is its own group here too
    return matched


def _unpaired(
    audio: dict[int, Name], labels: dict[int, Name], matched: dict[int, int]
) -> tuple[list[tuple[list[int], list[int]]], list[int]]:
    """What is left unpaired, by file name: ``(audio, candidate labels)`` where unpaired audio has
    unpaired label files that end with its whole name or the other way round (the rule could not tell
    them apart), and the unpaired labels that are no such candidate, in order."""
    paired = set(matched.values())
    ambiguous, orphans = [], []
    for audio_ids, label_ids in _by_ending(audio, labels, 1).values():
        audio_ids = [i for i in audio_ids if i not in matched]
        label_ids = [j for j in label_ids if j not in paired]
        related = [i for i in audio_ids if any(_one_ends_other(audio[i], labels[j]) for j in label_ids)]
        candidates = [j for j in label_ids if any(_one_ends_other(audio[i], labels[j]) for i in related)]
        if related:
            ambiguous.append((related, candidates))
        orphans += [j for j in label_ids if j not in candidates]
    return ambiguous, sorted(orphans)


def _one_ends_other(a: Name, b: Name) -> bool:
    n = min(len(a), len(b))
    return a[-n:] == b[-n:]


def _by_ending(
    audio: dict[int, Name], labels: dict[int, Name], n: int
) -> dict[Name, tuple[list[int], list[int]]]:
    """Audio and label indices by the last ``n`` components of their names (``n=0``: the whole name);
    names shorter than ``n`` are left out."""
    groups: dict[Name, tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
    for side, names in enumerate((audio, labels)):
        for i, name in names.items():
            if len(name) >= n:
                groups[name[-n:] if n else name][side].append(i)
    return groups


def _fold(name: Name) -> Name:
    return tuple(part.casefold() for part in name)
