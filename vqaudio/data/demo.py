"""A multi-speaker, phone-labelled English demo corpus synthesised with flite and espeak-ng.

The CMU ARCTIC "a" prompts (public domain, shipped as ``cmuarctic_a.data``) are spoken by several
voices: flite's (:mod:`vqaudio.data.flite`, labels from ``flite -psdur``), derived voices of them
(``<voice>-v<k>``) and espeak-ng's (:mod:`vqaudio.data.espeak`, ``<dialect>+<variant>``, labels from
its phoneme events). No download is needed: ``sudo apt-get install flite espeak-ng`` is enough. By
default four flite voices say every sentence (a parallel corpus); the many-voice mode
(:mod:`vqaudio.data.demo_voices`) has 68 voices, 8 of them held out from training.

Layout written by :func:`make_demo_corpus` (paths relative to ``out_dir``)::

    wavs/<voice>/<utt_id>.wav     mono PCM_16 at ``sample_rate``
    labels/<voice>/<utt_id>.tsv   start<TAB>end<TAB>phone (seconds); silence is ``pau``
    text/<utt_id>.txt             the prompt
    splits/{train,valid,test}.txt utterance ids, split by sentence (same split for every voice)
    splits/heldout_speakers.txt   voices never to train on, one a line (empty when there are none)
    manifest.tsv                  "# ..." header, then path<TAB>speaker<TAB>text<TAB>split rows, with
                                  a 5th column ``voices`` (seen / heldout) when some voices are held out
    README.txt                    what this is and how it was made
"""

from __future__ import annotations

import re
import tempfile
import textwrap
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from vqaudio.audio import atomic_write_text
from vqaudio.data.demo_voices import DEMO_VOICES, VoicePlan, plan_voices, voice_sentences
from vqaudio.data.espeak import EspeakServers, is_espeak_voice, make_espeak_utterance
from vqaudio.data.flite import (
    VOICE_VARIANTS,
    FliteError,
    check_flite,
    flite_voices,
    make_flite_utterance,
    parse_psdur,
    split_variant,
)
from vqaudio.data.tts import read_labels
from vqaudio.errors import UserError
from vqaudio.hashing import stable_fraction

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
    "split_variant",
]

SPLITS: tuple[str, ...] = ("train", "valid", "test")

PROMPTS_PATH = Path(__file__).parent / "cmuarctic_a.data"
"""The packaged CMU ARCTIC "a" prompt list (593 sentences, public domain)."""

_PROMPT_RE = re.compile(r'^\(\s*(\S+)\s+"((?:[^"\\]|\\.)*)"\s*\)$')


@dataclass(frozen=True)
class DemoCorpus:
    """Summary of a corpus written by :func:`make_demo_corpus`.

    Attributes:
        root: the output directory.
        voices: the voices (= speakers) in the corpus.
        num_utterances: number of wav files (sentences x voices when every voice says every sentence).
        duration_s: total audio duration over all voices, in seconds.
        splits: ``{"train"|"valid"|"test": [utt_id, ...]}`` (by sentence, shared by all voices).
        heldout: the voices marked as never to be trained on (a subset of ``voices``).
    """

    root: Path
    voices: tuple[str, ...]
    num_utterances: int
    duration_s: float
    splits: dict[str, list[str]]
    heldout: tuple[str, ...] = ()


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
    u = stable_fraction(utt_id)
    if u < test_fraction:
        return "test"
    if u < test_fraction + valid_fraction:
        return "valid"
    return "train"


# --------------------------------------------------------------------------------------------- writing


def _clean_text(text: str) -> str:
    """One line, no tabs: safe for the TSV manifest."""
    return " ".join(text.split())


_VARIANT_NOTE = """
Voices named <voice>-v<k> are derived from a flite voice: synthesised with stretched durations and a
changed pitch, then resampled faster, so that the spectrum (formants) moves by a scale factor and the
mean pitch changes (vqaudio.data.flite.VOICE_VARIANTS lists the factors).
"""

_ESPEAK_NOTE = """
Voices named <dialect>+<variant>[-s<speed>][-p<pitch>] are espeak-ng voices (http://espeak-ng.org,
Debian package `espeak-ng`): an English dialect, a voice variant, and a speed in words per minute
(default 175) and base pitch (0-99, default 50) when they differ from espeak-ng's defaults. Their phone
labels come from espeak-ng's phoneme events and use ESPEAK-NG'S PHONEME MNEMONICS (h @ l oU w 3: l d),
not flite's phone set (hh ax l ow w er l d): labels are consistent within each family, so analyse
codes vs phones for the flite and the espeak-ng voices separately, e.g. with a manifest of the espeak-ng
rows written next to this one: awk -F'\\t' '/^#/ || $2 ~ /[+]/' manifest.tsv > espeak.tsv
"""


