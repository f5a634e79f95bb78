"""Phone labels: read time-aligned phone transcriptions. Which label file is which audio file's is
:mod:`vqaudio.data.pairing`'s; the frame targets made of labels are :mod:`vqaudio.analysis.frames`'.

Formats (see the "Reading audio and labels" section of DESIGN.md):

- Praat TextGrid, long and short text forms (what the Montreal Forced Aligner writes), UTF-8 with or
  without a BOM, or UTF-16 with a BOM; one interval tier chosen by name.
- TIMIT ``.PHN``: ``start_sample end_sample phone``, folded 61 -> 39 phones by default
  (Lee & Hon 1989, the table of Kaldi's ``egs/timit/s5/conf/phones.60-48-39.map``).
- HTK ``.lab``: ``start end label [score...]`` in 100 ns units (and the xwaves/Festival ``.lab`` of CMU
  ARCTIC: a header ending in a ``#`` line, then ``end_time colour label`` in seconds).
- Tab-separated ``start end label`` in seconds: Audacity label exports and the flite demo corpus.

Every reader passes labels through :func:`normalise` (one silence label, stress digits stripped), drops
zero-length intervals and rejects malformed lines with a :class:`~vqaudio.errors.UserError` naming
``file:line``. Nothing here imports torch.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vqaudio.errors import UserError

__all__ = [
    "LABEL_FORMATS",
    "SILENCE",
    "SILENCE_LABELS",
    "TIMIT_39_PHONES",
    "TIMIT_61_TO_39",
    "PhoneIntervals",
    "label_suffixes",
    "normalise",
    "read_htk_lab",
    "read_labels",
    "read_textgrid",
    "read_timit_phn",
    "read_tsv_labels",
    "read_tsv_rows",
    "strip_stress",
]

PathLike = str | os.PathLike[str]

SILENCE = "sil"
"""The one label every silence marker maps to."""

SILENCE_LABELS: frozenset[str] = frozenset({"sil", "sp", "spn", "pau", "h#", "<sil>", ""})
"""Silence markers (compared lower-cased): MFA/Kaldi ``sil``/``sp``/``spn``, flite/Festival ``pau``,
TIMIT ``h#``, ``<sil>``, and an empty interval (an unlabelled TextGrid interval)."""

LABEL_FORMATS: dict[str, tuple[str, ...]] = {
    "textgrid": (".textgrid",),
    "timit": (".phn",),
    "htk": (".lab",),
    "tsv": (".tsv", ".txt"),
}
"""Label file suffixes (lower-cased) per format; ``fmt="auto"`` picks the format from the suffix, and
where one name has files of several formats prefers them in this order (:func:`label_suffixes`)."""

# TIMIT's 61 phones -> the 39 scoring classes of Lee & Hon (1989), as in Kaldi's
# egs/timit/s5/conf/phones.60-48-39.map (third column). ``q`` (glottal stop) has no class: dropped.
TIMIT_61_TO_39: dict[str, str | None] = {
    "aa": "aa", "ae": "ae", "ah": "ah", "ao": "aa", "aw": "aw", "ax": "ah", "ax-h": "ah", "axr": "er",
    "ay": "ay", "b": "b", "bcl": "sil", "ch": "ch", "d": "d", "dcl": "sil", "dh": "dh", "dx": "dx",
    "eh": "eh", "el": "l", "em": "m", "en": "n", "eng": "ng", "epi": "sil", "er": "er", "ey": "ey",
    "f": "f", "g": "g", "gcl": "sil", "h#": "sil", "hh": "hh", "hv": "hh", "ih": "ih", "ix": "ih",
    "iy": "iy", "jh": "jh", "k": "k", "kcl": "sil", "l": "l", "m": "m", "n": "n", "ng": "ng", "nx": "n",
    "ow": "ow", "oy": "oy", "p": "p", "pau": "sil", "pcl": "sil", "q": None, "r": "r", "s": "s",
    "sh": "sh", "t": "t", "tcl": "sil", "th": "th", "uh": "uh", "uw": "uw", "ux": "uw", "v": "v",
    "w": "w", "y": "y", "z": "z", "zh": "sh",
}  # fmt: skip

TIMIT_39_PHONES: frozenset[str] = frozenset(v for v in TIMIT_61_TO_39.values() if v is not None)

