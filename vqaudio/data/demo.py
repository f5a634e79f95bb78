"""A parallel, multi-speaker, phone-labelled English demo corpus synthesised with flite.

The CMU ARCTIC "a" prompts (public domain, shipped as ``cmuarctic_a.data``) are spoken by several
flite voices; flite's ``-psdur`` option prints the phone segmentation it used, which becomes an
Audacity-style label file per utterance. No download is needed: ``sudo apt-get install flite`` is enough.

Layout written by :func:`make_demo_corpus` (paths relative to ``out_dir``)::

    wavs/<voice>/<utt_id>.wav     mono PCM_16 at ``sample_rate``
    labels/<voice>/<utt_id>.tsv   start<TAB>end<TAB>phone (seconds); silence is ``pau``
    text/<utt_id>.txt             the prompt
    splits/{train,valid,test}.txt utterance ids, split by sentence (same split for every voice)
    manifest.tsv                  "# ..." header, then path<TAB>speaker<TAB>text<TAB>split rows
    README.txt                    what this is and how it was made
"""

from __future__ import annotations

import hashlib
import math
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf
import soxr

from vqaudio.audio import atomic_write_text, write_audio
from vqaudio.errors import UserError

__all__ = [
    "DEMO_VOICES",
    "SPLITS",
    "VOICE_VARIANTS",
    "DemoCorpus",
    "FliteError",
    "check_flite",
    "flite_voices",
    "make_demo_corpus",
    "parse_psdur",
    "read_arctic_prompts",
    "read_labels",
    "split_of",
]

DEMO_VOICES: tuple[str, ...] = ("kal16", "awb", "rms", "slt")
"""flite's built-in voices used by default: kal16 (diphone, US male), awb (Scottish male),
rms (US male), slt (US female); the last three are clustergen voices."""

SPLITS: tuple[str, ...] = ("train", "valid", "test")

VOICE_VARIANTS: tuple[tuple[float, float], ...] = (
    (1.12, 190.0),
    (0.90, 100.0),
    (1.20, 230.0),
    (1.05, 150.0),
    (0.94, 120.0),
    (1.16, 210.0),
)
"""Derived voices ``<voice>-v<k>`` (k = 1, 2, ...): (spectral scale, mean f0 in Hz).  A variant is
synthesised with its durations stretched and its pitch lowered by the scale, then played faster by
the same scale (resampling): durations come back, while formants and the whole spectrum move by the
scale (a vocal-tract-length change) and the pitch lands on the given mean.  They give a speaker
encoder many more voices to learn from than flite's four."""

PROMPTS_PATH = Path(__file__).parent / "cmuarctic_a.data"
"""The packaged CMU ARCTIC "a" prompt list (593 sentences, public domain)."""

LABEL_TOLERANCE_S = 0.05
"""How far flite's last phone end may be from the wav's length before we call it a bug."""

_FLITE_INSTALL_HINT = "flite not found: install it with `sudo apt-get install flite` (Debian/Ubuntu)"
_PROMPT_RE = re.compile(r'^\(\s*(\S+)\s+"((?:[^"\\]|\\.)*)"\s*\)$')
_FLITE_TIMEOUT_S = 300.0


class FliteError(RuntimeError):
    """flite ran but failed or produced something unusable (not the user's fault)."""


@dataclass(frozen=True)
class DemoCorpus:
    """Summary of a corpus written by :func:`make_demo_corpus`.

    Attributes:
        root: the output directory.
        voices: the flite voices (= speakers) in the corpus.
        num_utterances: number of wav files, i.e. sentences x voices.
        duration_s: total audio duration over all voices, in seconds.
        splits: ``{"train"|"valid"|"test": [utt_id, ...]}`` (by sentence, shared by all voices).
    """

    root: Path
    voices: tuple[str, ...]
    num_utterances: int
    duration_s: float
    splits: dict[str, list[str]]


# --------------------------------------------------------------------------------------------- prompts