def _paragraph(text: str) -> str:
    return textwrap.fill(" ".join(text.split()), width=100, break_on_hyphens=False) + "\n"


def _readme(
    plan: VoicePlan, num_sentences: int, sample_rate: int, fractions: tuple[float, float], many_voices: bool
) -> str:
    voices, heldout = plan.voices, plan.heldout
    if plan.train_per_voice is None and plan.heldout_train is None:
        who = "parallel (every voice says every sentence)"
    elif plan.heldout_train is None:
        who = (
            f"every voice says every valid and test sentence (parallel) and {plan.train_per_voice} "
            "training sentences chosen for it by a SHA-256 hash of (voice, sentence)"
        )
    else:
        seen = "all" if plan.train_per_voice is None else str(plan.train_per_voice)
        who = (
            f"every voice says every valid and test sentence (parallel); the voices trained on say {seen} "
            f"training sentences, the held-out voices {plan.heldout_train} (their reference clips), chosen "
            "for each voice by a SHA-256 hash of (voice, sentence)"
        )
    parts = [
        _paragraph(
            "Synthetic English speech made with flite (http://cmuflite.org) and/or espeak-ng from the CMU "
            f'ARCTIC "a" prompts (public domain): {num_sentences} sentences, {len(voices)} voices '
            f"({', '.join(voices)}); {who}. Phone labels come from the synthesisers themselves. Regenerate "
            "with vqaudio.data.demo.make_demo_corpus or `vqaudio demo-corpus` (re-runs skip finished files)."
        )
    ]
    if many_voices:
        parts.append(
            _paragraph(
                "This is the many-voice corpus (`vqaudio demo-corpus OUT --many-voices`): its voices and "
                "the held-out ones are fixed lists, vqaudio.data.demo_voices.MANY_VOICES and HELDOUT_VOICES."
            )
        )
    if any(split_variant(v)[1] for v in voices):
        parts.append(_VARIANT_NOTE.lstrip("\n"))
    if any(is_espeak_voice(v) for v in voices):
        parts.append(_ESPEAK_NOTE.lstrip("\n"))
    if heldout:
        parts.append(
            _paragraph(
                f"{len(heldout)} voices are held out, never to be trained on ({', '.join(heldout)}): "
                "manifest.tsv marks their rows `heldout` in its 5th column and "
                "splits/heldout_speakers.txt lists them."
            )
        )
    columns = "path<TAB>speaker<TAB>text<TAB>split" + ("<TAB>voices" if heldout else "")
    return f"""\
vqaudio demo corpus
===================

{chr(10).join(parts)}
Layout
  wavs/<voice>/<utt_id>.wav     mono 16-bit PCM, {sample_rate} Hz
  labels/<voice>/<utt_id>.tsv   start<TAB>end<TAB>phone, seconds (Audacity labels); silence is `pau`;
                                the last phone ends exactly at the end of the wav
  text/<utt_id>.txt             the prompt text
  splits/train.txt, valid.txt, test.txt
                                utterance ids; split by sentence from a SHA-256 hash of the id
                                (valid {fractions[0]:g}, test {fractions[1]:g}), identical for all voices
  splits/heldout_speakers.txt   the held-out voices, one a line (empty when there are none)
  manifest.tsv                  one "#" header line, then {columns}
                                (path relative to this folder, speaker = voice{
        "; voices: seen or heldout" if heldout else ""
    })
"""


# -------------------------------------------------------------------------------------------- building


def _check_arguments(
    num_sentences: int | None,
    num_prompts: int,
    sample_rate: int,
    jobs: int,
    valid_fraction: float,
    test_fraction: float,
) -> None:
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


def _check_voices(voices: Sequence[str], espeak: EspeakServers | None) -> str | None:
    """Check that the synthesisers have every voice; return flite's path when flite voices are used."""
    flite_names = [v for v in voices if not is_espeak_voice(v)]
    flite = None
    if flite_names:
        flite = check_flite()
        available = flite_voices(flite)
        missing = [v for v in flite_names if split_variant(v)[0] not in available]
        if missing:
            raise UserError(
                f"flite has no voice {', '.join(missing)}; available voices: {', '.join(available)}"
            )
    if espeak is not None:
        espeak.check([v for v in voices if is_espeak_voice(v)])
    return flite


