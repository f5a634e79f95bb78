"""The demo corpus's voices: the default four, the many-voice set and its held-out voices, voice
families, and which sentences each voice says.

By default the demo corpus is :data:`DEMO_VOICES`, every voice saying every sentence.
``vqaudio demo-corpus OUT --many-voices`` speaks the CMU ARCTIC prompts with :data:`MANY_VOICES`:
68 voices from three families,

- ``flite``: flite's four voices (kal16, awb, rms, slt),
- ``flite-derived``: their six derived voices each (``<voice>-v<k>``: pitch and vocal-tract length,
  :data:`vqaudio.data.flite.VOICE_VARIANTS`),
- ``espeak``: espeak-ng's eight English dialects x five voice variants each, some at another speed
  or pitch (``<dialect>+<variant>[-s<wpm>][-p<pitch>]``, :mod:`vqaudio.data.espeak`).

:data:`HELDOUT_VOICES` (8 of them: 2 flite-derived, 6 espeak) are never trained on: the manifest marks
them ``heldout`` and :func:`vqaudio.data.split_utterances` keeps them out of train and valid. The
espeak ones use variants that no training voice uses (m7, f4, michel, david, steph, Andrea), so they are
new timbres in known dialects. The choice is fixed here, never drawn at run time.

Not every voice says every sentence (that would be 40k files): every voice says every valid and test
sentence (parallel data for conversion scoring), plus :data:`TRAIN_SENTENCES_PER_VOICE` training
sentences chosen per voice by a SHA-256 hash of (voice, sentence), so that different voices say
different training sentences and together cover all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vqaudio.data.espeak import is_espeak_voice, parse_espeak_voice
from vqaudio.data.flite import VOICE_VARIANTS, split_variant
from vqaudio.errors import UserError
from vqaudio.hashing import stable_digest

__all__ = [
    "DEMO_VOICES",
    "HELDOUT_VOICES",
    "MANY_VOICES",
    "TRAIN_SENTENCES_PER_VOICE",
    "VoicePlan",
    "plan_voices",
    "voice_family",
    "voice_sentences",
]

DEMO_VOICES: tuple[str, ...] = ("kal16", "awb", "rms", "slt")
"""flite's built-in voices used by default: kal16 (diphone, US male), awb (Scottish male),
rms (US male), slt (US female); the last three are clustergen voices."""

_ESPEAK_VOICES: tuple[str, ...] = (
    # US English (espeak-ng `en-us`)
    "en-us+m1", "en-us+f1", "en-us+m3-s190", "en-us+klatt", "en-us+m7",
    # British English (`en-gb`)
    "en-gb+m2", "en-gb+f2", "en-gb+Denis-s160", "en-gb+grandma", "en-gb+f4",
    # Scottish English (`en-gb-scotland`)
    "en-gb-scotland+m5", "en-gb-scotland+f3-p60", "en-gb-scotland+Lee", "en-gb-scotland+aunty-s165",
    "en-gb-scotland+michel",
    # Received Pronunciation (`en-gb-x-rp`)
    "en-gb-x-rp+m4", "en-gb-x-rp+f5", "en-gb-x-rp+Alex-s185", "en-gb-x-rp+linda", "en-gb-x-rp+david",
    # Lancastrian (`en-gb-x-gbclan`)
    "en-gb-x-gbclan+m6-p40", "en-gb-x-gbclan+Annie", "en-gb-x-gbclan+max", "en-gb-x-gbclan+shelby-s190",
    "en-gb-x-gbclan+adam",
    # West Midlands (`en-gb-x-gbcwmd`)
    "en-gb-x-gbcwmd+m8-s160", "en-gb-x-gbcwmd+f1-p65", "en-gb-x-gbcwmd+boris", "en-gb-x-gbcwmd+Alicia",
    "en-gb-x-gbcwmd+marcelo",
    # Caribbean (`en-029`)
    "en-029+Nguyen", "en-029+f2-s180", "en-029+travis", "en-029+zac", "en-029+steph",
    # New York City (`en-us-nyc`)
    "en-us-nyc+Mike-s190", "en-us-nyc+anika", "en-us-nyc+victor", "en-us-nyc+quincy", "en-us-nyc+Andrea-s160",
)  # fmt: skip

MANY_VOICES: tuple[str, ...] = (
    *DEMO_VOICES,  # flite
    *(f"{v}-v{k}" for v in DEMO_VOICES for k in range(1, len(VOICE_VARIANTS) + 1)),  # flite-derived
    *_ESPEAK_VOICES,  # espeak
)
"""The 68 voices of the many-voice corpus, in corpus order (see the module docstring)."""

HELDOUT_VOICES: tuple[str, ...] = (
    "awb-v3",
    "slt-v5",
    "en-us+m7",
    "en-gb+f4",
    "en-gb-scotland+michel",
    "en-gb-x-rp+david",
    "en-029+steph",
    "en-us-nyc+Andrea-s160",
)
"""Voices never trained on (2 flite-derived + 6 espeak; 4 male, 4 female-sounding)."""

TRAIN_SENTENCES_PER_VOICE = 60
"""Default number of training sentences each voice of the many-voice corpus says."""


def voice_family(name: str) -> str:
    """``"espeak"``, ``"flite-derived"`` or ``"flite"`` for a corpus voice name."""
    if is_espeak_voice(name):
        return "espeak"
    return "flite-derived" if split_variant(name)[1] is not None else "flite"


def _rank(voice: str, utt_id: str) -> bytes:
    return stable_digest(f"{voice}\t{utt_id}")


def voice_sentences(
    voice: str, splits: dict[str, str], train_per_voice: int | None, order: Sequence[str]
) -> list[str]:
    """The sentences ``voice`` says: every non-train sentence plus ``train_per_voice`` training ones.

    Args:
        voice: the voice (= speaker) name; it seeds the choice of training sentences.
        splits: ``{utt_id: "train"|"valid"|"test"}`` for every sentence of the corpus.
        train_per_voice: how many training sentences, chosen by SHA-256 of ``voice<TAB>utt_id``
            (all of them when there are fewer); ``None`` = every sentence.
        order: every ``utt_id`` in corpus order; the result follows it.

    Returns:
        ``[utt_id, ...]`` in corpus order; depends only on the arguments (deterministic).
    """
    if train_per_voice is None:
        return list(order)
    train = sorted((u for u in order if splits[u] == "train"), key=lambda u: _rank(voice, u))
    chosen = set(train[:train_per_voice])
    return [u for u in order if splits[u] != "train" or u in chosen]


@dataclass(frozen=True)
class VoicePlan:
    """The voices of a corpus (variants added), those held out, and training sentences per voice
    (``None`` = every voice says every sentence); ``heldout_train``, when set, is the held-out voices'
    own number (they are never trained on: a few training sentences are their reference clips)."""

    voices: tuple[str, ...]
    heldout: tuple[str, ...]
    train_per_voice: int | None
    heldout_train: int | None = None

    def train_sentences(self, voice: str) -> int | None:
        """How many training sentences ``voice`` says (``None`` = all)."""
        if voice in self.heldout and self.heldout_train is not None:
            return self.heldout_train
        return self.train_per_voice


def _as_tuple(names: Sequence[str]) -> tuple[str, ...]:
    return (names,) if isinstance(names, str) else tuple(names)


def plan_voices(
    voices: Sequence[str] | None = None,
    heldout: Sequence[str] = (),
    variants: int = 0,
    sentences_per_voice: int | None = None,
    many_voices: bool = False,
    heldout_sentences_per_voice: int | None = None,
) -> VoicePlan:
    """Resolve :func:`vqaudio.data.demo.make_demo_corpus`'s voice options and check them.

    ``voices=None`` is :data:`DEMO_VOICES`; ``variants=k`` adds ``<voice>-v1`` ... ``-v<k>`` of every
    plain flite voice; ``many_voices`` means :data:`MANY_VOICES` with :data:`HELDOUT_VOICES` held out
    and :data:`TRAIN_SENTENCES_PER_VOICE` training sentences per voice unless ``sentences_per_voice``
    is given; ``heldout_sentences_per_voice`` is the held-out voices' own number of training sentences.
    Whether the synthesisers know the voices is checked later, by the synthesisers.

    Raises:
        UserError: voices given with ``many_voices``, no or repeated voices, a malformed espeak-ng voice
            name, ``variants`` or ``sentences_per_voice`` out of range, or a held-out voice that is not
            in the corpus.
    """
    if many_voices:
        if voices is not None or heldout or variants:
            raise UserError(
                "the many-voice mode has its own voices: give no voices, held-out voices or variants"
            )
        voices, heldout = MANY_VOICES, HELDOUT_VOICES
        if sentences_per_voice is None:
            sentences_per_voice = TRAIN_SENTENCES_PER_VOICE
    voice_tuple = DEMO_VOICES if voices is None else _as_tuple(voices)
    if not voice_tuple:
        raise UserError("no voices given")
    if not 0 <= variants <= len(VOICE_VARIANTS):
        raise UserError(f"variants must be between 0 and {len(VOICE_VARIANTS)}, got {variants}")
    for name, value in (
        ("sentences_per_voice", sentences_per_voice),
        ("heldout_sentences_per_voice", heldout_sentences_per_voice),
    ):
        if value is not None and value < 0:
            raise UserError(f"{name} must be >= 0, got {value}")
    bases = [v for v in voice_tuple if voice_family(v) == "flite"]
    voice_tuple += tuple(f"{v}-v{k}" for v in bases for k in range(1, variants + 1))
    if len(set(voice_tuple)) != len(voice_tuple):
        raise UserError(f"repeated voice in {', '.join(voice_tuple)}")
    for name in voice_tuple:
        if is_espeak_voice(name):
            parse_espeak_voice(name)  # the name's syntax; espeak-ng itself checks the voice exists
    held = _as_tuple(heldout)
    unknown = [v for v in held if v not in voice_tuple]
    if unknown:
        raise UserError(f"held-out voice {', '.join(unknown)} is not one of the corpus's voices")
    if heldout_sentences_per_voice is not None and not held:
        raise UserError("heldout_sentences_per_voice needs held-out voices")
    held_voices = tuple(v for v in voice_tuple if v in held)
    return VoicePlan(voice_tuple, held_voices, sentences_per_voice, heldout_sentences_per_voice)
