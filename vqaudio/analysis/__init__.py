"""Analysis of codes against phones and speakers: frame targets, metrics and figures.

Pure measurements that need no model (numpy and scipy): nothing in this subpackage imports torch or
the training code, so it runs on saved codes alone. Label files are read by :mod:`vqaudio.data.labels`;
running a model over a corpus to get the codes is :mod:`vqaudio.eval`'s.
"""

from __future__ import annotations

# --- frame targets (frames.py) ---
from vqaudio.analysis.frames import check_coverage, label_frames

# --- metrics (metrics.py), the linear probe (probe.py) and figures (plots.py) ---
from vqaudio.analysis.metrics import (
    LevelAnalysis,
    PurityScores,
    UttCodes,
    analyze_level,
    cooccurrence,
    fit_mapping,
    majority_baseline,
    mapping_accuracy,
    perplexity_and_usage,
    purity_scores,
    random_code_baseline,
    run_lengths,
    speaker_probe,
    split_by_speaker,
)
from vqaudio.analysis.plots import plot_code_usage, plot_confusion, plot_cooccurrence, plot_durations
from vqaudio.analysis.probe import ConvergenceWarning, LogisticRegression, fit_logistic_regression

__all__ = [
    # frame targets
    "check_coverage",
    "label_frames",
    # metrics
    "LevelAnalysis",
    "PurityScores",
    "UttCodes",
    "analyze_level",
    "cooccurrence",
    "fit_mapping",
    "majority_baseline",
    "mapping_accuracy",
    "perplexity_and_usage",
    "purity_scores",
    "random_code_baseline",
    "run_lengths",
    "speaker_probe",
    "split_by_speaker",
    # the linear probe
    "ConvergenceWarning",
    "LogisticRegression",
    "fit_logistic_regression",
    # plots
    "plot_code_usage",
    "plot_confusion",
    "plot_cooccurrence",
    "plot_durations",
]
