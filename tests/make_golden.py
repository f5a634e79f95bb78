"""Regenerate tests/data/golden_v1.vqa and golden_v2.vqa (only when a format changes on purpose).

    python tests/make_golden.py

The streams hold fixed codes (no model involved), so they pin the byte layout of format versions 1 and
2; the JSON files beside them hold the expected header and codes.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from vqaudio.codec.bitstream import LevelInfo, StreamHeader, encode_stream

HERE = Path(__file__).parent / "data"


def golden(version: int) -> tuple[StreamHeader, list[np.ndarray]]:
    header = StreamHeader(
        model_id="0123456789abcdef" * (4 if version == 1 else 1),
        sample_rate=16000,
        num_samples=1000,
        levels=(LevelInfo(0, 80, 1024), LevelInfo(2, 320, 5)),
        chunk_samples=640,
        speaker="p226",
        coding="packed",
        extra={"source_sample_rate": 48000, "source_num_samples": 3000, "source_channels": 2},
        version=version,
    )
    codes = [np.arange(13, dtype=np.int64) * 77 % 1024, np.array([0, 4, 1, 3], dtype=np.int64)]
    return header, codes


def header_fields(header: StreamHeader) -> dict[str, Any]:
    """The header as JSON-able fields (version 1's file keeps its own JSON header instead)."""
    return json.loads(json.dumps(dataclasses.asdict(header)))


if __name__ == "__main__":
    for version in (1, 2):
        header, codes = golden(version)
        (HERE / f"golden_v{version}.vqa").write_bytes(encode_stream(header, codes))
        fields = json.loads(header.to_json()) if version == 1 else header_fields(header)
        (HERE / f"golden_v{version}.json").write_text(
            json.dumps({"header": fields, "codes": [c.tolist() for c in codes]}, indent=1) + "\n"
        )
