"""What a prior over a model's codes is worth: bits per code, file sizes, coding speed, and its samples.

    python bench/prior.py --prior runs/prior0 [--prior ...] --data data/many/manifest.tsv
        [--labels data/many/labels] [--model M] [--files 24] [--threads 2] [--figure exp/prior_samples.png]
        [--parts bits,sizes,long,samples]

Prints, for seen and held-out voices apart:
1. bits per code of the prior on the corpus's test split next to log2 K, unigram and bigram
   (``vqaudio prior eval``'s numbers);
2. the size of ``--files`` test files per group coded packed, with ``--entropy`` (the checkpoint's
   order-0/order-1 tables) and with ``--prior`` (total bytes, vs packed);
3. encode and decode real-time factors on ``--threads`` threads, packed vs with the prior (the prior's
   coding runs on one thread by design, see vqaudio.prior.coding); then, on one long file (the seen
   group's files end to end), the prior coding's RTF with chunks coded in groups of PRIOR_GROUP (what
   the stream format does) next to groups of one chunk (what a batch-1 coder would cost);
4. samples: ``--samples`` unconditional samples per voice (the "none" speaker and a few seen voices) as a
   spectrogram figure, and, with ``--labels``, a phone analysis of the sampled codes against real ones: the
   mean run length of a code, and of a phone when every code is read as its most frequent phone (mapping
   fitted on the real test codes), next to the real phones' mean duration.
Nothing is asserted: the numbers go into the notes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import vqaudio.codec.compress as codec
from vqaudio.analysis.metrics import cooccurrence, fit_mapping, run_lengths
from vqaudio.audio import read_audio
from vqaudio.codec.bitstream import PRIOR_GROUP
from vqaudio.codec.compress import compress, decompress
from vqaudio.data import scan_corpus, validate_corpus
from vqaudio.data.pairing import find_pairs
from vqaudio.eval.phones import analyze_corpus
from vqaudio.prior import PriorCoder, load_prior, load_prior_vqvae, sample_audio
from vqaudio.prior.codes import default_cache_dir
from vqaudio.prior.evaluate import evaluate_prior_corpus
from vqaudio.prior.sampling import check_chain


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--prior",
        type=Path,
        action="append",
        required=True,
        help="a prior; repeat for a hierarchy (e.g. level 2, then level 1's upsampler prior): each is "
        "scored, the first one that codes alone is used for sizes and speed, all sample together",
    )
    p.add_argument("--data", type=Path, required=True, help="corpus manifest (tsv) or folder")
    p.add_argument("--labels", type=Path, default=None, help="phone labels of the corpus (phone analysis)")
    p.add_argument("--model", default=None, help="the VQ-VAE (default: the prior's own)")
    p.add_argument("--files", type=int, default=24, help="test files per voice group for sizes and speed")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--samples", type=int, default=3, help="samples per voice for the figure and analysis")
    p.add_argument("--seconds", type=float, default=3.0, help="length of each sample")
    p.add_argument("--figure", type=Path, default=None, help="spectrograms of the samples (PNG)")
    p.add_argument("--parts", default="bits,sizes,long,samples", help="which measurements, comma-separated")
    return p.parse_args()


def _bits(prior, meta, vqvae, utts) -> None:  # type: ignore[no-untyped-def]
    cache = (
        Path(meta.config.data.cache_dir).expanduser() if meta.config.data.cache_dir else default_cache_dir()
    )
    scores, which = evaluate_prior_corpus(prior, meta, vqvae, utts, cache)
    print(f"\n1. bits per code at level {meta.config.prior.level} ({which} split)")
    print(
        f"{'voices':9} {'utts':>5} {'codes':>8} {'prior':>7} {'bigram':>7} {'unigram':>7} {'log2 K':>7} "
        f"{'vs log2K':>9}"
    )
    for group, s in scores.items():
        print(
            f"{group:9} {s.utterances:5d} {s.codes:8d} {s.bits_per_code:7.3f} {s.bigram_bits:7.3f} "
            f"{s.unigram_bits:7.3f} {s.log2_k:7.3f} {100 * (s.bits_per_code / s.log2_k - 1):+8.1f}%"
        )


def _groups(utts, files: int) -> dict[str, list]:  # type: ignore[no-untyped-def]
    test = [u for u in utts if u.split == "test"] or utts
    out = {}
    for name, held in (("seen", False), ("heldout", True)):
        chosen = sorted((u for u in test if u.heldout == held), key=lambda u: u.utt_id)
        step = max(1, len(chosen) // max(files, 1))
        if chosen:
            out[name] = chosen[::step][:files]
    return out


def _sizes_and_speed(vqvae, coder, groups, threads: int) -> None:  # type: ignore[no-untyped-def]
    torch.set_num_threads(threads)
    level = coder.level
    print(f"\n2. file sizes at level {level} (bytes, {threads} threads for the VQ-VAE) and 3. speed (RTF)")
    print(
        f"{'voices':9} {'files':>5} {'seconds':>8} {'packed':>8} {'entropy':>8} {'prior':>8} "
        f"{'entropy%':>9} {'prior%':>8}"
    )
    for name, utts in groups.items():
        sizes = {"packed": 0, "entropy": 0, "prior": 0}
        timing = {"packed_enc": 0.0, "prior_enc": 0.0, "packed_dec": 0.0, "prior_dec": 0.0}
        seconds = 0.0
        for u in utts:
            wav = read_audio(u.path, vqvae.sample_rate)
            seconds += wav.size / vqvae.sample_rate
            for kind, kwargs in (("packed", {}), ("entropy", {"entropy": True}), ("prior", {"coder": coder})):
                t0 = time.perf_counter()
                data = compress(vqvae, wav, vqvae.sample_rate, level=level, **kwargs)
                t1 = time.perf_counter()
                if kind != "entropy":
                    decompress(vqvae, data, coder=coder if kind == "prior" else None)
                    timing[f"{kind}_enc"] += t1 - t0
                    timing[f"{kind}_dec"] += time.perf_counter() - t1
                sizes[kind] += len(data)
        pct = {k: 100 * (sizes[k] / sizes["packed"] - 1) for k in ("entropy", "prior")}
        print(
            f"{name:9} {len(utts):5d} {seconds:8.1f} {sizes['packed']:8d} {sizes['entropy']:8d} "
            f"{sizes['prior']:8d} "
            f"{pct['entropy']:+8.1f}% {pct['prior']:+7.1f}%"
        )
        rtf = {k: v / seconds for k, v in timing.items()}
        print(
            f"{'':9} RTF encode packed {rtf['packed_enc']:.4f} / prior {rtf['prior_enc']:.4f}; "
            f"decode packed {rtf['packed_dec']:.4f} / prior {rtf['prior_dec']:.4f}"
        )


def _samples(chain, vqvae, args) -> dict[str, list[np.ndarray]]:  # type: ignore[no-untyped-def]
    chain = check_chain(chain)
    finest = chain[-1][1]
    voices: list[str | None] = [None, *vqvae.speakers[:3]] if finest.config.prior.speaker else [None]
    out: dict[str, list[np.ndarray]] = {}
    audio: dict[str, list[np.ndarray]] = {}
    t0 = time.perf_counter()
    for voice in voices:
        for seed in range(args.samples):
            result = sample_audio(chain, vqvae, args.seconds, voice, seed=seed, temperature=1.0)
            out.setdefault(voice or "none", []).append(result.codes[finest.config.prior.level])
            audio.setdefault(voice or "none", []).append(result.audio)
    total = len(voices) * args.samples * args.seconds
    took = time.perf_counter() - t0
    print(
        f"\n4. samples: {len(voices)} voices x {args.samples} x {args.seconds:g} s in {took:.1f} s "
        f"(RTF {took / total:.3f}, {torch.get_num_threads()} threads)"
    )
    if args.figure is not None:
        _figure(audio, vqvae.sample_rate, args.figure)
    return out


def _figure(audio: dict[str, list[np.ndarray]], sr: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import librosa
    import matplotlib.pyplot as plt

    rows, cols = len(audio), max(len(v) for v in audio.values())
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.2 * rows), squeeze=False)
    for i, (voice, clips) in enumerate(audio.items()):
        for j, clip in enumerate(clips):
            mel = librosa.power_to_db(librosa.feature.melspectrogram(y=clip, sr=sr, n_mels=80), ref=np.max)
            axes[i][j].imshow(mel, origin="lower", aspect="auto", vmin=-80)
            axes[i][j].set_title(f"speaker {voice}, seed {j}", fontsize=8)
            axes[i][j].set_xticks([])
            axes[i][j].set_yticks([])
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    print(f"   figure: {path}")


def _phone_analysis(vqvae, meta, data: Path, labels: Path, sampled: dict[str, list[np.ndarray]]) -> None:  # type: ignore[no-untyped-def]
    level = meta.config.prior.level
    pairs, _ = find_pairs(data, labels, split="test")
    result = analyze_corpus(vqvae, pairs[:200], [level])
    real = result.utterances[level]
    k = vqvae.config.levels[level].codebook_size
    codes = np.concatenate([u.codes for u in real])
    phones = np.concatenate([u.phones for u in real])
    mapping = fit_mapping(cooccurrence(codes, phones, k, len(result.phones)))
    frame_ms = 1000 * vqvae.hops[level] / vqvae.sample_rate

    def runs(seqs: list[np.ndarray]) -> tuple[float, float]:
        code_runs = np.concatenate([run_lengths(s) for s in seqs])
        phone_runs = np.concatenate([run_lengths(mapping[s]) for s in seqs])
        return float(code_runs.mean() * frame_ms), float(phone_runs.mean() * frame_ms)

    real_code, real_phone = runs([u.codes for u in real])
    durations = np.concatenate([u.phone_durations for u in real])
    print(
        f"\n   phone analysis (mapping fitted on {len(real)} real test utterances, {frame_ms:g} ms frames):"
    )
    print(
        f"   real codes:    code run {real_code:6.1f} ms, mapped-phone run {real_phone:6.1f} ms "
        f"(labelled phones {1000 * durations.mean():.1f} ms)"
    )
    for voice, seqs in sampled.items():
        code_ms, phone_ms = runs(seqs)
        used = len(np.unique(np.concatenate(seqs)))
        print(
            f"   sampled ({voice:>8}): code run {code_ms:6.1f} ms, mapped-phone run {phone_ms:6.1f} ms, "
            f"{used} distinct codes"
        )


def _long_file(vqvae, coder, utts, threads: int) -> None:  # type: ignore[no-untyped-def]
    torch.set_num_threads(threads)
    wav = np.concatenate([read_audio(u.path, vqvae.sample_rate) for u in utts])
    seconds = wav.size / vqvae.sample_rate
    print(f"\n3b. one long file: {len(utts)} files end to end, {seconds:.1f} s, level {coder.level}")
    t0 = time.perf_counter()
    decompress(vqvae, compress(vqvae, wav, vqvae.sample_rate, level=coder.level))
    print(f"{'packed':22} encode + decode RTF {(time.perf_counter() - t0) / seconds:.4f}")
    for group in (PRIOR_GROUP, 1):
        codec.PRIOR_GROUP = group  # what _encode / _chunk_codes batch (1: every chunk alone)
        try:
            t0 = time.perf_counter()
            data = compress(vqvae, wav, vqvae.sample_rate, level=coder.level, coder=coder)
            t1 = time.perf_counter()
            decompress(vqvae, data, coder=coder)
            t2 = time.perf_counter()
        finally:
            codec.PRIOR_GROUP = PRIOR_GROUP
        print(
            f"prior, groups of {group:<2} chunks: encode RTF {(t1 - t0) / seconds:.4f}, decode RTF "
            f"{(t2 - t1) / seconds:.4f}, {len(data)} bytes"
        )


def main() -> None:
    args = _args()
    torch.set_num_threads(args.threads)
    chain = [load_prior(p) for p in args.prior]
    vqvae = load_prior_vqvae(chain[0][1], args.model)
    kind = "tsv" if args.data.is_file() else "folder"
    utts, _ = validate_corpus(scan_corpus(kind, args.data))
    for path, (_, meta) in zip(args.prior, chain, strict=True):
        upper = ", given level " + str(meta.config.prior.level + 1) if meta.config.prior.upper else ""
        print(f"prior {path} (step {meta.step}, level {meta.config.prior.level}{upper})")
    print(f"model {chain[0][1].vqvae_source}, torch {torch.__version__}, {args.threads} threads")
    parts = set(args.parts.split(","))
    if "bits" in parts:
        for prior, meta in chain:
            _bits(prior, meta, vqvae, utts)
    groups = _groups(utts, args.files)
    codable = next(((p, m) for p, m in chain if not m.config.prior.upper), None)
    if codable is not None and "sizes" in parts:
        _sizes_and_speed(vqvae, PriorCoder(*codable), groups, args.threads)
    if codable is not None and "long" in parts:
        _long_file(vqvae, PriorCoder(*codable), groups["seen"], args.threads)
    if "samples" in parts:
        sampled = _samples(chain, vqvae, args)
        if args.labels is not None:
            _phone_analysis(vqvae, check_chain(chain)[-1][1], args.data, args.labels, sampled)


if __name__ == "__main__":
    main()
