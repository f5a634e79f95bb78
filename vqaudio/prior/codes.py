"""A corpus encoded by a VQ-VAE, kept on disk: what a prior trains and is evaluated on.

:func:`encode_corpus` runs the model over utterances (chunked, bounded memory) and returns a
:class:`CodeSet`; :func:`save_codes` / :func:`load_codes` store one as a single safetensors file (every
level's codes concatenated as int16/int32, with per-utterance offsets) whose JSON metadata names the
model (:func:`~vqaudio.codec.compress.model_fingerprint`), the levels and every utterance.
:func:`cached_codes` encodes once: a second run, or a resumed one, finds the file of the same model and
the same utterances and reads it instead.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file

from vqaudio.audio import atomic_write, read_audio
from vqaudio.codec.compress import encode_audio, model_fingerprint
from vqaudio.data.corpora import Utterance, split_utterances
from vqaudio.errors import UserError
from vqaudio.models import VQVAE

__all__ = [
    "CODES_SCHEMA",
    "CodeSet",
    "cached_codes",
    "default_cache_dir",
    "encode_corpus",
    "load_codes",
    "prior_split",
    "save_codes",
]

CODES_SCHEMA = 1
_META_KEY = "vqaudio_codes"


@dataclass
class CodeSet:
    """Codes of a list of utterances at some levels of one model.

    ``codes[level][i]`` is utterance ``i``'s code array ``[frames]`` (int64) at ``level``;
    ``codebook_sizes[level]`` its K; ``model_id`` the model's fingerprint (SHA-256 hex)."""

    model_id: str
    levels: tuple[int, ...]
    codebook_sizes: dict[int, int]
    utt_ids: list[str]
    speakers: list[str]
    heldout: list[bool]
    codes: dict[int, list[np.ndarray]]

    def __len__(self) -> int:
        return len(self.utt_ids)

    def select(self, keep: Sequence[int]) -> CodeSet:
        """The utterances at indices ``keep``, in that order."""
        return CodeSet(
            self.model_id,
            self.levels,
            self.codebook_sizes,
            [self.utt_ids[i] for i in keep],
            [self.speakers[i] for i in keep],
            [self.heldout[i] for i in keep],
            {lv: [c[i] for i in keep] for lv, c in self.codes.items()},
        )


def utterances_digest(utts: Sequence[Utterance]) -> str:
    """SHA-256 of the utterance list (ids, speakers, held-out marks, paths, file sizes and mtimes): a
    cache made from other or changed files is not reused."""
    h = hashlib.sha256()
    for u in utts:
        st = u.path.stat()
        h.update(
            f"{u.utt_id}\t{u.speaker}\t{int(u.heldout)}\t{u.path}\t{st.st_size}\t{st.st_mtime_ns}\n".encode()
        )
    return h.hexdigest()


@torch.no_grad()
def encode_corpus(
    model: VQVAE,
    utts: Sequence[Utterance],
    levels: Sequence[int],
    progress: Callable[[int, int], None] | None = None,
) -> CodeSet:
    """Every utterance's codes at ``levels`` (each level encoded as :func:`encode_audio` does)."""
    checked = sorted({model.check_level(lv) for lv in levels})
    codes: dict[int, list[np.ndarray]] = {lv: [] for lv in checked}
    for i, u in enumerate(utts):
        wav = read_audio(u.path, model.sample_rate)
        for lv in checked:
            codes[lv].append(encode_audio(model, wav, model.sample_rate, level=lv).astype(np.int64))
        if progress is not None:
            progress(i + 1, len(utts))
    return CodeSet(
        model_fingerprint(model),
        tuple(checked),
        {lv: model.config.levels[lv].codebook_size for lv in checked},
        [u.utt_id for u in utts],
        [u.speaker for u in utts],
        [u.heldout for u in utts],
        codes,
    )


def save_codes(path: str | Path, codes: CodeSet, extra: dict[str, str] | None = None) -> None:
    """Write ``codes`` atomically to ``path`` (a ``.safetensors`` file)."""
    tensors: dict[str, np.ndarray] = {}
    for lv in codes.levels:
        parts = codes.codes[lv]
        dtype = np.int16 if codes.codebook_sizes[lv] <= 1 << 15 else np.int32
        tensors[f"codes.{lv}"] = np.concatenate([np.zeros(0, dtype), *(p.astype(dtype) for p in parts)])
        tensors[f"offsets.{lv}"] = np.concatenate([[0], np.cumsum([p.size for p in parts])]).astype(np.int64)
    meta = {
        "schema": CODES_SCHEMA,
        "model_id": codes.model_id,
        "levels": list(codes.levels),
        "codebook_sizes": {str(k): v for k, v in codes.codebook_sizes.items()},
        "utt_ids": codes.utt_ids,
        "speakers": codes.speakers,
        "heldout": codes.heldout,
        "extra": extra or {},
    }
    with atomic_write(Path(path)) as tmp:
        save_file(tensors, str(tmp), metadata={_META_KEY: json.dumps(meta)})