def read_arctic_prompts(path: Path | None = None) -> list[tuple[str, str]]:
    """Read a Festival-style prompt list: lines like ``( arctic_a0001 "Some text." )``.

    Backslash escapes inside the quoted text (``\\"``, ``\\\\``) are undone and runs of whitespace become
    one space (``arctic_a0028`` ends with a space); blank lines are skipped.

    Args:
        path: the prompt file; ``None`` reads the packaged CMU ARCTIC "a" list.

    Returns:
        ``[(utt_id, text), ...]`` in file order.

    Raises:
        UserError: the file is missing, a line is malformed, or an id is repeated.
    """
    path = PROMPTS_PATH if path is None else Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"cannot read prompt file {path}: {exc.strerror or exc}") from exc
    prompts: list[tuple[str, str]] = []
    seen: set[str] = set()
    for lineno, line in enumerate(lines, start=1):
        line = line.strip()
        if not line:
            continue
        match = _PROMPT_RE.match(line)
        if match is None:
            raise UserError(f'{path}:{lineno}: expected ( utt_id "text" ), got {line[:60]!r}')
        utt_id, raw = match.groups()
        if utt_id in seen:
            raise UserError(f"{path}:{lineno}: duplicate utterance id {utt_id!r}")
        seen.add(utt_id)
        prompts.append((utt_id, " ".join(re.sub(r"\\(.)", r"\1", raw).split())))
    return prompts


def split_of(utt_id: str, valid_fraction: float = 0.1, test_fraction: float = 0.1) -> str:
    """Deterministic split of one sentence from a stable hash (SHA-256) of its id.

    The result depends only on the id and the fractions, never on which other sentences exist, so
    growing a corpus never moves a sentence between splits.
    """
    digest = hashlib.sha256(utt_id.encode("utf-8")).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    if u < test_fraction:
        return "test"
    if u < test_fraction + valid_fraction:
        return "valid"
    return "train"


# ----------------------------------------------------------------------------------------------- flite


def check_flite() -> str:
    """Return the path of the ``flite`` executable, or raise :class:`UserError` saying how to install it."""
    flite = shutil.which("flite")
    if flite is None:
        raise UserError(_FLITE_INSTALL_HINT)
    return flite


def flite_voices(flite: str | None = None) -> tuple[str, ...]:
    """Voices compiled into ``flite``, from ``flite -lv`` (e.g. ``("kal", "awb_time", "kal16", ...)``)."""
    flite = check_flite() if flite is None else flite
    proc = subprocess.run(
        [flite, "-lv"], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60, check=False
    )
    _, sep, names = proc.stdout.partition(":")
    if proc.returncode != 0 or not sep:
        raise FliteError(f"`{flite} -lv` failed (exit {proc.returncode}): {proc.stderr.strip()[:200]}")
    return tuple(names.split())


def parse_psdur(stdout: str) -> list[tuple[float, float, str]]:
    """Parse ``flite -psdur`` output into phone intervals.

    flite prints one line of ``phone:end_time`` tokens separated by spaces, e.g.
    ``pau:0.254 hh:0.296 ax:0.341 ... pau:0.979``; the first phone starts at 0. Silence stays ``pau``.

    Returns:
        ``[(start_s, end_s, phone), ...]``, contiguous and in time order. Zero-length phones are kept.

    Raises:
        ValueError: a malformed token, a negative/non-finite time, or times going backwards.
    """
    intervals: list[tuple[float, float, str]] = []
    start = 0.0
    for token in stdout.split():
        phone, sep, time_text = token.rpartition(":")
        if not sep or not phone:
            raise ValueError(f"malformed flite -psdur token {token!r} (expected phone:end_time)")
        try:
            end = float(time_text)
        except ValueError:
            raise ValueError(f"malformed time in flite -psdur token {token!r}") from None
        if not math.isfinite(end) or end < start:
            raise ValueError(f"flite -psdur times not monotonic at {token!r} (previous end {start})")
        intervals.append((start, end, phone))
        start = end
    return intervals


def _fit_labels(
    intervals: list[tuple[float, float, str]], duration_s: float
) -> list[tuple[float, float, str]]:
    """Make the labels end exactly at the audio's end.

    The diphone voices (kal, kal16) print the full duration of the final ``pau`` but only synthesise
    its first half (~0.11 s shorter audio), so a trailing ``pau`` is clipped; small rounding gaps
    (flite prints milliseconds) are closed by moving the last end. Zero-length phones are dropped.
    """
    if not intervals:
        raise FliteError("flite printed no phones")
    out = [iv for iv in intervals if iv[1] > iv[0]]
    if not out:
        raise FliteError("flite printed only zero-length phones")
    start, end, last = out[-1]
    if end > duration_s + LABEL_TOLERANCE_S and last == "pau" and start < duration_s - 1e-3:
        end = duration_s  # the diphone voices' half-synthesised final pause
    if abs(end - duration_s) > LABEL_TOLERANCE_S:
        raise FliteError(f"flite phone timings end at {end:.3f} s but the audio lasts {duration_s:.3f} s")
    if duration_s <= start:
        raise FliteError(f"audio ({duration_s:.3f} s) ends before flite's last phone starts ({start:.3f} s)")
    out[-1] = (start, duration_s, last)
    return out


