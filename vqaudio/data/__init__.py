"""Corpora on disk, train/validation splits, reproducible training segments and their augmentation."""

from __future__ import annotations

from vqaudio.data.augment import Augmented, augment_batch
from vqaudio.data.corpora import (
    CORPUS_KINDS,
    SpeakerInfo,
    Utterance,
    corpus_speaker_info,
    is_heldout_voice,
    read_vctk_speaker_info,
    scan_corpus,
    scan_folder,
    scan_librispeech,
    scan_ljspeech,
    scan_manifest,
    scan_vctk,
    speaker_list,
    split_utterances,
)
from vqaudio.data.dataset import (
    SegmentDataset,
    StepBatchSampler,
    collate,
    crop_or_pad,
    load_full,
    validate_corpus,
)
from vqaudio.data.demo import DEMO_VOICES, DemoCorpus, make_demo_corpus, parse_psdur, read_arctic_prompts

__all__ = [
    "is_heldout_voice",
    "Augmented",
    "augment_batch",
    "DEMO_VOICES",
    "DemoCorpus",
    "make_demo_corpus",
    "parse_psdur",
    "read_arctic_prompts",
    "CORPUS_KINDS",
    "SegmentDataset",
    "SpeakerInfo",
    "StepBatchSampler",
    "Utterance",
    "collate",
    "crop_or_pad",
    "load_full",
    "corpus_speaker_info",
    "read_vctk_speaker_info",
    "scan_corpus",
    "scan_folder",
    "scan_librispeech",
    "scan_ljspeech",
    "scan_manifest",
    "scan_vctk",
    "speaker_list",
    "split_utterances",
    "validate_corpus",
]
