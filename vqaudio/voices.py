"""Voices enrolled from reference audio, kept in a small JSON sidecar next to a model.

``vqaudio enroll REF.wav... --name NAME --model M`` embeds the clips with the model's speaker
encoder and stores the mean embedding under ``NAME``; the checkpoint itself is never modified.
The sidecar of a run directory is ``RUN/voices.json``; of a checkpoint file ``X.safetensors`` it is
``X.voices.json``; of a model shipped in the package (whose folder is not the user's to write) it is
``$XDG_DATA_HOME/vqaudio/voices/NAME-SHA12.voices.json`` (``~/.local/share`` without XDG_DATA_HOME), so
a newer shipped model starts with no voices.  Each sidecar records the model's SHA-256 and is refused
by another model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from vqaudio.audio import atomic_write, read_audio
from vqaudio.checkpoint import model_sha256
from vqaudio.errors import AudioError, UserError
from vqaudio.models import VQVAE
from vqaudio.pretrained import shipped_name
from vqaudio.runlayout import RunLayout

__all__ = ["voices_path", "load_voices", "enroll", "resolve_speaker", "reference_embedding"]

_FORMAT = "vqaudio-voices"
_VERSION = 1


def voices_path(model_path: str | Path, sha256: str) -> Path:
    """Where the voices of the model at ``model_path`` (weights SHA-256 ``sha256``) are kept."""
    p = Path(model_path)
    name = shipped_name(p)
    if name is not None:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
        return base / "vqaudio" / "voices" / f"{name}-{sha256[:12]}.voices.json"
    return RunLayout(p).voices if p.is_dir() else p.with_suffix(".voices.json")


def load_voices(model: VQVAE, model_path: str | Path) -> dict[str, torch.Tensor]:
    """Enrolled voices for this model (empty when there is no sidecar)."""
    path = voices_path(model_path, model_sha256(model))
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != _FORMAT or int(data.get("version", 0)) > _VERSION:
            raise ValueError("not a voices file of a version this vqaudio understands")
        if data.get("model_sha256") != model_sha256(model):
            raise UserError(f"{path}: its voices were enrolled with another model")
        dim = model.config.speaker_dim
        voices = {}
        for name, v in data["voices"].items():
            emb = torch.tensor(v["embedding"], dtype=torch.float32)
            if emb.shape != (dim,) or not torch.isfinite(emb).all():
                raise ValueError(f"voice {name!r} has a bad embedding")
            voices[str(name)] = emb
        return voices
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise UserError(f"{path}: unreadable voices file ({err})") from None


def reference_embedding(model: VQVAE, references: list[Path]) -> torch.Tensor:
    """Mean speaker-encoder embedding of reference clips (any rate, any channels, at least one)."""
    if not references:
        raise UserError("give at least one reference clip")
    clips = []
    for ref in references:
        wav = read_audio(ref, model.sample_rate)
        if wav.size < model.sample_rate // 10:
            raise AudioError(
                f"{ref}: reference too short ({wav.size / model.sample_rate:.2f} s; need >= 0.1 s)"
            )
        clips.append(torch.from_numpy(wav))
    return model.embed_reference(clips)


def enroll(
    model: VQVAE, model_path: str | Path, name: str, references: list[Path], replace: bool = False
) -> Path:
    """Embed ``references`` and store the voice as ``name`` in the model's sidecar; returns its path.
    An enrolled voice of that name is replaced only when ``replace`` is set."""
    if not name or name.strip() != name or "\t" in name:
        raise UserError(f"bad voice name {name!r}")
    if name in model.speakers:
        raise UserError(f"'{name}' is already a training speaker of this model; pick another name")
    enrolled = load_voices(model, model_path)  # refuses a sidecar of another model before any work
    if name in enrolled and not replace:
        raise UserError(f"'{name}' is already enrolled for this model (use --force to replace it)")
    emb = reference_embedding(model, references)
    path = voices_path(model_path, model_sha256(model))
    previous = json.loads(path.read_text(encoding="utf-8"))["voices"] if path.is_file() else {}
    entry = {"embedding": [round(float(v), 7) for v in emb], "references": [str(r) for r in references]}
    data = {
        "format": _FORMAT,
        "version": _VERSION,
        "model_sha256": model_sha256(model),
        "voices": {**previous, name: entry},
    }
    if shipped_name(model_path) is not None:
        path.parent.mkdir(parents=True, exist_ok=True)  # the user's data folder, on first enrolment
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return path


def resolve_speaker(model: VQVAE, model_path: str | Path, speaker: str) -> str | torch.Tensor:
    """A training speaker's name as is, or an enrolled voice's embedding; unknown names list close ones."""
    if speaker in model.speakers:
        return speaker
    voices = load_voices(model, model_path)
    if speaker in voices:
        return voices[speaker]
    import difflib

    close = difflib.get_close_matches(speaker, [*model.speakers, *voices], n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UserError(
        f"unknown speaker '{speaker}' ({len(model.speakers)} trained, {len(voices)} enrolled){hint}"
    )
