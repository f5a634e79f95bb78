"""Tests for vqaudio.data.labels: phone label formats, folding and normalisation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vqaudio.data.labels import (
    SILENCE,
    TIMIT_39_PHONES,
    TIMIT_61_TO_39,
    PhoneIntervals,
    normalise,
    read_htk_lab,
    read_labels,
    read_textgrid,
    read_timit_phn,
    read_tsv_labels,
    strip_stress,
)
from vqaudio.errors import UserError

# An MFA-style grid: a words tier (with a doubled quote), a point tier, and a phones tier with
# stress digits and the silences MFA writes ("" and "sil", "spn").
TEXTGRID_LONG = """\
File type = "ooTextFile"
Object class = "TextGrid"

xmin = 0
xmax = 1.2
tiers? <exists>
size = 3
item []:
    item [1]:
        class = "IntervalTier"
        name = "words"
        xmin = 0
        xmax = 1.2
        intervals: size = 3
        intervals [1]:
            xmin = 0
            xmax = 0.2
            text = ""
        intervals [2]:
            xmin = 0.2
            xmax = 0.9
            text = "say ""hi""\"
        intervals [3]:
            xmin = 0.9
            xmax = 1.2
            text = ""
    item [2]:
        class = "TextTier"
        name = "events"
        xmin = 0
        xmax = 1.2
        points: size = 1
        points [1]:
            number = 0.5
            mark = "click [1]"
    item [3]:
        class = "IntervalTier"
        name = "phones"
        xmin = 0
        xmax = 1.2
        intervals: size = 6
        intervals [1]:
            xmin = 0
            xmax = 0.2
            text = ""
        intervals [2]:
            xmin = 0.2
            xmax = 0.35
            text = "S"
        intervals [3]:
            xmin = 0.35
            xmax = 0.6
            text = "EY1"
        intervals [4]:
            xmin = 0.6
            xmax = 0.7
            text = "HH"
        intervals [5]:
            xmin = 0.7
            xmax = 0.9
            text = "AY1"
        intervals [6]:
            xmin = 0.9
            xmax = 1.2
            text = "sil"
"""

# The same grid in Praat's short text form.
TEXTGRID_SHORT = """\
File type = "ooTextFile"
Object class = "TextGrid"