def _run_flite(
    flite: str, voice: str, text: str, wav_path: Path, variant: tuple[float, float] | None = None
) -> str:
    """Synthesise ``text`` with ``voice`` into ``wav_path``; return flite's ``-psdur`` stdout.

    ``variant`` = (scale, f0): durations stretched and the mean f0 set to ``f0 / scale``, ready to be
    resampled by ``scale`` (see :data:`VOICE_VARIANTS`).
    """
    cmd = [flite, "-voice", voice, "-psdur"]
    if variant is not None:
        scale, f0 = variant
        cmd += ["--setf", f"duration_stretch={scale:g}", "--setf", f"int_f0_target_mean={f0 / scale:.1f}"]
    cmd += ["-t", text, "-o", str(wav_path)]
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=_FLITE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise FliteError(f"flite -voice {voice} timed out after {_FLITE_TIMEOUT_S:.0f} s") from exc
    if proc.returncode != 0 or not wav_path.is_file():
        raise FliteError(f"flite -voice {voice} failed (exit {proc.returncode}): {proc.stderr.strip()[:300]}")
    return proc.stdout


# --------------------------------------------------------------------------------------------- writing


def _format_labels(intervals: Iterable[tuple[float, float, str]]) -> str:
    return "".join(f"{start:.6f}\t{end:.6f}\t{label}\n" for start, end, label in intervals)


def read_labels(path: Path) -> list[tuple[float, float, str]]:
    """Read an Audacity-style label file (``start<TAB>end<TAB>label`` in seconds) as written here.

    Raises:
        ValueError: malformed line, or intervals that are empty, overlapping or out of order.
    """
    intervals: list[tuple[float, float, str]] = []
    prev_end = 0.0
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise ValueError(f"{path}:{lineno}: expected start<TAB>end<TAB>label")
        start, end, label = float(fields[0]), float(fields[1]), fields[2]
        if not (math.isfinite(start) and math.isfinite(end)) or start < prev_end - 1e-9 or end <= start:
            raise ValueError(f"{path}:{lineno}: intervals must be non-empty and in time order")
        intervals.append((start, end, label))
        prev_end = end
    return intervals


def _existing_duration(wav_path: Path, label_path: Path, sample_rate: int) -> float | None:
    """Duration of an already generated utterance if its wav and labels are valid, else ``None``."""
    try:
        info = sf.info(str(wav_path))
        if info.samplerate != sample_rate or info.channels != 1 or info.frames <= 0:
            return None
        intervals = read_labels(label_path)
    except (OSError, RuntimeError, ValueError):  # soundfile raises LibsndfileError (a RuntimeError)
        return None
    duration = info.frames / sample_rate
    if not intervals or abs(intervals[-1][1] - duration) > 1e-3:
        return None
    return duration


def split_variant(speaker: str) -> tuple[str, tuple[float, float] | None]:
    """``"awb-v2"`` -> ``("awb", VOICE_VARIANTS[1])``; a plain voice -> ``(voice, None)``."""
    base, sep, tag = speaker.rpartition("-v")
    if sep and base and tag.isdigit() and 1 <= int(tag) <= len(VOICE_VARIANTS):
        return base, VOICE_VARIANTS[int(tag) - 1]
    return speaker, None