def _synthesise(
    root: Path,
    tasks: list[tuple[str, str, str]],
    flite: str | None,
    espeak: EspeakServers | None,
    sample_rate: int,
    jobs: int,
    progress: Callable[[int, int], None] | None,
) -> dict[tuple[str, str], float]:
    """Make every (voice, utt_id, text) task's wav and labels in a pool of ``jobs`` threads."""
    durations: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory(prefix="vqaudio-tts-") as scratch, ThreadPoolExecutor(jobs) as pool:
        futures: dict[Future[float], tuple[str, str]] = {}
        for voice, utt_id, text in tasks:
            paths = (root / "wavs" / voice / f"{utt_id}.wav", root / "labels" / voice / f"{utt_id}.tsv")
            if is_espeak_voice(voice):
                assert espeak is not None
                future = pool.submit(
                    make_espeak_utterance, espeak, voice, text, *paths, sample_rate, Path(scratch)
                )
            else:
                assert flite is not None
                future = pool.submit(
                    make_flite_utterance, flite, voice, text, *paths, sample_rate, Path(scratch)
                )
            futures[future] = (voice, utt_id)
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
    return durations


def _synthesise_corpus(
    root: Path,
    voices: Sequence[str],
    prompts: list[tuple[str, str]],
    tasks: list[tuple[str, str, str]],
    sample_rate: int,
    jobs: int,
    progress: Callable[[int, int], None] | None,
) -> dict[tuple[str, str], float]:
    """Check the synthesisers have the ``voices``, make the folders, write ``text/<id>.txt`` and every
    task's wav and labels; the duration of each (voice, utt_id)."""
    with ExitStack() as stack:
        espeak = stack.enter_context(EspeakServers()) if any(map(is_espeak_voice, voices)) else None
        flite = _check_voices(voices, espeak)
        _make_folders(root, voices)
        for utt_id, text in prompts:
            atomic_write_text(root / "text" / f"{utt_id}.txt", text + "\n")
        return _synthesise(root, tasks, flite, espeak, sample_rate, jobs, progress)


def _tasks(
    plan: VoicePlan, prompts: list[tuple[str, str]], split_by_id: dict[str, str]
) -> list[tuple[str, str, str]]:
    """``(voice, utterance id, text)`` of every utterance to synthesise, voice by voice in prompt order."""
    texts = dict(prompts)
    order = [utt_id for utt_id, _ in prompts]
    return [
        (voice, utt_id, texts[utt_id])
        for voice in plan.voices
        for utt_id in voice_sentences(voice, split_by_id, plan.train_sentences(voice), order)
    ]


def _make_folders(root: Path, voices: Sequence[str]) -> None:
    """The corpus folders, cleared of the temporary files an interrupted run left."""
    for sub in ["text", "splits", *(f"{kind}/{v}" for kind in ("wavs", "labels") for v in voices)]:
        (root / sub).mkdir(parents=True, exist_ok=True)
        for stale in (root / sub).glob(".*.tmp*"):
            stale.unlink(missing_ok=True)


def _write_splits(
    root: Path, order: list[str], split_by_id: dict[str, str], heldout: tuple[str, ...]
) -> dict[str, list[str]]:
    """``splits/<split>.txt`` (sentence ids in prompt order) and ``splits/heldout_speakers.txt``."""
    splits = {name: [u for u in order if split_by_id[u] == name] for name in SPLITS}
    for name, ids in splits.items():
        atomic_write_text(root / "splits" / f"{name}.txt", "".join(f"{i}\n" for i in ids))
    atomic_write_text(root / "splits" / "heldout_speakers.txt", "".join(f"{v}\n" for v in heldout))
    return splits


def _write_manifest(
    root: Path, tasks: list[tuple[str, str, str]], split_by_id: dict[str, str], heldout: tuple[str, ...]
) -> None:
    """manifest.tsv: 4 columns, or 5 (``voices``: seen / heldout) when some voices are held out."""
    header = "# path\tspeaker\ttext\tsplit" + ("\tvoices" if heldout else "") + "\n"
    rows = [header]
    for voice, utt_id, text in tasks:
        extra = ("\theldout" if voice in heldout else "\tseen") if heldout else ""
        rows.append(
            f"wavs/{voice}/{utt_id}.wav\t{voice}\t{_clean_text(text)}\t{split_by_id[utt_id]}{extra}\n"
        )
    atomic_write_text(root / "manifest.tsv", "".join(rows))


