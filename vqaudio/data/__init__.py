"""Corpora on disk, phone labels and their pairing with audio, train/validation splits, reproducible
training segments and their augmentation.

The names below are imported lazily, so ``import vqaudio.data.labels`` or ``vqaudio.data.corpora``
(numpy only) does not import torch; the dataset and augmentation modules do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vqaudio._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "vqaudio.data.augment": ("Augmented", "augment_batch"),
        "vqaudio.data.corpora": (
            "CORPUS_KINDS",
            "SpeakerInfo",
            "Utterance",
            "corpus_speaker_info",
            "is_heldout_voice",
            "read_vctk_speaker_info",
            "scan_corpus",
            "scan_folder",
            "scan_librispeech",
            "scan_ljspeech",
            "scan_manifest",
            "scan_vctk",
            "speaker_list",
            "split_utterances",
        ),
        "vqaudio.data.dataset": (
            "SegmentDataset",
            "StepBatchSampler",
            "collate",
            "crop_or_pad",
            "load_full",
            "validate_corpus",
        ),
        "vqaudio.data.demo": (
            "DEMO_VOICES",
            "DemoCorpus",
            "make_demo_corpus",
            "parse_psdur",
            "read_arctic_prompts",
        ),
        "vqaudio.data.labels": (
            "LABEL_FORMATS",
            "SILENCE",
            "SILENCE_LABELS",
            "TIMIT_39_PHONES",
            "TIMIT_61_TO_39",
            "PhoneIntervals",
            "normalise",
            "read_htk_lab",
            "read_labels",
            "read_textgrid",
            "read_timit_phn",
            "read_tsv_labels",
            "strip_stress",
        ),
        "vqaudio.data.pairing": ("LabelledUtterance", "find_pairs"),
    },
)

if TYPE_CHECKING:
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
    from vqaudio.data.labels import (
        LABEL_FORMATS,
        SILENCE,
        SILENCE_LABELS,
        TIMIT_39_PHONES,
        TIMIT_61_TO_39,
        PhoneIntervals,
        normalise,
        read_htk_lab,
        read_labels,
        read_textgrid,
        read_timit_phn,
        read_tsv_labels,
        strip_stress,
    )
    from vqaudio.data.pairing import LabelledUtterance, find_pairs

__all__ = [
    # augment
    "Augmented",
    "augment_batch",
    # corpora
    "CORPUS_KINDS",
    "SpeakerInfo",
    "Utterance",
    "corpus_speaker_info",
    "is_heldout_voice",
    "read_vctk_speaker_info",
    "scan_corpus",
    "scan_folder",
    "scan_librispeech",
    "scan_ljspeech",
    "scan_manifest",
    "scan_vctk",
    "speaker_list",
    "split_utterances",
    # dataset
    "SegmentDataset",
    "StepBatchSampler",
    "collate",
    "crop_or_pad",
    "load_full",
    "validate_corpus",
    # demo
    "DEMO_VOICES",
    "DemoCorpus",
    "make_demo_corpus",
    "parse_psdur",
    "read_arctic_prompts",
    # labels
    "LABEL_FORMATS",
    "SILENCE",
    "SILENCE_LABELS",
    "TIMIT_39_PHONES",
    "TIMIT_61_TO_39",
    "PhoneIntervals",
    "normalise",
    "read_htk_lab",
    "read_labels",
    "read_textgrid",
    "read_timit_phn",
    "read_tsv_labels",
    "strip_stress",
    # pairing
    "LabelledUtterance",
    "find_pairs",
]