_STRESS = re.compile(r"(?<=[A-Za-z])[012]$")
_OVERLAP_TOLERANCE_S = 1e-6  # rounding in writers' decimal times; larger overlaps are errors
_HTK_UNITS_PER_S = 10_000_000


@dataclass(frozen=True, eq=False)
class PhoneIntervals:
    """Labelled time intervals of one utterance, in time order and not overlapping (gaps allowed).

    Attributes:
        starts: ``[N]`` float64 start times in seconds.
        ends: ``[N]`` float64 end times in seconds, each > its start and <= the next start.
        labels: ``N`` labels.
    """

    starts: np.ndarray
    ends: np.ndarray
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        starts = np.array(self.starts, dtype=np.float64).reshape(-1)
        ends = np.array(self.ends, dtype=np.float64).reshape(-1)
        labels = tuple(self.labels)
        if not len(starts) == len(ends) == len(labels):
            raise ValueError(f"{len(starts)} starts, {len(ends)} ends and {len(labels)} labels")
        if not (np.isfinite(starts).all() and np.isfinite(ends).all()):
            raise ValueError("interval times must be finite")
        if len(starts) and (starts[0] < 0 or (ends <= starts).any() or (starts[1:] < ends[:-1]).any()):
            raise ValueError("intervals must be non-negative, non-empty, in time order and not overlap")
        starts.setflags(write=False)
        ends.setflags(write=False)
        object.__setattr__(self, "starts", starts)
        object.__setattr__(self, "ends", ends)
        object.__setattr__(self, "labels", labels)

    @classmethod
    def from_tuples(cls, intervals: Iterable[tuple[float, float, str]]) -> PhoneIntervals:
        """Build from ``[(start_s, end_s, label), ...]`` (already normalised and in order)."""
        rows = list(intervals)
        return cls(
            np.array([r[0] for r in rows], dtype=np.float64),
            np.array([r[1] for r in rows], dtype=np.float64),
            tuple(r[2] for r in rows),
        )

    @property
    def duration(self) -> float:
        """End of the last interval in seconds (0 when there are none)."""
        return float(self.ends[-1]) if len(self.ends) else 0.0

    def __len__(self) -> int:
        return len(self.labels)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PhoneIntervals):
            return NotImplemented
        return (
            self.labels == other.labels
            and np.array_equal(self.starts, other.starts)
            and np.array_equal(self.ends, other.ends)
        )

    __hash__ = None  # type: ignore[assignment]


# --- label normalisation -------------------------------------------------------------------------


def strip_stress(label: str) -> str:
    """Remove an ARPAbet stress digit: ``AH0`` -> ``AH``, ``er1`` -> ``er``; other labels unchanged."""
    return _STRESS.sub("", label)


def normalise(label: str, strip_stress: bool = True) -> str:
    """Normalise one label: trim whitespace, map every silence marker to :data:`SILENCE`, and (by
    default) strip ARPAbet stress digits. The case of other labels is kept (``AH0`` -> ``AH``).

    Pass ``strip_stress=False`` for labels where a final 0/1/2 is meaningful (e.g. tones).
    """
    label = label.strip()
    if label.lower() in SILENCE_LABELS:
        return SILENCE
    return _STRESS.sub("", label) if strip_stress else label


# --- reading files --------------------------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read label file ({exc.strerror or exc})") from None


def _read_text(path: Path, data: bytes | None = None) -> str:
    """Decode a label file: UTF-8 (BOM optional) or UTF-16 (BOM, or guessed from NUL bytes)."""
    if data is None:
        data = _read_bytes(path)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    elif data.startswith(b"\xef\xbb\xbf"):
        encoding = "utf-8-sig"
    elif b"\x00" in data[:200]:
        encoding = "utf-16-be" if data[:1] == b"\x00" else "utf-16-le"
    else:
        encoding = "utf-8"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{path}: not {encoding} text (bad byte at offset {exc.start}); convert it to UTF-8"
        ) from None


