"""Regenerate tests/data/golden_v1.vqa (only when the format version changes on purpose).

    python tests/make_golden.py

The stream holds fixed codes (no model involved), so it pins the byte layout of format version 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vqaudio.codec.bitstream import LevelInfo, StreamHeader, encode_stream

HERE = Path(__file__).parent / "data"


def golden() -> tuple[StreamHeader, list[np.ndarray]]:
    header = StreamHeader(
        model_sha256="0123456789abcdef" * 4,
        sample_rate=16000,
        num_samples=1000,
        levels=(LevelInfo(0, 80, 1024), LevelInfo(2, 320, 5)),
        chunk_samples=640,
        speaker="p226",
        coding="packed",
        extra={"source_sample_rate": 48000, "source_num_samples": 3000, "source_channels": 2},
    )
    codes = [np.arange(13, dtype=np.int64) * 77 % 1024, np.array([0, 4, 1, 3], dtype=np.int64)]
    return header, codes


if __name__ == "__main__":
    header, codes = golden()
    (HERE / "golden_v1.vqa").write_bytes(encode_stream(header, codes))
    (HERE / "golden_v1.json").write_text(
        json.dumps({"header": json.loads(header.to_json()), "codes": [c.tolist() for c in codes]}, indent=1)
        + "\n"
    )