def _make_utterance(
    flite: str, speaker: str, text: str, wav_path: Path, label_path: Path, sample_rate: int, scratch: Path
) -> float:
    """Generate one (speaker, sentence) wav + labels unless valid ones exist; return its duration (s).

    ``speaker`` is a flite voice or a derived voice ``<voice>-v<k>`` (:data:`VOICE_VARIANTS`).
    """
    existing = _existing_duration(wav_path, label_path, sample_rate)
    if existing is not None:
        return existing
    voice, variant = split_variant(speaker)
    raw_path = scratch / f"{speaker}-{wav_path.stem}-{threading.get_ident()}.wav"
    try:
        stdout = _run_flite(flite, voice, text, raw_path, variant)
        try:
            audio, flite_rate = sf.read(str(raw_path), dtype="float32", always_2d=True)
        except (OSError, RuntimeError) as exc:
            raise FliteError(f"flite -voice {voice} wrote an unreadable wav: {exc}") from exc
    finally:
        raw_path.unlink(missing_ok=True)
    audio = audio.mean(axis=1)
    if audio.size == 0:
        raise FliteError(f"flite -voice {voice} wrote an empty wav for {wav_path.stem}")
    scale = 1.0 if variant is None else variant[0]
    if flite_rate * scale != sample_rate:  # a variant plays ``scale`` times faster
        audio = soxr.resample(audio, flite_rate * scale, sample_rate, quality="HQ")
    duration = audio.shape[0] / sample_rate
    try:
        phones = [(a / scale, b / scale, p) for a, b, p in parse_psdur(stdout)]
        labels = _fit_labels(phones, duration)
    except (ValueError, FliteError) as exc:
        raise FliteError(f"{voice}/{wav_path.stem}: {exc}") from exc
    write_audio(wav_path, audio, sample_rate, subtype="PCM_16")
    atomic_write_text(label_path, _format_labels(labels))
    return duration


def _clean_text(text: str) -> str:
    """One line, no tabs: safe for the TSV manifest."""
    return " ".join(text.split())


_VARIANT_NOTE = """
Voices named <voice>-v<k> are derived from a flite voice: synthesised with stretched durations and a
changed pitch, then resampled faster, so that the spectrum (formants) moves by a scale factor and the
mean pitch changes (vqaudio.data.demo.VOICE_VARIANTS lists the factors).
"""


def _readme(
    voices: Sequence[str], num_sentences: int, sample_rate: int, fractions: tuple[float, float]
) -> str:
    valid_fraction, test_fraction = fractions
    return f"""\
vqaudio demo corpus
===================

Synthetic English speech made with flite (http://cmuflite.org, Debian package `flite`) from the
CMU ARCTIC "a" prompts (public domain): {num_sentences} sentences x {len(voices)} voices
({", ".join(voices)}), parallel (every voice says every sentence), with phone labels from
`flite -psdur`. Regenerate with vqaudio.data.demo.make_demo_corpus (re-runs skip finished files).
{_VARIANT_NOTE if any(split_variant(v)[1] for v in voices) else ""}
Layout
  wavs/<voice>/<utt_id>.wav     mono 16-bit PCM, {sample_rate} Hz
  labels/<voice>/<utt_id>.tsv   start<TAB>end<TAB>phone, seconds (Audacity labels); silence is `pau`;
                                the last phone ends exactly at the end of the wav
  text/<utt_id>.txt             the prompt text
  splits/train.txt, valid.txt, test.txt
                                utterance ids; split by sentence from a SHA-256 hash of the id
                                (valid {valid_fraction:g}, test {test_fraction:g}), identical for all voices
  manifest.tsv                  one "#" header line, then path<TAB>speaker<TAB>text<TAB>split
                                (path relative to this folder, speaker = voice)
"""


# -------------------------------------------------------------------------------------------- building


def _check_arguments(
    voices: Sequence[str],
    num_sentences: int | None,
    num_prompts: int,
    sample_rate: int,
    jobs: int,
    valid_fraction: float,
    test_fraction: float,
    variants: int = 0,
) -> tuple[str, ...]:
    voice_tuple = (voices,) if isinstance(voices, str) else tuple(voices)
    if not voice_tuple:
        raise UserError("no voices given")
    if len(set(voice_tuple)) != len(voice_tuple):
        raise UserError(f"repeated voice in {', '.join(voice_tuple)}")
    if not 0 <= variants <= len(VOICE_VARIANTS):
        raise UserError(f"variants must be between 0 and {len(VOICE_VARIANTS)}, got {variants}")
    if num_sentences is not None and not 1 <= num_sentences <= num_prompts:
        raise UserError(f"num_sentences must be between 1 and {num_prompts}, got {num_sentences}")
    if sample_rate <= 0:
        raise UserError(f"sample_rate must be positive, got {sample_rate}")
    if jobs < 1:
        raise UserError(f"jobs must be at least 1, got {jobs}")
    for name, value in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise UserError(f"{name} must be in [0, 1), got {value}")
    if valid_fraction + test_fraction >= 1.0:
        raise UserError(
            f"valid_fraction + test_fraction must be below 1, got {valid_fraction + test_fraction}"
        )
    return voice_tuple


