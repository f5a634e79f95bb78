"""The one stable hash behind every split and ranking: corpus train/validation splits
(:mod:`vqaudio.data.corpora`), the demo corpus's sentence splits and per-voice sentences
(:mod:`vqaudio.data.demo`), and the analysis train/test halves (:mod:`vqaudio.analysis.metrics`).

SHA-256 of a string key: the same on every machine and Python run (unlike the salted :func:`hash`), and
independent of which other keys exist. Standard library only, so the numpy-only analysis can use it.
"""

from __future__ import annotations

import hashlib

__all__ = ["stable_digest", "stable_fraction"]


def stable_digest(key: str) -> bytes:
    """SHA-256 of ``key`` (UTF-8)."""
    return hashlib.sha256(key.encode("utf-8")).digest()


def stable_fraction(key: str) -> float:
    """:func:`stable_digest` of ``key`` read as a number in ``[0, 1)`` (its first 8 bytes, big-endian)."""
    return int.from_bytes(stable_digest(key)[:8], "big") / 2.0**64