def make_demo_corpus(
    out_dir: Path | str,
    *,
    voices: Sequence[str] | None = None,
    num_sentences: int | None = None,
    sample_rate: int = 16000,
    jobs: int = 2,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    variants: int = 0,
    heldout: Sequence[str] = (),
    sentences_per_voice: int | None = None,
    many_voices: bool = False,
    progress: Callable[[int, int], None] | None = None,
    heldout_sentences_per_voice: int | None = None,
) -> DemoCorpus:
    """Synthesise the demo corpus into ``out_dir`` (see the module docstring for the layout).

    Each (voice, sentence) pair is one synthesiser run in a thread pool of ``jobs`` workers. Re-running
    is cheap: utterances whose wav and labels already exist and are valid are skipped, every file is
    written atomically (temp file + ``os.replace``), and unchanged text files keep their mtime. The
    same arguments always give the same files (both synthesisers are deterministic).

    Args:
        out_dir: output directory (created).
        voices: flite voices (each in ``flite -lv``), derived flite voices ``<voice>-v<k>`` and espeak-ng
            voices ``<dialect>+<variant>[-s<wpm>][-p<pitch>]`` (:mod:`vqaudio.data.espeak`);
            ``None`` = :data:`DEMO_VOICES`.
        num_sentences: use the first N ARCTIC prompts; ``None`` = all 593.
        sample_rate: output rate; each synthesiser's own rate is read from its wav and resampled with
            soxr if needed.
        jobs: number of concurrent synthesiser processes.
        valid_fraction, test_fraction: expected share of sentences per split (hash based, so
            approximate; a small corpus may have empty valid/test splits).
        variants: also make this many derived voices ``<voice>-v1`` ... of every plain flite voice
            (pitch and vocal-tract-length changes, :data:`VOICE_VARIANTS`) as extra speakers.
        heldout: voices (after adding variants) marked as never to be trained on: the manifest gets a
            5th column ``voices`` (``seen``/``heldout``) and ``splits/heldout_speakers.txt`` lists them.
        sentences_per_voice: ``None`` = every voice says every sentence; N = every voice says every
            valid and test sentence plus N training sentences chosen for it by hash
            (:func:`vqaudio.data.demo_voices.voice_sentences`).
        many_voices: the many-voice corpus: :data:`~vqaudio.data.demo_voices.MANY_VOICES` with
            :data:`~vqaudio.data.demo_voices.HELDOUT_VOICES` held out and, unless given,
            :data:`~vqaudio.data.demo_voices.TRAIN_SENTENCES_PER_VOICE` training sentences per voice;
            ``voices``, ``variants`` and ``heldout`` must then be left unset.
        heldout_sentences_per_voice: training sentences of each held-out voice (never trained on: its
            reference clips for enrolment); ``None`` = as ``sentences_per_voice``.
        progress: called as ``progress(done, total)`` after each utterance, from the calling thread.

    Raises:
        UserError: flite or espeak-ng is missing, a voice is unknown, or an argument is out of range.
        SynthesisError: a synthesiser failed or its phone timings do not match its audio
            (:class:`~vqaudio.data.flite.FliteError`, :class:`~vqaudio.data.espeak.EspeakError`).
    """
    root = Path(out_dir)
    prompts = read_arctic_prompts()
    _check_arguments(num_sentences, len(prompts), sample_rate, jobs, valid_fraction, test_fraction)
    plan = plan_voices(
        voices, heldout, variants, sentences_per_voice, many_voices, heldout_sentences_per_voice
    )
    prompts = prompts[:num_sentences] if num_sentences is not None else prompts
    split_by_id = {utt_id: split_of(utt_id, valid_fraction, test_fraction) for utt_id, _ in prompts}
    tasks = _tasks(plan, prompts, split_by_id)
    durations = _synthesise_corpus(root, plan.voices, prompts, tasks, sample_rate, jobs, progress)
    splits = _write_splits(root, [utt_id for utt_id, _ in prompts], split_by_id, plan.heldout)
    _write_manifest(root, tasks, split_by_id, plan.heldout)
    readme = _readme(plan, len(prompts), sample_rate, (valid_fraction, test_fraction), many_voices)
    atomic_write_text(root / "README.txt", readme)
    return DemoCorpus(
        root=root,
        voices=plan.voices,
        num_utterances=len(tasks),
        duration_s=float(sum(durations.values())),
        splits=splits,
        heldout=plan.heldout,
    )
