"""Figures for the codes-vs-phones analysis (:mod:`vqaudio.analysis.metrics`), written as PNG files.

Uses ``matplotlib.figure.Figure`` with the Agg canvas directly (no pyplot, no global backend switch), so
it is safe in a headless process and never opens a window. Each function writes its PNG atomically (to a
temporary file in the same folder, then ``os.replace``) and returns the path.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vqaudio.audio import atomic_write

__all__ = ["plot_code_usage", "plot_confusion", "plot_cooccurrence", "plot_durations"]


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Write ``fig`` to ``path`` as PNG atomically (temporary file beside it, then ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return path


def _phone_ticks(ax: Axes, names: Sequence[str], axis: str) -> None:
    """Label every phone when there are few enough to read (<= 80)."""
    if len(names) > 80:
        return
    positions = np.arange(len(names))
    if axis == "y":
        ax.set_yticks(positions, list(names), fontsize=6)
    else:
        ax.set_xticks(positions, list(names), fontsize=6, rotation=90)


def plot_cooccurrence(
    joint: np.ndarray,
    phone_names: Sequence[str],
    path: str | os.PathLike[str],
    max_codes: int = 256,
) -> Path:
    """Heatmap of ``p(phone | code)`` from a joint count table ``[num_phones, num_codes]``.

    Phones on y; used codes on x, grouped by their majority phone (in phone order) and, within a group, by
    decreasing count, so a phonetic code book shows a staircase down the diagonal. With more than
    ``max_codes`` used codes, only the ``max_codes`` most frequent are drawn.
    """
    joint = np.asarray(joint, dtype=np.float64)
    counts = joint.sum(axis=0)
    used = np.flatnonzero(counts > 0)
    if used.size > max_codes:
        used = used[np.argsort(-counts[used], kind="stable")[:max_codes]]
    majority = np.argmax(joint[:, used], axis=0)
    order = used[np.lexsort((-counts[used], majority))]
    cond = joint[:, order] / np.maximum(counts[order], 1.0)

    fig = Figure(figsize=(10, max(3.0, 0.14 * joint.shape[0] + 1.5)))
    ax = fig.add_subplot()
    image = ax.imshow(cond, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="p(phone | code)")
    _phone_ticks(ax, phone_names, "y")
    shown = f"{order.size} of {int((counts > 0).sum())} used codes"
    ax.set_xlabel(f"code, grouped by majority phone ({shown})")
    ax.set_ylabel("phone")
    fig.tight_layout()
    return _save(fig, path)


def plot_confusion(
    mapping: np.ndarray,
    codes: np.ndarray,
    phones: np.ndarray,
    phone_names: Sequence[str],
    path: str | os.PathLike[str],
) -> Path:
    """Row-normalised confusion matrix (true phone x phone predicted by ``mapping[code]``), phone -1 ignored.

    ``codes`` and ``phones`` ``[T]`` are typically the held-out frames the mapping is scored on.
    """
    codes, phones = np.asarray(codes, dtype=np.int64), np.asarray(phones, dtype=np.int64)
    keep = phones >= 0
    num = len(phone_names)
    predicted = np.asarray(mapping, dtype=np.int64)[codes[keep]]
    confusion = np.bincount(phones[keep] * num + predicted, minlength=num * num).reshape(num, num)
    rows = confusion.sum(axis=1, keepdims=True)
    normalised = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)

    fig = Figure(figsize=(8, 7))
    ax = fig.add_subplot()
    image = ax.imshow(normalised, interpolation="nearest", cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="fraction of the true phone's frames")
    _phone_ticks(ax, phone_names, "y")
    _phone_ticks(ax, phone_names, "x")
    accuracy = np.trace(confusion) / max(int(keep.sum()), 1)
    ax.set_title(f"many-to-one mapping, frame accuracy {accuracy:.1%}")
    ax.set_xlabel("mapped phone")
    ax.set_ylabel("true phone")
    fig.tight_layout()
    return _save(fig, path)


def plot_code_usage(counts_per_level: dict[str, np.ndarray], path: str | os.PathLike[str]) -> Path:
    """Code usage per level: the frequency of each code ``[K]``, sorted in decreasing order (log y).

    The legend gives each level's perplexity and the number of codes used out of K.
    """
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    for name, counts in counts_per_level.items():
        counts = np.sort(np.asarray(counts, dtype=np.float64))[::-1]
        total = counts.sum()
        if total <= 0:
            continue
        freq = counts / total
        nz = freq[freq > 0]
        perplexity = float(np.exp(-(nz * np.log(nz)).sum()))
        label = f"{name}: {nz.size}/{counts.size} used, perplexity {perplexity:.0f}"
        ax.step(np.arange(1, nz.size + 1), nz, where="mid", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("code rank")
    ax.set_ylabel("fraction of frames")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_durations(
    code_run_seconds: dict[str, np.ndarray],
    phone_seconds: np.ndarray,
    path: str | os.PathLike[str],
) -> Path:
    """Histograms of code-run durations per level against phone durations.

    50 log-spaced bins over the range of all values; each series is normalised to sum to 1 (the fraction
    of its runs or phones per bin), so levels with very different run counts share one y axis.
    """
    series = {f"code runs, {name}": np.asarray(v, dtype=np.float64) for name, v in code_run_seconds.items()}
    series["phones"] = np.asarray(phone_seconds, dtype=np.float64)
    positive = [v[v > 0] for v in series.values() if np.any(v > 0)]
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    if positive:
        low = min(float(v.min()) for v in positive)
        high = max(float(v.max()) for v in positive)
        bins = np.geomspace(low, high * 1.001 if high > low else low * 2.0, 50)
        for name, values in series.items():
            values = values[values > 0]
            if values.size:
                label = f"{name} (mean {values.mean() * 1000:.0f} ms)"
                weights = np.full(values.size, 1.0 / values.size)
                ax.hist(values, bins=bins.tolist(), weights=weights, histtype="step", label=label)
        ax.set_xscale("log")
        ax.legend(fontsize=8)
    ax.set_xlabel("duration (s)")
    ax.set_ylabel("fraction of runs / phones")
    fig.tight_layout()
    return _save(fig, path)
