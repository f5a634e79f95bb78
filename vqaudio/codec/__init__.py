"""Coding audio to files: the ``.vqa`` code stream (:mod:`vqaudio.codec.bitstream`) and entropy coding
of codes (:mod:`vqaudio.codec.entropy`); neither needs torch."""

from __future__ import annotations

from vqaudio.codec.bitstream import (
    MAX_CHUNK_BYTES,
    MAX_HEADER_BYTES,
    SUPPORTED_VERSIONS,
    VERSION,
    ChecksumError,
    LevelInfo,
    StreamError,
    StreamHeader,
    StreamReader,
    StreamWriter,
    decode_stream,
    encode_stream,
    pack_codes,
    read_header,
    unpack_codes,
)
from vqaudio.codec.entropy import MODELS, EntropyError, FrequencyTable, decode_codes, encode_codes

__all__ = [
    "MODELS",
    "EntropyError",
    "FrequencyTable",
    "decode_codes",
    "encode_codes",
    "MAX_CHUNK_BYTES",
    "MAX_HEADER_BYTES",
    "SUPPORTED_VERSIONS",
    "VERSION",
    "ChecksumError",
    "LevelInfo",
    "StreamError",
    "StreamHeader",
    "StreamReader",
    "StreamWriter",
    "decode_stream",
    "encode_stream",
    "pack_codes",
    "read_header",
    "unpack_codes",
]
