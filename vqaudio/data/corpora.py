"""Finding the utterances of a speech corpus on disk, and splitting them into train / validation.

Supported layouts (``scan_corpus(kind, root)``):

- ``vctk``: CSTR VCTK 0.92 (``wav48_silence_trimmed/p225/p225_001_mic1.flac``) and 0.80
  (``wav48/p225/p225_001.wav``), transcripts in ``txt/p225/p225_001.txt``.
- ``librispeech``: ``<spk>/<chapter>/<spk>-<chapter>-<utt>.flac`` with ``<spk>-<chapter>.trans.txt``.
- ``ljspeech``: ``wavs/LJ001-0001.wav`` and a pipe-separated ``metadata.csv``.
- ``folder``: every audio file below a folder; the speaker is the name of the file's folder.
- ``tsv``: a manifest of ``path<TAB>speaker[<TAB>text[<TAB>split[<TAB>voices]]]`` lines.

Scanners only look at file names (no audio is decoded); ``vqaudio.data.validate_corpus`` checks the
files themselves.
"""

from __future__ import annotations

import logging
import os
import re
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vqaudio.audio import AUDIO_EXTENSIONS
from vqaudio.config import CORPUS_KINDS
from vqaudio.errors import ConfigError, UserError
from vqaudio.hashing import stable_digest, stable_fraction

__all__ = [
    "CORPUS_KINDS",
    "VOICE_KINDS",
    "is_heldout_voice",
    "SpeakerInfo",
    "Utterance",
    "read_vctk_speaker_info",
    "scan_corpus",
    "scan_folder",
    "scan_librispeech",
    "scan_ljspeech",
    "scan_manifest",
    "scan_vctk",
    "speaker_list",
    "corpus_speaker_info",
    "split_utterances",
    "stable_digest",
    "stable_fraction",
]

logger = logging.getLogger(__name__)

VCTK_MICS = ("mic1", "mic2")
_VCTK_092_RE = re.compile(r"^(?P<utt>(?P<spk>[ps]\d+)_\d+)_(?P<mic>mic[12])$")
_VCTK_080_RE = re.compile(r"^(?P<utt>(?P<spk>[ps]\d+)_\d+)$")
_VCTK_ID_RE = re.compile(r"^[ps]?\d+$", re.IGNORECASE)


SPLITS = ("train", "valid", "test")


VOICE_KINDS = ("seen", "heldout")
"""Values of a manifest's 5th column: ``heldout`` speakers are never trained on."""


def is_heldout_voice(marked: bool, speaker: str, trained_on: Collection[str]) -> bool:
    """Whether a voice counts as held out when scoring a model: its manifest row says so (``marked``), or
    the model has a speaker table (``trained_on``, its training speakers) and ``speaker`` is not in it."""
    return marked or bool(trained_on and speaker not in trained_on)


@dataclass(frozen=True)
class Utterance:
    """One recording: where it is, who speaks, a corpus-unique id, the transcript if known, the
    corpus's own split (``train``/``valid``/``test``) when it names one (a manifest's 4th column), and
    whether its speaker is held out from training (a manifest's 5th column says ``heldout``)."""

    path: Path
    speaker: str
    utt_id: str
    text: str | None = None
    split: str | None = None
    heldout: bool = False


@dataclass(frozen=True)
class SpeakerInfo:
    """A row of VCTK's ``speaker-info.txt``; columns a row lacks are ``None``."""

    speaker: str
    age: str | None
    gender: str | None
    accent: str | None
    region: str | None