def _metadata(path: Path) -> dict[str, Any]:
    with safe_open(str(path), framework="np") as f:
        raw = (f.metadata() or {}).get(_META_KEY)
    if raw is None:
        raise UserError(f"{path}: not a vqaudio code set (no metadata)")
    meta = json.loads(raw)
    if meta.get("schema") != CODES_SCHEMA:
        raise UserError(f"{path}: code set schema {meta.get('schema')} (this vqaudio reads {CODES_SCHEMA})")
    return meta


def load_codes(path: str | Path) -> tuple[CodeSet, dict[str, str]]:
    """A code set written by :func:`save_codes` and its ``extra``; a damaged file is a :class:`UserError`."""
    p = Path(path)
    try:
        meta = _metadata(p)
        tensors = load_file(str(p))
        n = len(meta["utt_ids"])
        codes = {}
        for lv in meta["levels"]:
            flat, offsets = tensors[f"codes.{lv}"].astype(np.int64), tensors[f"offsets.{lv}"]
            if (
                offsets.shape != (n + 1,)
                or offsets[0] != 0
                or offsets[-1] != flat.size
                or np.any(np.diff(offsets) < 0)
            ):
                raise ValueError(f"offsets of level {lv} do not fit its codes")
            if flat.size and (flat.min() < 0 or flat.max() >= meta["codebook_sizes"][str(lv)]):
                raise ValueError(f"codes of level {lv} out of range")
            codes[int(lv)] = [flat[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
        result = CodeSet(
            meta["model_id"],
            tuple(int(lv) for lv in meta["levels"]),
            {int(k): int(v) for k, v in meta["codebook_sizes"].items()},
            list(meta["utt_ids"]),
            list(meta["speakers"]),
            [bool(x) for x in meta["heldout"]],
            codes,
        )
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"{p}: cannot read this code set ({err})") from None
    if not len(result.speakers) == len(result.heldout) == len(result):
        raise UserError(f"{p}: cannot read this code set (lists of different lengths)")
    return result, meta.get("extra", {})


def cached_codes(
    model: VQVAE,
    utts: Sequence[Utterance],
    levels: Sequence[int],
    cache_dir: str | Path,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[CodeSet, bool]:
    """The codes of ``utts`` at ``levels``, from ``cache_dir`` when a file there was made by this model
    from these utterances, else encoded and stored there. Returns them and whether the cache was used."""
    fingerprint = model_fingerprint(model)
    digest = utterances_digest(utts)
    name = f"codes-{fingerprint[:16]}-L{'_'.join(map(str, sorted(set(levels))))}-{digest[:16]}.safetensors"
    path = Path(cache_dir) / name
    if path.is_file():
        found, extra = load_codes(path)
        if found.model_id == fingerprint and extra.get("utterances") == digest:
            return found, True
    try:  # before the minutes of encoding
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(
            f"{cache_dir}: cannot hold the code cache ({err.strerror}); "
            "set data.cache_dir to a writable folder"
        ) from None
    codes = encode_corpus(model, utts, levels, progress)
    try:
        save_codes(path, codes, {"utterances": digest})
    except OSError as err:
        raise UserError(f"{path}: cannot write the code cache ({err.strerror})") from None
    return codes, False


def default_cache_dir() -> Path:
    """Where encoded corpora are kept unless a prior's ``data.cache_dir`` says otherwise:
    ``$XDG_CACHE_HOME/vqaudio/codes``, else ``~/.cache/vqaudio/codes``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vqaudio" / "codes"


def prior_split(
    utts: Sequence[Utterance], valid_per_speaker: int, seed: int
) -> tuple[list[Utterance], list[Utterance]]:
    """A prior's ``(train, valid)``: the seen voices' train and validation splits
    (:func:`~vqaudio.data.corpora.split_utterances`), and after them, in ``valid``, the held-out voices'
    validation split by the same ranking (still marked ``heldout``). Held-out voices never train."""
    train, valid = split_utterances(utts, valid_per_speaker, seed)
    held = [dataclasses.replace(u, heldout=False) for u in utts if u.heldout]
    held_valid = split_utterances(held, valid_per_speaker, seed)[1]
    return train, [*valid, *(dataclasses.replace(u, heldout=True) for u in held_valid)]