0
1.2
<exists>
3
"IntervalTier"
"words"
0
1.2
3
0
0.2
""
0.2
0.9
"say ""hi""\"
0.9
1.2
""
"TextTier"
"events"
0
1.2
1
0.5
"click [1]"
"IntervalTier"
"phones"
0
1.2
6
0
0.2
""
0.2
0.35
"S"
0.35
0.6
"EY1"
0.6
0.7
"HH"
0.7
0.9
"AY1"
0.9
1.2
"sil"
"""

# the phones tier of both TextGrids, read with stress stripped: the ``say_hi_phones`` fixture (conftest)

# The 61 TIMIT phones (TIMIT's PHONCODE.DOC) and the 39 classes of Lee & Hon (1989), written out
# independently of the module's table.
TIMIT_61 = set(
    "aa ae ah ao aw ax ax-h axr ay b bcl ch d dcl dh dx eh el em en eng epi er ey f g gcl h# hh hv ih ix "
    "iy jh k kcl l m n ng nx ow oy p pau pcl q r s sh t tcl th uh uw ux v w y z zh".split()
)
LEE_HON_39 = set(
    "iy ih eh ae ah uw uh aa ey ay oy aw ow l r y w er m n ng ch jh dh b d dx g p t k z v f th s sh hh "
    "sil".split()
)


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


# --- normalisation ---------------------------------------------------------------------------------


def test_strip_stress_and_normalise() -> None:
    assert strip_stress("AH0") == "AH"
    assert strip_stress("er1") == "er"
    assert strip_stress("OY2") == "OY"
    assert strip_stress("AH") == "AH"
    assert strip_stress("h#") == "h#"
    assert normalise(" AH0 ") == "AH"  # case kept, whitespace trimmed
    assert normalise("AH0", strip_stress=False) == "AH0"
    for silence in ("sil", "SIL", "Sil", "sp", "SP", "spn", "pau", "PAU", "h#", "<sil>", "", "  "):
        assert normalise(silence) == SILENCE, silence


# --- TextGrid ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["long", "short"])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le"])
def test_textgrid_forms_and_encodings(say_hi_phones, tmp_path: Path, form: str, encoding: str) -> None:
    text = TEXTGRID_LONG if form == "long" else TEXTGRID_SHORT
    path = write(tmp_path / f"{form}.TextGrid", text, encoding)
    if encoding == "utf-16":
        assert path.read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff")  # Python's utf-16 writes a BOM
    phones = read_textgrid(path)
    assert phones == say_hi_phones
    assert phones.starts.dtype == np.float64
    words = read_textgrid(path, tier="words")
    assert words.labels == (SILENCE, 'say "hi"', SILENCE)
    np.testing.assert_allclose(words.ends, [0.2, 0.9, 1.2])


def test_textgrid_options_and_tier_lookup(say_hi_phones, tmp_path: Path) -> None:
    path = write(tmp_path / "a.TextGrid", TEXTGRID_LONG)
    assert read_textgrid(path, strip_stress=False).labels[2] == "EY1"
    assert read_textgrid(path, tier="PHONES") == say_hi_phones  # case-insensitive fallback
    with pytest.raises(UserError, match=r"no interval tier named 'segments'.*'words', 'phones'.*'events'"):
        read_textgrid(path, tier="segments")
    with pytest.raises(UserError, match="no interval tier named 'events'"):
        read_textgrid(path, tier="events")  # a point tier


def test_textgrid_comments_and_short_header(tmp_path: Path) -> None:
    text = (
        'File type = "ooTextFile short"\n"TextGrid"\n\n! a comment "with quotes"\n0 1 <exists> 1\n'
        '"IntervalTier" "phones" 0 1 2 ! class, name, xmin, xmax, size\n0 0.5 "a"\n0.5 1 "b"\n'
    )
    got = read_textgrid(write(tmp_path / "c.TextGrid", text))
    assert got == PhoneIntervals.from_tuples([(0, 0.5, "a"), (0.5, 1, "b")])


def test_textgrid_malformed(tmp_path: Path) -> None:
    bad = TEXTGRID_LONG.replace("xmax = 0.6", "xmax = oops")
    line = TEXTGRID_LONG.splitlines().index("            xmax = 0.6") + 1
    path = write(tmp_path / "bad.TextGrid", bad)
    with pytest.raises(UserError, match=rf"bad\.TextGrid:{line + 1}: expected a number \(interval xmax\)"):
        read_textgrid(path)
    cut = write(tmp_path / "cut.TextGrid", TEXTGRID_LONG[: TEXTGRID_LONG.index("item [3]")])
    with pytest.raises(UserError, match=r"cut\.TextGrid:\d+: file ends early"):
        read_textgrid(cut)
    quote = write(tmp_path / "quote.TextGrid", TEXTGRID_SHORT.replace('"sil"', '"sil'))
    last = len(TEXTGRID_SHORT.splitlines())
    with pytest.raises(UserError, match=rf"quote\.TextGrid:{last}: unterminated string"):
        read_textgrid(quote)
    other = write(tmp_path / "pitch.TextGrid", 'File type = "ooTextFile"\nObject class = "Pitch 1"\n')
    with pytest.raises(UserError, match=r"pitch\.TextGrid:2: not a TextGrid"):
        read_textgrid(other)
    binary = tmp_path / "bin.TextGrid"
    binary.write_bytes(b"ooBinaryFile\x08TextGrid\x00\x00")
    with pytest.raises(UserError, match="binary TextGrids are not supported"):
        read_textgrid(binary)
    overlap = write(tmp_path / "overlap.TextGrid", TEXTGRID_SHORT.replace("0.7\n0.9\n", "0.65\n0.9\n"))
    with pytest.raises(UserError, match=r"overlap\.TextGrid:\d+: interval starts at 0\.65 s, before"):
        read_textgrid(overlap)


# --- TIMIT -------------------------------------------------------------------------------------------


def test_timit_table_is_lee_hon() -> None:
    assert set(TIMIT_61_TO_39) == TIMIT_61
    assert len(TIMIT_61_TO_39) == 61
    assert TIMIT_39_PHONES == LEE_HON_39
    assert len(LEE_HON_39) == 39
    assert {v for v in TIMIT_61_TO_39.values() if v is not None} == LEE_HON_39
    assert [k for k, v in TIMIT_61_TO_39.items() if v is None] == ["q"]
    folds = {
        "ao": "aa", "ax": "ah", "ax-h": "ah", "axr": "er", "hv": "hh", "ix": "ih", "el": "l", "em": "m",
        "en": "n", "nx": "n", "eng": "ng", "zh": "sh", "ux": "uw", "pcl": "sil", "tcl": "sil", "kcl": "sil",
        "bcl": "sil", "dcl": "sil", "gcl": "sil", "h#": "sil", "pau": "sil", "epi": "sil",
    }  # fmt: skip
    for phone, folded in folds.items():
        assert TIMIT_61_TO_39[phone] == folded, phone
    unchanged = TIMIT_61 - set(folds) - {"q"}
    assert all(TIMIT_61_TO_39[p] == p for p in unchanged)
    assert len(unchanged) == 38  # every class but sil is its own TIMIT phone


TIMIT_PHN = """\
0 3050 h#
3050 4559 sh
4559 5723 ix
5723 6642 hv
6642 7000 q
7000 8772 ax-h
8772 9190 dcl
9190 9555 epi
"""


def test_timit_phn(tmp_path: Path) -> None:
    path = write(tmp_path / "SA1.PHN", TIMIT_PHN)
    got = read_timit_phn(path)
    assert got.labels == ("sil", "sh", "ih", "hh", "ah", "sil", "sil")
    np.testing.assert_allclose(got.starts, np.array([0, 3050, 4559, 5723, 7000, 8772, 9190]) / 16000)
    np.testing.assert_allclose(got.ends, np.array([3050, 4559, 5723, 6642, 8772, 9190, 9555]) / 16000)
    assert got.duration == pytest.approx(9555 / 16000)
    assert got.starts[4] > got.ends[3]  # the dropped q leaves a gap
    raw = read_timit_phn(path, fold=False, sample_rate=8000)
    assert raw.labels == ("sil", "sh", "ix", "hv", "q", "ax-h", "dcl", "epi")
    assert raw.starts[1] == pytest.approx(3050 / 8000)
    assert read_labels(path, fold_timit=False) == read_timit_phn(path, fold=False)


def test_timit_errors(tmp_path: Path) -> None:
    bad_phone = write(tmp_path / "a.phn", "0 100 h#\n100 200 xx\n")
    with pytest.raises(UserError, match=r"a\.phn:2: 'xx' is not one of the 61 TIMIT phones"):
        read_timit_phn(bad_phone)
    assert read_timit_phn(bad_phone, fold=False).labels == ("sil", "xx")
    fields = write(tmp_path / "b.phn", "0 100 h#\n\n100 sh\n")
    with pytest.raises(UserError, match=r"b\.phn:3: expected 'start_sample end_sample phone'"):
        read_timit_phn(fields)
    floats = write(tmp_path / "c.phn", "0 100.5 h#\n")
    with pytest.raises(UserError, match=r"c\.phn:1: sample offsets must be whole numbers"):
        read_timit_phn(floats)
    backwards = write(tmp_path / "d.phn", "0 100 h#\n100 50 sh\n")
    with pytest.raises(UserError, match=r"d\.phn:2: interval ends .* before it starts"):
        read_timit_phn(backwards)


# --- HTK and xwaves .lab -------------------------------------------------------------------------------


def test_htk_lab(tmp_path: Path) -> None:
    text = "0 2000000 sil -12.5\n2000000 3500000 AH0 -3.1 word\n3500000 3500000 T\n3500000 5000000 sp\n"
    got = read_htk_lab(write(tmp_path / "u.lab", text + "///\n0 5000000 other\n"))
    assert got == PhoneIntervals.from_tuples([(0, 0.2, "sil"), (0.2, 0.35, "AH"), (0.35, 0.5, "sil")])
    transcript = write(tmp_path / "t.lab", "0 2000000 sil\nHELLO\n")
    with pytest.raises(UserError, match=r"t\.lab:2: expected 'start end label' in 100 ns units.*transcript"):
        read_htk_lab(transcript)
    mfa = write(tmp_path / "m.lab", "hello world and more\n")
    with pytest.raises(UserError, match=r"m\.lab:1: expected 'start end label'"):
        read_labels(mfa)
    negative = write(tmp_path / "n.lab", "-100 2000000 a\n")
    with pytest.raises(UserError, match=r"n\.lab:1: negative start time"):
        read_htk_lab(negative)


def test_xwaves_lab(tmp_path: Path) -> None:
    text = "separator ;\nnfields 1\n#\n    0.110000 125 pau\n    0.185000 125 ax\n    0.300000 125 th0\n"
    got = read_labels(write(tmp_path / "arctic_a0001.lab", text))
    assert got.labels == ("sil", "ax", "th")
    np.testing.assert_allclose(got.starts, [0, 0.11, 0.185])
    np.testing.assert_allclose(got.ends, [0.11, 0.185, 0.3])
    bad = write(tmp_path / "b.lab", "#\n0.1 125 pau\nx 125 ax\n")
    with pytest.raises(UserError, match=r"b\.lab:3: expected 'end_time colour label'"):
        read_htk_lab(bad)


# --- tab-separated -----------------------------------------------------------------------------------


def test_audacity_labels(tmp_path: Path) -> None:
    text = (
        "0.000000\t0.250000\tpau\n"
        "\\\t100.000000\t4000.000000\n"  # Audacity's spectral-selection line
        "0.250000\t0.400000\tlong label\n"
        "0.400000\t0.400000\tpoint label\n"  # zero length: dropped
        "0.400000\t0.700000\t\n"  # no text: silence
    )
    got = read_tsv_labels(write(tmp_path / "aud.txt", text))
    assert got == PhoneIntervals.from_tuples([(0, 0.25, "sil"), (0.25, 0.4, "long label"), (0.4, 0.7, "sil")])


def test_flite_tsv(tmp_path: Path) -> None:
    text = "0.000000\t0.254000\tpau\n0.254000\t0.296000\thh\n0.296000\t0.341000\tax\n0.341\t0.5\tpau\n"
    path = write(tmp_path / "labels" / "awb" / "arctic_a0001.tsv", text)
    got = read_labels(path)
    assert got.labels == ("sil", "hh", "ax", "sil")
    assert len(got) == 4
    assert got.duration == pytest.approx(0.5)


def test_tsv_header_whitespace_and_errors(tmp_path: Path) -> None:
    text = "start end label\n# comment\n0 0.5 AA1\n0.5000004 1.0 B\n"  # 0.4 us overlap: rounding, clipped
    got = read_tsv_labels(write(tmp_path / "h.tsv", text))
    assert got == PhoneIntervals.from_tuples([(0, 0.5, "AA"), (0.5000004, 1.0, "B")])
    bad = write(tmp_path / "bad.tsv", "0\t0.5\ta\n0.5\tx\tb\n")
    with pytest.raises(UserError, match=r"bad\.tsv:2: expected 'start<TAB>end<TAB>label'"):
        read_tsv_labels(bad)
    late_header = write(tmp_path / "late.tsv", "0\t0.5\ta\nstart\tend\tlabel\n")
    with pytest.raises(UserError, match=r"late\.tsv:2:"):
        read_tsv_labels(late_header)
    overlap = write(tmp_path / "o.tsv", "0\t0.5\ta\n0.4\t0.8\tb\n")
    with pytest.raises(UserError, match=r"o\.tsv:2: interval starts at 0\.4 s, before the previous one ends"):
        read_tsv_labels(overlap)


# --- dispatch ----------------------------------------------------------------------------------------


def test_read_labels_dispatch(say_hi_phones, tmp_path: Path) -> None:
    tg = write(tmp_path / "x.textgrid", TEXTGRID_SHORT)
    assert read_labels(tg) == say_hi_phones
    assert read_labels(tg, tier="words").labels[1] == 'say "hi"'
    assert read_labels(tg, strip_stress=False).labels[2] == "EY1"
    phn = write(tmp_path / "x.PHN", TIMIT_PHN)
    assert read_labels(phn).labels[2] == "ih"
    as_tsv = write(tmp_path / "x.data", "0\t1\ta\n")
    assert read_labels(as_tsv, fmt="tsv").labels == ("a",)
    with pytest.raises(UserError, match=r"unknown label file type '\.data'"):
        read_labels(as_tsv)
    with pytest.raises(UserError, match="unknown label format 'praat'"):
        read_labels(tg, fmt="praat")
    with pytest.raises(UserError, match="cannot read label file"):
        read_labels(tmp_path / "missing.tsv")


# --- PhoneIntervals ------------------------------------------------------------------------------------


def test_phone_intervals_container(say_hi_phones) -> None:
    assert len(say_hi_phones) == 6
    assert say_hi_phones.duration == pytest.approx(1.2)
    empty = PhoneIntervals.from_tuples([])
    assert len(empty) == 0 and empty.duration == 0.0
    with pytest.raises(ValueError, match="read-only"):
        say_hi_phones.starts[0] = 1.0
    assert say_hi_phones != PhoneIntervals.from_tuples([(0, 0.2, "sil")])
    with pytest.raises(ValueError, match="not overlap"):
        PhoneIntervals.from_tuples([(0, 0.5, "a"), (0.4, 0.8, "b")])
    with pytest.raises(ValueError, match="not overlap"):
        PhoneIntervals.from_tuples([(0.5, 0.5, "a")])
    with pytest.raises(ValueError, match="labels"):
        PhoneIntervals(np.zeros(2), np.ones(2), ("a",))


def test_label_readers_and_analysis_import_no_torch() -> None:
    code = (
        "import sys, vqaudio.analysis, vqaudio.data.labels; "
        "assert not {'torch', 'vqaudio.train', 'vqaudio.models'} & set(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