def _is_audio(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS


def _require_dir(root: str | os.PathLike[str], what: str) -> Path:
    path = Path(root).expanduser()
    if not path.exists():
        raise UserError(f"{root}: {what} folder does not exist")
    if not path.is_dir():
        raise UserError(f"{root}: {what} root must be a folder")
    return path


def _subdirs(folder: Path) -> list[Path]:
    """Non-hidden sub-folders, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _read_text(path: Path) -> str:
    return " ".join(path.read_text(encoding="utf-8", errors="replace").split())


# --------------------------------------------------------------------------------------------- VCTK


def _is_vctk_root(folder: Path) -> bool:
    return (folder / "wav48_silence_trimmed").is_dir() or (folder / "wav48").is_dir()


def _vctk_root(root: Path) -> Path:
    """The corpus folder itself, or its parent holding exactly one ``VCTK-Corpus[-0.92]`` folder."""
    if _is_vctk_root(root):
        return root
    inner = [root / name for name in ("VCTK-Corpus-0.92", "VCTK-Corpus") if _is_vctk_root(root / name)]
    if len(inner) == 1:
        return inner[0]
    if len(inner) > 1:
        raise UserError(f"{root}: holds both VCTK-Corpus-0.92 and VCTK-Corpus; point at one of them")
    raise UserError(f"{root}: not a VCTK folder (no wav48_silence_trimmed/ or wav48/ inside)")


def _vctk_texts(txt_dir: Path, speaker: str) -> dict[str, Path]:
    folder = txt_dir / speaker
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in folder.iterdir() if p.suffix == ".txt"}


def scan_vctk(root: str | os.PathLike[str], mic: str = "mic1") -> list[Utterance]:
    """List VCTK utterances, for both the 0.92 and the older 0.80 release.

    Args:
        root: the corpus folder (holding ``wav48_silence_trimmed/`` or ``wav48/``), or a folder holding
            exactly one of ``VCTK-Corpus-0.92`` / ``VCTK-Corpus``.
        mic: ``"mic1"`` or ``"mic2"``; selects the 0.92 recording (0.80 has one microphone).

    Returns:
        Utterances sorted by speaker then id; ``utt_id`` is e.g. ``"p225_001"`` (no mic suffix).
        Speakers without transcripts (p315) get ``text=None``; utterances missing the chosen
        microphone (p280, p362 for mic2) are skipped with one logged warning.
    """
    if mic not in VCTK_MICS:
        raise ConfigError(f"VCTK mic must be one of {', '.join(VCTK_MICS)}, got {mic!r}")
    base = _vctk_root(_require_dir(root, "VCTK"))
    new_layout = (base / "wav48_silence_trimmed").is_dir()
    wav_dir = base / ("wav48_silence_trimmed" if new_layout else "wav48")
    pattern = _VCTK_092_RE if new_layout else _VCTK_080_RE
    utts: list[Utterance] = []
    missing: dict[str, int] = defaultdict(int)
    for spk_dir in _subdirs(wav_dir):
        texts = _vctk_texts(base / "txt", spk_dir.name)
        by_utt: dict[str, dict[str, Path]] = defaultdict(dict)
        for file in sorted(spk_dir.iterdir()):
            match = pattern.match(file.stem) if _is_audio(file.name) else None
            if match is not None:  # 0.80 has a single recording per utterance: file it under `mic`
                by_utt[match["utt"]][match["mic"] if new_layout else mic] = file
        for utt_id in sorted(by_utt):
            path = by_utt[utt_id].get(mic)
            if path is None:
                missing[spk_dir.name] += 1
                continue
            text_path = texts.get(utt_id)
            text = _read_text(text_path) if text_path is not None else None
            utts.append(Utterance(path=path, speaker=spk_dir.name, utt_id=utt_id, text=text))
    if missing:
        detail = ", ".join(f"{spk}: {n}" for spk, n in sorted(missing.items()))
        count = sum(missing.values())
        logger.warning("%s: skipped %d VCTK utterances without a %s recording (%s)", base, count, mic, detail)
    return utts


def _vctk_speaker_id(token: str) -> str:
    return f"p{token}" if token.isdigit() else token.lower()


def read_vctk_speaker_info(path: str | os.PathLike[str]) -> dict[str, SpeakerInfo]:
    """Parse VCTK's ``speaker-info.txt`` (0.92 ``p225  23  F  English  Southern  England`` rows, or 0.80
    rows whose IDs lack the ``p``).

    IDs are normalised to ``p225`` (``s5`` stays ``s5``); multi-word regions are joined with single
    spaces; parenthesised comments such as ``(mic2 files unavailable)`` are dropped.

    Raises:
        UserError: missing file, or a row whose first column is not a speaker ID (names file:line).
    """
    file = Path(path)
    if not file.is_file():
        raise UserError(f"{path}: VCTK speaker-info file does not exist")
    speakers: dict[str, SpeakerInfo] = {}
    for lineno, line in enumerate(file.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        fields = re.sub(r"\([^)]*\)?", " ", line).split()
        if not fields or fields[0].upper() == "ID":
            continue
        if not _VCTK_ID_RE.match(fields[0]):
            raise UserError(f"{path}:{lineno}: expected a speaker ID like p225, got {fields[0]!r}")
        cols: list[str | None] = [*fields[1:4], *[None] * (3 - len(fields[1:4]))]
        speaker = _vctk_speaker_id(fields[0])
        speakers[speaker] = SpeakerInfo(
            speaker=speaker, age=cols[0], gender=cols[1], accent=cols[2], region=" ".join(fields[4:]) or None
        )
    return speakers


# ----------------------------------------------------------------------------- LibriSpeech, LJSpeech


def _read_librispeech_transcripts(chapter_dir: Path) -> dict[str, str]:
    texts: dict[str, str] = {}
    for trans in sorted(chapter_dir.glob("*.trans.txt")):
        for line in trans.read_text(encoding="utf-8", errors="replace").splitlines():
            utt_id, _, text = line.strip().partition(" ")
            if utt_id:
                texts[utt_id] = text.strip()
    return texts


def scan_librispeech(root: str | os.PathLike[str]) -> list[Utterance]:
    """List a LibriSpeech subset: ``root/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac``.

    ``root`` is a subset folder such as ``LibriSpeech/train-clean-100``. Transcripts come from each
    chapter's ``<spk>-<chapter>.trans.txt`` (``None`` when absent); the speaker is the ``<spk>`` folder.
    """
    base = _require_dir(root, "LibriSpeech")
    utts: list[Utterance] = []
    for spk_dir in _subdirs(base):
        for chapter_dir in _subdirs(spk_dir):
            texts = _read_librispeech_transcripts(chapter_dir)
            for path in sorted(p for p in chapter_dir.iterdir() if _is_audio(p.name) and p.is_file()):
                utts.append(Utterance(path, spk_dir.name, path.stem, texts.get(path.stem)))
    return utts


def scan_ljspeech(root: str | os.PathLike[str]) -> list[Utterance]:
    """List LJSpeech: ``root/wavs/<id>.wav`` described by ``root/metadata.csv`` (``id|text|normalized``).

    Uses the normalised transcript (third column; the second when a row has only two). Rows whose wav
    is missing are skipped with one logged warning. The single speaker is ``"LJ"``.

    Raises:
        UserError: no ``metadata.csv``, or a row without ``|`` (names file:line).
    """
    base = _require_dir(root, "LJSpeech")
    meta = base / "metadata.csv"
    if not meta.is_file():
        raise UserError(f"{meta}: LJSpeech metadata file does not exist")
    utts: list[Utterance] = []
    missing: list[str] = []
    for lineno, line in enumerate(meta.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) < 2 or not fields[0].strip():
            raise UserError(f"{meta}:{lineno}: expected 'id|text|normalized text', got {line[:60]!r}")
        utt_id = fields[0].strip()
        text = (fields[2] if len(fields) > 2 and fields[2].strip() else fields[1]).strip()
        path = base / "wavs" / f"{utt_id}.wav"
        if path.is_file():
            utts.append(Utterance(path, "LJ", utt_id, text or None))
        else:
            missing.append(utt_id)
    if missing:
        logger.warning("%s: skipped %d rows whose wav is missing (first: %s)", meta, len(missing), missing[0])
    return sorted(utts, key=lambda u: u.utt_id)


# ------------------------------------------------------------------------------- folder, manifest


def _walk_audio(base: Path) -> Iterable[Path]:
    """Audio files below ``base``, following folder symlinks once (cycles are cut); hidden names skipped."""
    seen: set[str] = set()
    for folder, dirs, files in os.walk(base, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if _is_audio(name):
                yield Path(folder) / name


def scan_folder(root: str | os.PathLike[str]) -> list[Utterance]:
    """List every audio file (``AUDIO_EXTENSIONS``, any case) below ``root``, recursively.

    The speaker is the name of the file's folder; ``utt_id`` is the path relative to ``root`` without
    extension, with ``/`` separators. Hidden files and folders (``.name``, e.g. macOS ``._x.wav``
    resource forks) are skipped. Sorted by ``utt_id``.
    """
    base = _require_dir(root, "audio")
    utts = []
    for path in _walk_audio(base):
        rel = path.relative_to(base).with_suffix("").as_posix()
        utts.append(Utterance(path=path, speaker=path.parent.name, utt_id=rel))
    return sorted(utts, key=lambda u: (u.utt_id, u.path.suffix))


def scan_manifest(path: str | os.PathLike[str]) -> list[Utterance]:
    """Read a TSV manifest of ``path<TAB>speaker[<TAB>text[<TAB>split[<TAB>voices]]]`` lines.

    Blank lines and lines starting with ``#`` are ignored; relative audio paths are relative to the
    manifest's folder. ``utt_id`` (what every hash-based split ranks) does not depend on where the corpus
    lies: a relative path gives the path as written, without extension, with ``/`` separators; an absolute
    path below the manifest's folder (compared with the symlinks of both folders resolved) gives the
    path relative to that folder, the same way; any other absolute path gives ``speaker/stem``. ``split`` is
    ``train``, ``valid`` or ``test``; ``voices`` is ``seen`` or ``heldout`` (a speaker never to be
    trained on, as in the many-voice demo corpus); empty or absent columns mean no split and ``seen``,
    and further columns are ignored. Audio files are not checked here (``validate_corpus`` reports all
    bad files at once). Order is the manifest's.

    Raises:
        UserError: missing manifest, or a malformed line or column value (names file:line).
    """
    manifest = Path(path).expanduser()
    if manifest.is_dir():
        raise UserError(f"{path}: is a folder; the tsv corpus kind expects a manifest file")
    if not manifest.is_file():
        raise UserError(f"{path}: manifest file does not exist")
    home = Path(os.path.realpath(manifest.parent))
    utts: list[Utterance] = []
    kind_of: dict[str, tuple[bool, int]] = {}  # speaker -> (held out, first line)
    text_lines = manifest.read_text(encoding="utf-8", errors="replace").splitlines()
    for lineno, line in enumerate(text_lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in line.split("\t")] + [""] * 4  # path, speaker, text, split, voices
        audio, speaker, text, split, voices = fields[:5]
        if not audio or not speaker:
            raise UserError(f"{path}:{lineno}: expected 'path<TAB>speaker[<TAB>text]', got {line[:60]!r}")
        if split and split not in SPLITS:
            raise UserError(f"{path}:{lineno}: split must be one of {', '.join(SPLITS)}, got {split!r}")
        if voices and voices not in VOICE_KINDS:
            raise UserError(f"{path}:{lineno}: voices must be seen or heldout, got {voices!r}")
        heldout = voices == "heldout"
        first = kind_of.setdefault(speaker, (heldout, lineno))
        if first[0] != heldout:
            raise UserError(
                f"{path}:{lineno}: speaker {speaker!r} is {VOICE_KINDS[heldout]} here but "
                f"{VOICE_KINDS[first[0]]} on line {first[1]}"
            )
        audio_path = Path(audio).expanduser()
        full = audio_path if audio_path.is_absolute() else manifest.parent / audio_path
        utt_id = _manifest_utt_id(audio_path, speaker, home)
        utts.append(Utterance(full, speaker, utt_id, text or None, split or None, heldout))
    return utts


def _manifest_utt_id(audio_path: Path, speaker: str, home: Path) -> str:
    """The ``utt_id`` of a manifest row (see :func:`scan_manifest`); ``home`` is the manifest's folder with
    its symlinks resolved. The file itself is not resolved (a linked file keeps its own name)."""
    if not audio_path.is_absolute():
        return audio_path.with_suffix("").as_posix()
    real = Path(os.path.realpath(audio_path.parent)) / audio_path.name
    if real.is_relative_to(home):
        return real.relative_to(home).with_suffix("").as_posix()
    return f"{speaker}/{audio_path.stem}"


# ------------------------------------------------------------------------------ dispatch, splitting


_SCANNERS: dict[str, Callable[[Path], list[Utterance]]] = {
    "librispeech": scan_librispeech,
    "ljspeech": scan_ljspeech,
    "folder": scan_folder,
    "tsv": scan_manifest,
}  # with scan_vctk: one reader per kind of CORPUS_KINDS (tested)


def scan_corpus(kind: str, root: str | os.PathLike[str], *, mic: str = "mic1") -> list[Utterance]:
    """List a corpus' utterances; ``kind`` is one of :data:`CORPUS_KINDS`.

    ``root`` is the corpus folder (a manifest file for ``tsv``); ``mic`` only matters for VCTK.

    Raises:
        ConfigError: unknown kind.
        UserError: missing root, or no audio found.
    """
    if kind not in CORPUS_KINDS:
        raise ConfigError(f"unknown corpus kind {kind!r}; expected one of: {', '.join(CORPUS_KINDS)}")
    path = Path(root).expanduser()
    if not path.exists():
        raise UserError(f"{root}: corpus root does not exist")
    utts = scan_vctk(path, mic=mic) if kind == "vctk" else _SCANNERS[kind](path)
    if not utts:
        raise UserError(f"{root}: no audio found for corpus kind {kind!r}")
    return utts


def _rank_key(seed: int, utt: Utterance) -> tuple[bytes, str, str]:
    return stable_digest(f"{seed}:{utt.utt_id}"), utt.utt_id, str(utt.path)


def _order_key(utt: Utterance) -> tuple[str, str, str]:
    return utt.speaker, utt.utt_id, str(utt.path)


def split_utterances(
    utts: Iterable[Utterance], valid_per_speaker: int, seed: int = 0
) -> tuple[list[Utterance], list[Utterance]]:
    """Hold out ``valid_per_speaker`` utterances of every speaker for validation, deterministically.

    Each speaker's utterances are ranked by SHA-256 of ``f"{seed}:{utt_id}"`` and the first ones are
    held out, so the split depends neither on input order nor on Python's hash seed; a speaker always
    keeps at least one training utterance.

    Utterances that carry the corpus's own split are placed by it instead: ``test`` ones are left
    out of both lists, at most ``valid_per_speaker`` of a speaker's ``valid`` ones (by the same
    ranking) are returned for validation and the others left out, ``train`` ones are trained on.
    Utterances of held-out speakers (``heldout``) are left out of both lists, whatever their split.

    Returns:
        ``(train, valid)``, each sorted by (speaker, utt_id).
    """
    if valid_per_speaker < 0:
        raise ConfigError(f"valid_per_speaker must be >= 0, got {valid_per_speaker}")
    by_speaker: dict[str, list[Utterance]] = defaultdict(list)
    for utt in utts:
        if not utt.heldout:
            by_speaker[utt.speaker].append(utt)
    train: list[Utterance] = []
    valid: list[Utterance] = []
    for group in by_speaker.values():
        ranked = sorted(group, key=lambda u: _rank_key(seed, u))
        if any(u.split is not None for u in ranked):
            valid.extend([u for u in ranked if u.split == "valid"][:valid_per_speaker])
            train.extend(u for u in ranked if u.split in (None, "train"))
            continue
        n_valid = min(valid_per_speaker, len(ranked) - 1)
        valid.extend(ranked[:n_valid])
        train.extend(ranked[n_valid:])
    return sorted(train, key=_order_key), sorted(valid, key=_order_key)


def corpus_speaker_info(kind: str, root: str | os.PathLike[str] | None) -> dict[str, SpeakerInfo]:
    """Per-speaker facts the corpus ships (VCTK's ``speaker-info.txt``); empty for other kinds.

    A TSV manifest gets them from a VCTK-style ``speaker-info.txt`` next to it (egs/vctk writes one).
    """
    if kind == "tsv" and root is not None:
        path = Path(root).expanduser().parent / "speaker-info.txt"
        return read_vctk_speaker_info(path) if path.is_file() else {}
    if kind != "vctk" or root is None:
        return {}
    try:
        path = _vctk_root(Path(root).expanduser()) / "speaker-info.txt"
    except UserError:
        return {}
    return read_vctk_speaker_info(path) if path.is_file() else {}


def speaker_list(utts: Sequence[Utterance] | Iterable[Utterance]) -> list[str]:
    """Sorted unique speaker names."""
    return sorted({u.speaker for u in utts})