def _build(path: Path, rows: Iterable[tuple[int, float, float, str]], strip: bool) -> PhoneIntervals:
    """Validate ``(line, start_s, end_s, raw_label)`` rows into :class:`PhoneIntervals`.

    Zero-length intervals are dropped; overlaps up to 1 us (decimal rounding) are clipped.
    """
    starts: list[float] = []
    ends: list[float] = []
    labels: list[str] = []
    prev_end = 0.0
    for lineno, start, end, label in rows:
        where = f"{path}:{lineno}"
        if not (math.isfinite(start) and math.isfinite(end)):
            raise UserError(f"{where}: interval times must be finite numbers")
        if start < 0:
            raise UserError(f"{where}: negative start time {start:g}")
        if end < start:
            raise UserError(f"{where}: interval ends ({end:g}) before it starts ({start:g})")
        if start < prev_end:
            if prev_end - start > _OVERLAP_TOLERANCE_S:
                raise UserError(
                    f"{where}: interval starts at {start:g} s, before the previous one ends "
                    f"({prev_end:g} s); intervals must be in time order and not overlap"
                )
            start = prev_end
        if end <= start:
            continue
        starts.append(start)
        ends.append(end)
        labels.append(normalise(label, strip_stress=strip))
        prev_end = end
    return PhoneIntervals(np.array(starts), np.array(ends), tuple(labels))


_TOKEN = re.compile(
    r"""(?P<str>"(?:[^"]|"")*")
    | (?P<open>")
    | (?P<comment>![^\n]*)
    | (?P<index>\[[^\]\n]*\])
    | (?P<flag><[^>\n]*>)
    | (?P<num>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)
    | (?P<word>[^\W\d]\w*)
    | (?P<other>\s+|.)""",
    re.VERBOSE | re.DOTALL,
)


