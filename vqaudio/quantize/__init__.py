"""Vector quantisation."""

from vqaudio.quantize.vq import CODEBOOK_TENSORS, QuantizerOutput, VectorQuantizer, grow_codebook, kmeans

__all__ = ["CODEBOOK_TENSORS", "QuantizerOutput", "VectorQuantizer", "grow_codebook", "kmeans"]