def make_demo_corpus(
    out_dir: Path | str,
    *,
    voices: Sequence[str] = DEMO_VOICES,
    num_sentences: int | None = None,
    sample_rate: int = 16000,
    jobs: int = 2,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    variants: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> DemoCorpus:
    """Synthesise the demo corpus into ``out_dir`` (see the module docstring for the layout).

    Each (voice, sentence) pair is one flite run in a thread pool of ``jobs`` workers. Re-running is
    cheap: utterances whose wav and labels already exist and are valid are skipped, every file is
    written atomically (temp file + ``os.replace``), and unchanged text files keep their mtime.

    Args:
        out_dir: output directory (created).
        voices: flite voice names; each must appear in ``flite -lv``.
        num_sentences: use the first N ARCTIC prompts; ``None`` = all 593.
        sample_rate: output rate; flite's own rate is read from its wav and resampled with soxr if needed.
        jobs: number of concurrent flite processes.
        valid_fraction, test_fraction: expected share of sentences per split (hash based, so
            approximate; a small corpus may have empty valid/test splits).
        variants: also make this many derived voices ``<voice>-v1`` ... of every voice (pitch and
            vocal-tract-length changes, :data:`VOICE_VARIANTS`) as extra speakers.
        progress: called as ``progress(done, total)`` after each utterance, from the calling thread.

    Raises:
        UserError: flite is missing, a voice is unknown, or an argument is out of range.
        FliteError: flite failed or its phone timings do not match its audio.
    """
    root = Path(out_dir)
    prompts = read_arctic_prompts()
    voice_tuple = _check_arguments(
        voices, num_sentences, len(prompts), sample_rate, jobs, valid_fraction, test_fraction, variants
    )
    flite = check_flite()
    available = flite_voices(flite)
    missing = [v for v in voice_tuple if v not in available]
    if missing:
        raise UserError(f"flite has no voice {', '.join(missing)}; available voices: {', '.join(available)}")
    prompts = prompts[:num_sentences] if num_sentences is not None else prompts
    voice_tuple += tuple(f"{v}-v{k}" for v in voice_tuple for k in range(1, variants + 1))

    for sub in ["text", "splits", *(f"{kind}/{v}" for kind in ("wavs", "labels") for v in voice_tuple)]:
        (root / sub).mkdir(parents=True, exist_ok=True)
        for stale in (root / sub).glob(".*.tmp*"):  # left by an interrupted run
            stale.unlink(missing_ok=True)

    for utt_id, text in prompts:
        atomic_write_text(root / "text" / f"{utt_id}.txt", text + "\n")

    tasks = [(voice, utt_id, text) for voice in voice_tuple for utt_id, text in prompts]
    durations: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory(prefix="vqaudio-flite-") as scratch, ThreadPoolExecutor(jobs) as pool:
        futures: dict[Future[float], tuple[str, str]] = {
            pool.submit(
                _make_utterance,
                flite,
                voice,
                text,
                root / "wavs" / voice / f"{utt_id}.wav",
                root / "labels" / voice / f"{utt_id}.tsv",
                sample_rate,
                Path(scratch),
            ): (voice, utt_id)
            for voice, utt_id, text in tasks
        }
        pending: set[Future[float]] = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                exc = future.exception()
                if exc is not None:
                    for other in pending:
                        other.cancel()
                    raise exc
                durations[futures[future]] = future.result()
                if progress is not None:
                    progress(len(durations), len(tasks))

    splits: dict[str, list[str]] = {name: [] for name in SPLITS}
    split_by_id: dict[str, str] = {}
    for utt_id, _ in prompts:
        split_by_id[utt_id] = split_of(utt_id, valid_fraction, test_fraction)
        splits[split_by_id[utt_id]].append(utt_id)
    for name, ids in splits.items():
        atomic_write_text(root / "splits" / f"{name}.txt", "".join(f"{i}\n" for i in ids))

    rows = ["# path\tspeaker\ttext\tsplit\n"]
    for voice in voice_tuple:
        for utt_id, text in prompts:
            rows.append(f"wavs/{voice}/{utt_id}.wav\t{voice}\t{_clean_text(text)}\t{split_by_id[utt_id]}\n")
    atomic_write_text(root / "manifest.tsv", "".join(rows))
    atomic_write_text(
        root / "README.txt", _readme(voice_tuple, len(prompts), sample_rate, (valid_fraction, test_fraction))
    )
    return DemoCorpus(
        root=root,
        voices=voice_tuple,
        num_utterances=len(tasks),
        duration_s=float(sum(durations.values())),
        splits=splits,
    )