class _TextGridTokens:
    """Praat's text serialisation is a flat sequence of numbers, "strings" and <flags>; keys such as
    ``xmin =``, indices like ``[3]`` and ``!`` comments are skipped, so the long and short forms
    read alike (Praat manual, "TextGrid file formats")."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.tokens: list[tuple[str, str, int]] = []
        line = 1
        for m in _TOKEN.finditer(text):
            kind = m.lastgroup
            if kind in ("str", "num", "flag"):
                self.tokens.append((kind, m.group(), line))
            elif kind == "open":
                raise UserError(f"{path}:{line}: unterminated string")
            line += m.group().count("\n")
        self.last_line = line
        self.pos = 0

    def _next(self, kind: str, what: str) -> tuple[str, int]:
        if self.pos >= len(self.tokens):
            raise UserError(f"{self.path}:{self.last_line}: file ends early (expected {what})")
        got, value, line = self.tokens[self.pos]
        if got != kind:
            raise UserError(f"{self.path}:{line}: expected {what}, found {value[:40]}")
        self.pos += 1
        return value, line

    def string(self, what: str) -> tuple[str, int]:
        value, line = self._next("str", f"a quoted string ({what})")
        return value[1:-1].replace('""', '"'), line

    def number(self, what: str) -> tuple[float, int]:
        value, line = self._next("num", f"a number ({what})")
        return float(value), line

    def count(self, what: str) -> int:
        value, line = self.number(what)
        if value < 0 or not value.is_integer():
            raise UserError(f"{self.path}:{line}: {what} must be a whole number, not {value:g}")
        return int(value)

    def flag(self, what: str) -> str:
        return self._next("flag", f"a flag ({what})")[0]


def read_textgrid(path: PathLike, tier: str = "phones", strip_stress: bool = True) -> PhoneIntervals:
    """Read one interval tier of a Praat TextGrid (long or short text form).

    ``tier`` is matched exactly, else case-insensitively; MFA writes tiers ``words`` and ``phones``.
    Point tiers (TextTier) are skipped. Empty intervals become :data:`SILENCE`.

    Raises:
        UserError: unreadable/binary file, malformed content (``file:line``), or no such interval tier
            (the message lists the tiers there are).
    """
    path = Path(path)
    data = _read_bytes(path)
    if data.startswith(b"ooBinaryFile"):
        raise UserError(f"{path}: binary TextGrids are not supported; save it as a text file in Praat")
    toks = _TextGridTokens(path, _read_text(path, data))
    file_type, line = toks.string('File type = "ooTextFile"')
    if file_type not in ("ooTextFile", "ooTextFile short"):
        raise UserError(f'{path}:{line}: not a Praat text file (File type is "{file_type}")')
    object_class, line = toks.string('Object class = "TextGrid"')
    if object_class != "TextGrid":
        raise UserError(f'{path}:{line}: not a TextGrid (Object class is "{object_class}")')
    toks.number("xmin")
    toks.number("xmax")
    n_tiers = toks.count("number of tiers") if toks.flag("tiers? <exists>") == "<exists>" else 0
    interval_tiers: dict[str, list[tuple[int, float, float, str]]] = {}
    point_tiers: list[str] = []
    for _ in range(n_tiers):
        tier_class, line = toks.string("tier class")
        name, _ = toks.string("tier name")
        toks.number("tier xmin")
        toks.number("tier xmax")
        size = toks.count("number of intervals")
        if tier_class == "IntervalTier":
            rows = []
            for _ in range(size):
                start, line = toks.number("interval xmin")
                end, _ = toks.number("interval xmax")
                text, _ = toks.string("interval text")
                rows.append((line, start, end, text))
            interval_tiers.setdefault(name, rows)
        elif tier_class == "TextTier":
            for _ in range(size):
                toks.number("point time")
                toks.string("point mark")
            point_tiers.append(name)
        else:
            raise UserError(f'{path}:{line}: unknown tier class "{tier_class}"')
    chosen = tier if tier in interval_tiers else None
    if chosen is None:
        folded = [name for name in interval_tiers if name.lower() == tier.lower()]
        chosen = folded[0] if len(folded) == 1 else None
    if chosen is None:
        names = ", ".join(repr(n) for n in interval_tiers) or "none"
        points = ", ".join(repr(n) for n in point_tiers)
        points = f" (point tiers, not usable: {points})" if points else ""
        raise UserError(f"{path}: no interval tier named {tier!r}; interval tiers: {names}{points}")
    return _build(path, interval_tiers[chosen], strip_stress)


def read_timit_phn(
    path: PathLike, sample_rate: int = 16000, fold: bool = True, strip_stress: bool = True
) -> PhoneIntervals:
    """Read a TIMIT ``.PHN`` file (``start_sample end_sample phone`` per line).

    With ``fold`` the 61 phones become the 39 classes of :data:`TIMIT_61_TO_39`; the closures,
    ``h#``, ``pau`` and ``epi`` become :data:`SILENCE`, and ``q`` intervals are dropped, leaving a gap
    (frames there get no label). Adjacent equal labels (``bcl`` then ``h#``) stay separate intervals.
    Without ``fold`` the labels are kept, only normalised (``h#``/``pau`` -> ``sil``).
    """
    path = Path(path)
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    rows = []
    for lineno, line in enumerate(_read_text(path).splitlines(), start=1):
        fields = line.split()
        where = f"{path}:{lineno}"
        if not fields:
            continue
        if len(fields) != 3:
            raise UserError(f"{where}: expected 'start_sample end_sample phone', got {line.strip()!r}")
        try:
            start, end = int(fields[0]), int(fields[1])
        except ValueError:
            raise UserError(f"{where}: sample offsets must be whole numbers: {line.strip()!r}") from None
        phone = fields[2]
        if fold:
            if phone.lower() not in TIMIT_61_TO_39:
                raise UserError(f"{where}: {phone!r} is not one of the 61 TIMIT phones (fold=True)")
            folded = TIMIT_61_TO_39[phone.lower()]
            if folded is None:
                continue
            phone = folded
        rows.append((lineno, start / sample_rate, end / sample_rate, phone))
    return _build(path, rows, strip_stress)


def read_htk_lab(path: PathLike, strip_stress: bool = True) -> PhoneIntervals:
    """Read an HTK label file: ``start end label [score ...]`` in 100 ns units (extra fields ignored;
    only the first alternative before a ``///`` line is read).

    An xwaves/Festival ``.lab`` (CMU ARCTIC's ``lab/``: header lines, a ``#`` line, then
    ``end_time colour label`` in seconds, each phone starting where the previous one ended) is
    recognised by its ``#`` line and read too.

    Raises:
        UserError: a line without times (e.g. an MFA ``.lab`` transcript) or otherwise malformed.
    """
    path = Path(path)
    lines = _read_text(path).splitlines()
    hash_line = next((i for i, line in enumerate(lines) if line.strip() == "#"), None)
    rows = []
    if hash_line is not None:  # xwaves / Festival
        prev_end = 0.0
        for lineno, line in enumerate(lines[hash_line + 1 :], start=hash_line + 2):
            fields = line.split(None, 2)
            if not fields:
                continue
            try:
                end = float(fields[0])
            except ValueError:
                raise UserError(f"{path}:{lineno}: expected 'end_time colour label'") from None
            rows.append((lineno, prev_end, end, fields[2] if len(fields) > 2 else ""))
            prev_end = end
        return _build(path, rows, strip_stress)
    for lineno, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "///":
            break
        try:
            if len(fields) < 3:
                raise ValueError
            start, end = float(fields[0]), float(fields[1])
        except ValueError:
            raise UserError(
                f"{path}:{lineno}: expected 'start end label' in 100 ns units, got {line.strip()[:60]!r} "
                "(a .lab holding only words is a transcript, not a label file)"
            ) from None
        rows.append((lineno, start / _HTK_UNITS_PER_S, end / _HTK_UNITS_PER_S, fields[2]))
    return _build(path, rows, strip_stress)


def read_tsv_labels(path: PathLike, strip_stress: bool = True) -> PhoneIntervals:
    """Read ``start<TAB>end<TAB>label`` lines in seconds (Audacity label export, the flite demo corpus).

    Without tabs, fields are split on whitespace (the label is the rest of the line). Audacity's
    frequency lines (starting with ``\\``), ``#`` comments, blank lines and a first-line header
    (``start end label``) are skipped; a missing label counts as silence.
    """
    path = Path(path)
    return _build(path, read_tsv_rows(path), strip_stress)


def read_tsv_rows(path: PathLike) -> list[tuple[int, float, float, str]]:
    """The lines of a tab-separated label file as :func:`read_tsv_labels` parses them, before it checks
    and normalises them: ``(line number, start_s, end_s, label)``, the label as written (``""`` where
    it is missing). For readers with stricter rules of their own (the demo corpus's).

    Raises:
        UserError: an unreadable file or a line without a start and an end time.
    """
    path = Path(path)
    rows = []
    seen_content = False
    for lineno, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip() or line.startswith("\\") or line.lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in (line.split("\t") if "\t" in line else line.split(None, 2))]
        first = not seen_content
        seen_content = True
        try:
            if len(fields) < 2:
                raise ValueError
            start, end = float(fields[0]), float(fields[1])
        except ValueError:
            if first and len(fields) >= 2 and not any(_is_number(f) for f in fields[:2]):
                continue  # a header line
            raise UserError(f"{path}:{lineno}: expected 'start<TAB>end<TAB>label' in seconds") from None
        rows.append((lineno, start, end, fields[2] if len(fields) > 2 else ""))
    return rows


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    for fmt, suffixes in LABEL_FORMATS.items():
        if suffix in suffixes:
            return fmt
    known = ", ".join(label_suffixes())
    raise UserError(f"{path}: unknown label file type {path.suffix!r} (known: {known}); pass the format")


def read_labels(
    path: PathLike,
    fmt: str = "auto",
    tier: str = "phones",
    fold_timit: bool = True,
    strip_stress: bool = True,
) -> PhoneIntervals:
    """Read a label file of any supported format.

    Args:
        path: the label file.
        fmt: ``"textgrid"``, ``"timit"``, ``"htk"``, ``"tsv"``, or ``"auto"`` (by suffix: ``.TextGrid``,
            ``.PHN``, ``.lab``, ``.tsv``/``.txt``; case-insensitive).
        tier: TextGrid tier name.
        fold_timit: fold TIMIT's 61 phones to 39.
        strip_stress: strip ARPAbet stress digits.
    """
    path = Path(path)
    if fmt == "auto":
        fmt = _format_of(path)
    if fmt == "textgrid":
        return read_textgrid(path, tier=tier, strip_stress=strip_stress)
    if fmt == "timit":
        return read_timit_phn(path, fold=fold_timit, strip_stress=strip_stress)
    if fmt == "htk":
        return read_htk_lab(path, strip_stress=strip_stress)
    if fmt == "tsv":
        return read_tsv_labels(path, strip_stress=strip_stress)
    raise _unknown_format(fmt)


def label_suffixes(fmt: str = "auto") -> tuple[str, ...]:
    """The lower-case file suffixes of label format ``fmt``, in order of preference where one name has
    several (``"auto"``: every format's, TextGrid, PHN, lab, tsv, txt).

    Raises:
        UserError: an unknown format.
    """
    if fmt == "auto":
        return tuple(suffix for suffixes in LABEL_FORMATS.values() for suffix in suffixes)
    if fmt not in LABEL_FORMATS:
        raise _unknown_format(fmt)
    return LABEL_FORMATS[fmt]


def _unknown_format(fmt: str) -> UserError:
    return UserError(f"unknown label format {fmt!r} (expected auto, {', '.join(LABEL_FORMATS)})")
