"""Vector quantisation."""

from vqaudio.quantize.vq import QuantizerOutput, VectorQuantizer, kmeans

__all__ = ["QuantizerOutput", "VectorQuantizer", "kmeans"]
