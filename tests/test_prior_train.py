"""Training a prior (``vqaudio prior train``): it learns, keeps held-out voices out of training, resumes
exactly, encodes the corpus once, refuses another VQ-VAE and bad input, and runs under torchrun."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import vqaudio
from vqaudio.checkpoint import save_checkpoint
from vqaudio.cli import app
from vqaudio.codec.compress import code_tables
from vqaudio.config import PriorRunConfig, RunConfig, load_prior_config
from vqaudio.errors import UserError
from vqaudio.prior import check_vqvae, load_prior
from vqaudio.train.prior import PAD, CodeCrops, PriorTrainer, train_prior
from vqaudio.train.rundir import RunDir

REPO = Path(__file__).resolve().parents[1]
PRIOR_RECIPE = REPO / "recipes" / "prior_tiny.yaml"
runner = CliRunner()


@pytest.fixture(scope="module")
def corpus(toy_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy corpus as a manifest: spk0 and spk1 named after the tiny model's speakers (ann, bob), spk2
    a held-out voice (cid)."""
    folder = tmp_path_factory.mktemp("prior_corpus")
    names = {"spk0": "ann", "spk1": "bob", "spk2": "cid"}
    rows = []
    for wav in sorted(toy_corpus.rglob("*.wav")):
        name = names[wav.parent.name]
        rows.append(f"{wav}\t{name}\t\t\t{'heldout' if name == 'cid' else 'seen'}")
    manifest = folder / "manifest.tsv"
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return manifest


def _cfg(corpus: Path, cache: Path, steps: int = 20, **extra: object) -> PriorRunConfig:
    values: dict[str, object] = {
        "data.kind": "tsv",
        "data.root": corpus,
        "data.cache_dir": cache,
        "train.max_steps": steps,
        "train.eval_every": 10,
        "train.save_every": 10,
        "train.log_every": 5,
        "train.device": "cpu",
    }
    values.update(extra)
    return load_prior_config(PRIOR_RECIPE, [f"{k}={v}" for k, v in values.items()])


def test_prior_learns_and_keeps_heldout_voices_out_of_training(
    corpus: Path, tiny_ckpt: Path, tiny_model: vqaudio.VQVAE, tmp_path: Path, one_thread: None
) -> None:
    trainer = PriorTrainer(
        _cfg(corpus, tmp_path / "cache", 150, **{"train.eval_every": 50}),
        tmp_path / "run",
        False,
        None,
        tiny_ckpt,
    )
    try:
        data = trainer.data
        assert set(data.train.speakers) == {"ann", "bob"} and not any(data.train.heldout)
        assert {s for s, h in zip(data.valid.speakers, data.valid.heldout, strict=True) if h} == {"cid"}
        assert set(data.valid.utt_ids).isdisjoint(data.train.utt_ids)
        result = trainer.fit()
    finally:
        trainer.close()
    first, last = result.history[0], result.history[-1]
    log2_k = math.log2(trainer.model.num_codes)
    assert first["valid/bits"] > 0.95 * log2_k  # a fresh prior is near uniform
    assert last["valid/bits"] < 0.85 * log2_k  # learnt: well below log2 K
    assert last["valid/bits"] < trainer.baselines["all"].bigram_bits  # and below the previous-code model
    assert {"valid/bits/seen", "valid/bits/heldout"} <= last.keys()
    assert result.best_metric == min(h["valid/bits"] for h in result.history)
    prior, meta = load_prior(tmp_path / "run")  # the best checkpoint
    check_vqvae(meta, tiny_model)
    assert meta.vqvae_source == str(tiny_ckpt.resolve())
    assert meta.extra["valid_bits"] == pytest.approx(result.best_metric)
    finished = json.loads((tmp_path / "run" / "finished.json").read_text())
    assert finished["reason"] == "max_steps" and finished["best_valid_bits"] == pytest.approx(
        result.best_metric
    )


def test_prior_resumes_exactly_and_reads_the_cache(
    corpus: Path, tiny_ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread: None
) -> None:
    cache = tmp_path / "cache"
    straight = train_prior(_cfg(corpus, cache), tmp_path / "straight", tiny_ckpt)

    def no_encoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("the corpus was encoded again")

    monkeypatch.setattr("vqaudio.prior.codes.encode_corpus", no_encoding)
    first = train_prior(_cfg(corpus, cache), tmp_path / "resumed", tiny_ckpt, stop_after=10)
    assert first.interrupted and first.step == 10
    resumed = train_prior(_cfg(corpus, cache), tmp_path / "resumed", None, resume=True)  # --model remembered
    assert resumed.step == 20 and not resumed.interrupted
    a, _ = load_prior(RunDir(tmp_path / "straight").latest()[0])  # type: ignore[index]
    b, _ = load_prior(RunDir(tmp_path / "resumed").latest()[0])  # type: ignore[index]
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert resumed.history[-1]["valid/bits"] == straight.history[-1]["valid/bits"]


def test_prior_refuses_another_vqvae_on_resume(
    corpus: Path, tiny_ckpt: Path, trained_tiny: object, tmp_path: Path, one_thread: None
) -> None:
    train_prior(_cfg(corpus, tmp_path / "cache"), tmp_path / "run", tiny_ckpt, stop_after=10)
    other = tmp_path / "other.safetensors"
    model = trained_tiny(1)  # type: ignore[operator]
    save_checkpoint(other, model, RunConfig(model=model.config), code_tables=code_tables(model))
    with pytest.raises(UserError, match="belongs to VQ-VAE"):
        train_prior(_cfg(corpus, tmp_path / "cache"), tmp_path / "run", other, resume=True)


def test_code_crops_are_seeded_aligned_and_padded() -> None:
    codes = [np.arange(30), np.arange(5)]
    upper = [np.arange(8) + 100, np.arange(2) + 100]
    crops = CodeCrops(codes, [0, 1], frames=12, none=2, dropout=0.5, upper=upper, ratio=4)
    a = crops[(0, 123)]
    assert all(torch.equal(x, y) for x, y in zip(a, crops[(0, 123)], strict=True))  # a function of the seed
    starts = {int(crops[(0, seed)][0][0]) for seed in range(200)}
    assert starts == {0, 4, 8, 12, 16}  # aligned to the coarser level; the crop stays inside
    for seed in range(20):
        c, _, up = crops[(0, seed)]
        assert torch.equal(up, torch.arange(3) + 100 + int(c[0]) // 4)
    short, _, up = crops[(1, 7)]
    assert torch.equal(short, torch.tensor([0, 1, 2, 3, 4] + [PAD] * 7))
    assert torch.equal(up, torch.tensor([100, 101, 0]))
    speakers = [int(crops[(0, seed)][1]) for seed in range(400)]
    assert set(speakers) == {0, 2} and 120 < speakers.count(2) < 280  # dropout to "none", about half


def test_prior_train_command_and_bad_input(corpus: Path, tiny_ckpt: Path, tmp_path: Path) -> None:
    base = ["prior", "train", str(PRIOR_RECIPE), "--model", str(tiny_ckpt)]
    sets = ["data.kind=tsv", f"data.root={corpus}", f"data.cache_dir={tmp_path / 'cache'}"]
    sets += ["train.max_steps=3", "train.device=cpu"]
    args = [arg for s in sets for arg in ("--set", s)]
    ok = runner.invoke(app, [*base, "--out", str(tmp_path / "run"), *args])
    assert ok.exit_code == 0, ok.output
    assert "finished at step 3" in ok.output and RunDir(tmp_path / "run").steps() == [3]
    again = runner.invoke(app, [*base, "--out", str(tmp_path / "run"), *args])
    assert again.exit_code == 2 and "already holds a run" in again.output
    for extra, message in (
        (["--set", "prior.level=7"], "level"),
        (["--set", "prior.upper=true", "--set", "prior.level=1"], "coarsest"),
        (["--set", f"data.root={tmp_path / 'nowhere.tsv'}"], "does not exist"),
        (["--set", "prior.width=30"], "heads"),
    ):
        bad = runner.invoke(app, [*base, "--out", str(tmp_path / "bad"), *args, *extra])
        assert bad.exit_code == 2, (extra, bad.output)
        assert message in bad.output and "Traceback" not in bad.output
        assert not (tmp_path / "bad" / "checkpoints").exists()
    wrong = runner.invoke(
        app, [*base[:-1], str(tmp_path / "no_model"), "--out", str(tmp_path / "bad"), *args]
    )
    assert wrong.exit_code == 2 and "Traceback" not in wrong.output


def test_prior_torchrun_two_ranks(
    corpus: Path, tiny_ckpt: Path, tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    out = tmp_path / "run"
    sets = ["data.kind=tsv", f"data.root={corpus}", f"data.cache_dir={tmp_path / 'cache'}"]
    sets += ["train.max_steps=4", "train.eval_every=4", "train.device=cpu"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "--standalone"]
    cmd += [
        "-m",
        "vqaudio",
        "prior",
        "train",
        str(PRIOR_RECIPE),
        "--model",
        str(tiny_ckpt),
        "--out",
        str(out),
    ]
    cmd += [arg for s in sets for arg in ("--set", s)]
    done = subprocess.run(cmd, cwd=tmp_path, env=subprocess_env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert done.stderr.count("finished at step 4") == 1  # only rank 0 reports
    assert done.stderr.count("encoded and cached") == 1  # rank 0 encodes; rank 1 reads its file (silent)
    assert RunDir(out).steps() == [4]
    assert len(list((tmp_path / "cache").iterdir())) == 1
    load_prior(out)


def test_prior_torchrun_rank0_failure_stops_every_rank(
    corpus: Path, tiny_ckpt: Path, tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    """Rank 0 fails before the corpus is encoded (the cache folder is a file): it reports the user's
    mistake, and rank 1, waiting for rank 0's codes, stops too instead of waiting forever."""
    (tmp_path / "cache").write_text("not a folder")
    sets = [
        "data.kind=tsv",
        f"data.root={corpus}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "train.device=cpu",
    ]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "--standalone", "-m"]
    cmd += [
        "vqaudio",
        "prior",
        "train",
        str(PRIOR_RECIPE),
        "--model",
        str(tiny_ckpt),
        "--out",
        str(tmp_path / "r"),
    ]
    cmd += [arg for s in sets for arg in ("--set", s)]
    done = subprocess.run(cmd, cwd=tmp_path, env=subprocess_env, capture_output=True, text=True, timeout=180)
    assert done.returncode != 0
    assert "cannot hold the code cache" in done.stderr and "rank 0 failed while encoding" in done.stderr
    assert "Traceback" not in done.stderr.split("distributed/elastic")[0], done.stderr[
        -3000:
    ]  # ours; torchrun has one


def test_prior_refuses_an_unusable_cache_folder(corpus: Path, tiny_ckpt: Path, tmp_path: Path) -> None:
    (tmp_path / "cache").write_text("not a folder")
    with pytest.raises(UserError, match="cannot hold the code cache"):
        train_prior(_cfg(corpus, tmp_path / "cache"), tmp_path / "run", tiny_ckpt)


# ------------------------------------------------------------------------------ prior eval and sample


@pytest.fixture(scope="module")
def prior_run(corpus: Path, tiny_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny prior trained for 30 steps on :func:`corpus` over ``tiny_ckpt``'s level 0 (read only)."""
    out = tmp_path_factory.mktemp("prior_run") / "run"
    torch.set_num_threads(1)
    train_prior(_cfg(corpus, out.parent / "cache", 30), out, tiny_ckpt)
    return out


def test_prior_eval_matches_the_runs_validation(corpus: Path, prior_run: Path, tiny_ckpt: Path) -> None:
    done = runner.invoke(app, ["prior", "eval", "--prior", str(prior_run), "--data", str(corpus), "--json"])
    assert done.exit_code == 0, done.output
    document = json.loads(done.stdout)
    assert document["set"] == "valid"  # the manifest has no test split
    level = document["levels"]["0"]
    assert level["log2_k"] == math.log2(vqaudio.load_model(tiny_ckpt).config.levels[0].codebook_size)
    assert level["bits_per_code"] < level["unigram_bits"] < level["log2_k"]
    assert level["seen"]["utterances"] == 2 and level["heldout"]["utterances"] == 1
    # the command scores the utterances the run validated on, with the best checkpoint: the same number
    _, meta = load_prior(prior_run)
    assert level["bits_per_code"] == pytest.approx(meta.extra["valid_bits"], rel=1e-5)
    table = runner.invoke(app, ["prior", "eval", "--prior", str(prior_run), "--data", str(corpus)])
    assert table.exit_code == 0 and "held" in table.stdout


def test_prior_commands_refuse_another_model(
    corpus: Path, prior_run: Path, trained_tiny: object, tmp_path: Path
) -> None:
    other = tmp_path / "other.safetensors"
    model = trained_tiny(2)  # type: ignore[operator]
    save_checkpoint(other, model, RunConfig(model=model.config), code_tables=code_tables(model))
    for args in (
        ["prior", "eval", "--prior", str(prior_run), "--data", str(corpus)],
        ["sample", "--prior", str(prior_run), "-o", str(tmp_path / "x.wav")],
    ):
        done = runner.invoke(app, [*args, "--model", str(other)])
        assert done.exit_code == 2 and "belongs to VQ-VAE" in done.output, done.output
    assert not (tmp_path / "x.wav").exists()


def test_sample_is_reproducible_and_continues_a_prompt(
    prior_run: Path, tmp_path: Path, one_thread: None
) -> None:
    import soundfile as sf

    from vqaudio.codec.compress import encode_audio
    from vqaudio.prior import load_prior_vqvae, sample_audio

    outs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        path = tmp_path / f"{name}.wav"
        args = ["sample", "--prior", str(prior_run), "--seconds", "0.5", "--seed", str(seed), "-o", str(path)]
        done = runner.invoke(app, [*args, "--speaker", "ann"])
        assert done.exit_code == 0, done.output
        outs.append(sf.read(path)[0])
    assert (
        outs[0].shape == (8000,) and np.array_equal(outs[0], outs[1]) and not np.array_equal(outs[0], outs[2])
    )
    again = runner.invoke(app, ["sample", "--prior", str(prior_run), "-o", str(tmp_path / "a.wav")])
    assert again.exit_code == 2 and "exists" in again.output
    unknown = runner.invoke(
        app, ["sample", "--prior", str(prior_run), "-o", str(tmp_path / "d.wav"), "--speaker", "zed"]
    )
    assert (
        unknown.exit_code == 2 and "unknown speaker" in unknown.output and not (tmp_path / "d.wav").exists()
    )

    chain = [load_prior(prior_run)]
    vqvae = load_prior_vqvae(chain[0][1])
    prompt = outs[2][:3000].astype(np.float32)
    given = encode_audio(vqvae, prompt, vqvae.sample_rate, level=0)
    result = sample_audio(chain, vqvae, 0.5, "bob", prompt, temperature=0.8, top_k=8, seed=1)
    kept = len(given) - 1
    assert np.array_equal(result.codes[0][:kept], given[:kept]) and len(result.codes[0]) == math.ceil(
        8000 / vqvae.hops[0]
    )
    assert not np.array_equal(
        result.codes[0][kept:], sample_audio(chain, vqvae, 0.5, "bob", seed=1).codes[0][kept:]
    )


def test_sample_chain_needs_the_coarser_prior(prior_run: Path) -> None:
    from vqaudio.prior.sampling import check_chain

    prior, meta = load_prior(prior_run)
    upsampler = dataclasses.replace(
        meta,
        config=dataclasses.replace(meta.config, prior=dataclasses.replace(meta.config.prior, upper=True)),
    )
    with pytest.raises(UserError, match="give that level's prior"):
        check_chain([(prior, upsampler)])
    with pytest.raises(UserError, match="same level"):
        check_chain([(prior, meta), (prior, meta)])


# ------------------------------------------------------------------------------ coding with a prior


def test_encode_with_a_prior_round_trips_bit_exactly(
    prior_run: Path, corpus: Path, tiny_ckpt: Path, tmp_path: Path, speech: object
) -> None:
    from vqaudio.codec.bitstream import read_header
    from vqaudio.codec.compress import compress, decompress, encode_audio
    from vqaudio.prior import PriorCoder
    from vqaudio.prior.checkpoint import prior_fingerprint

    prior, meta = load_prior(prior_run)
    coder = PriorCoder(prior, meta)
    model = vqaudio.load_model(tiny_ckpt)
    wav = speech(1.3)  # type: ignore[operator]
    coded = compress(model, wav, model.sample_rate, coder=coder, chunk_seconds=0.5)  # 3 chunks
    header, _ = read_header(io.BytesIO(coded))
    assert header.version == 3 and header.coding == "entropy"
    assert header.prior_id == prior_fingerprint(meta)[:16] == coder.coder_id
    packed = compress(model, wav, model.sample_rate, chunk_seconds=0.5)
    a, _ = decompress(model, coded, coder=coder)
    b, _ = decompress(model, packed)
    assert np.array_equal(a, b)  # the same codes came back
    # the prior's payloads are used (model byte 2) and its codes are the encoder's
    codes = encode_audio(model, wav, model.sample_rate, level=0)
    assert np.array_equal(coder.decode(coder.encode([codes], None), [len(codes)], None)[0], codes)
    with pytest.raises(UserError, match="give that prior"):
        decompress(model, coded)
    damaged = bytearray(coded)
    damaged[-10] ^= 0x20
    with pytest.raises(UserError, match="CRC"):
        decompress(model, bytes(damaged), coder=coder)


def test_prior_coding_batches_groups_of_chunks(
    prior_run: Path, tiny_ckpt: Path, speech: object, one_thread: None
) -> None:
    """Chunks are coded PRIOR_GROUP at a time: 14 chunks = a group of 8 and one of 6 (its last chunk
    shorter), each mixing chunks the prior codes with chunks the tables code better (noise, silence);
    every chunk is a row of its group's batch, so the decoder steps those too. A row given as codes (a
    chunk another model coded) is stepped all the same, and the other rows decode as they were coded."""
    from vqaudio.codec.bitstream import PRIOR_GROUP, StreamReader
    from vqaudio.codec.compress import PRIOR_MODEL, compress, decompress, encode_audio
    from vqaudio.prior import PriorCoder
    from vqaudio.prior.coding import decode_rows, encode_rows

    coder = PriorCoder(*load_prior(prior_run))
    model = vqaudio.load_model(tiny_ckpt)
    talk = speech(1.0, seed=1)  # type: ignore[operator]
    noise = np.random.default_rng(1).normal(0, 0.3, 3200).astype(np.float32)
    wav = np.concatenate([talk, noise, np.zeros(3100, np.float32)] * 2)
    coded = compress(model, wav, model.sample_rate, coder=coder, chunk_seconds=0.2)
    models = [parts[0][0] for parts in StreamReader(io.BytesIO(coded))]
    assert len(models) == 14 > PRIOR_GROUP
    for group in (models[:PRIOR_GROUP], models[PRIOR_GROUP:]):
        assert PRIOR_MODEL in group and set(group) - {PRIOR_MODEL}
    assert np.array_equal(
        decompress(model, coded, coder=coder)[0],
        decompress(model, compress(model, wav, model.sample_rate, chunk_seconds=0.2))[0],
    )
    codes = encode_audio(model, wav, model.sample_rate, level=0)
    rows = [codes[:40], codes[40:95], codes[95:120]]  # three lengths: rows end at different steps
    coded_rows = encode_rows(coder.prior, rows, speaker=1)
    given = [coded_rows[0], rows[1], coded_rows[2]]  # the middle chunk known already
    back = decode_rows(coder.prior, given, [len(r) for r in rows], speaker=1)
    assert all(np.array_equal(x, y) for x, y in zip(back, rows, strict=True))


def test_encode_decode_commands_with_a_prior(
    prior_run: Path, corpus: Path, tiny_ckpt: Path, toy_corpus: Path, tmp_path: Path, one_thread: None
) -> None:
    import soundfile as sf

    wav = sorted(toy_corpus.rglob("*.wav"))[0]
    enc = runner.invoke(app, ["encode", str(wav), "-o", str(tmp_path / "a.vqa"), "--prior", str(prior_run)])
    assert enc.exit_code == 0, enc.output  # --model: the prior's own
    info = runner.invoke(app, ["info", str(tmp_path / "a.vqa"), "--json"])
    assert json.loads(info.stdout)["format_version"] == 3 and json.loads(info.stdout)["prior_id"]
    args = ["decode", str(tmp_path / "a.vqa"), "--model", str(tiny_ckpt)]
    dec = runner.invoke(app, [*args, "-o", str(tmp_path / "a.wav"), "--prior", str(prior_run)])
    assert dec.exit_code == 0, dec.output
    plain = runner.invoke(app, ["encode", str(wav), "-o", str(tmp_path / "p.vqa"), "--model", str(tiny_ckpt)])
    assert plain.exit_code == 0
    runner.invoke(
        app, ["decode", str(tmp_path / "p.vqa"), "-o", str(tmp_path / "p.wav"), "--model", str(tiny_ckpt)]
    )
    assert np.array_equal(sf.read(tmp_path / "a.wav")[0], sf.read(tmp_path / "p.wav")[0])

    # the spelling, --entropy prior, is the same thing and needs --prior
    spelled = ["encode", str(wav), "-o", str(tmp_path / "s.vqa"), "--entropy", "prior"]
    assert runner.invoke(app, [*spelled, "--prior", str(prior_run)]).exit_code == 0
    assert (tmp_path / "s.vqa").read_bytes() == (tmp_path / "a.vqa").read_bytes()
    alone = runner.invoke(app, [*spelled[:3], str(tmp_path / "t.vqa"), "--entropy=prior"])
    assert alone.exit_code == 2 and "needs the prior" in alone.output and not (tmp_path / "t.vqa").exists()
    other_value = runner.invoke(app, [*spelled[:3], str(tmp_path / "t.vqa"), "--entropy=fast"])
    assert other_value.exit_code == 2 and "takes no value" in other_value.output

    missing = runner.invoke(app, [*args, "-o", str(tmp_path / "b.wav")])
    assert missing.exit_code == 2 and "give that prior" in missing.output
    other = train_prior(
        _cfg(corpus, prior_run.parent / "cache", 2, **{"train.seed": 5}), tmp_path / "other", tiny_ckpt
    )
    wrong = runner.invoke(app, [*args, "-o", str(tmp_path / "b.wav"), "--prior", str(other.run_dir)])
    assert wrong.exit_code == 2 and "prior mismatch" in wrong.output
    assert not (tmp_path / "b.wav").exists()


def test_a_stream_from_other_cpu_kernels_is_refused_up_front(
    prior_run: Path, tiny_ckpt: Path, toy_corpus: Path, tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    """Encoded with torch's AVX2 kernels (``ATEN_CPU_CAPABILITY=avx2``: what an AVX2-only machine runs),
    a stream carries that machine's probe. Where this process computes the prior otherwise (AVX-512
    kernels) decoding it is refused before any work, with one line; where it computes the same, the
    stream decodes to the encoder's codes. Either way, never other audio."""
    from vqaudio.codec.bitstream import read_header
    from vqaudio.codec.compress import decompress
    from vqaudio.prior import PriorCoder

    wav, coded = sorted(toy_corpus.rglob("*.wav"))[0], tmp_path / "avx2.vqa"
    cmd = [sys.executable, "-m", "vqaudio", "encode", str(wav), "-o", str(coded), "--prior", str(prior_run)]
    env = subprocess_env | {"ATEN_CPU_CAPABILITY": "avx2"}
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    header, _ = read_header(io.BytesIO(coded.read_bytes()))
    coder = PriorCoder(*load_prior(prior_run))
    model = vqaudio.load_model(tiny_ckpt)
    if torch.backends.cpu.get_cpu_capability() == "AVX2" or header.prior_probe == coder.probe:
        assert header.prior_probe == coder.probe  # same kernels: same probe, and it decodes
        plain = runner.invoke(
            app, ["encode", str(wav), "-o", str(tmp_path / "p.vqa"), "--model", str(tiny_ckpt)]
        )
        assert plain.exit_code == 0
        assert np.array_equal(
            decompress(model, coded.read_bytes(), coder=coder)[0],
            decompress(model, (tmp_path / "p.vqa").read_bytes())[0],
        )
    else:
        args = ["decode", str(coded), "-o", str(tmp_path / "x.wav"), "--prior", str(prior_run)]
        refused = runner.invoke(app, args)
        assert refused.exit_code == 2 and "platform mismatch" in refused.output
        assert not (tmp_path / "x.wav").exists()


def test_upsampler_prior_trains_and_samples_hierarchically(
    corpus: Path, tiny_ckpt: Path, tmp_path: Path, one_thread: None
) -> None:
    from vqaudio.prior import load_prior_vqvae, sample_audio

    cache = tmp_path / "cache"
    top = train_prior(_cfg(corpus, cache, 3, **{"prior.level": 1}), tmp_path / "top", tiny_ckpt)
    up = train_prior(_cfg(corpus, cache, 3, **{"prior.upper": "true"}), tmp_path / "up", tiny_ckpt)
    chain = [load_prior(up.run_dir), load_prior(top.run_dir)]  # any order: coarsest first when sampling
    assert chain[0][0].upper_ratio == 4
    vqvae = load_prior_vqvae(chain[0][1])
    result = sample_audio(chain, vqvae, 0.4, "ann", seed=2)
    assert sorted(result.codes) == [0, 1]
    assert [len(result.codes[lv]) for lv in (0, 1)] == [math.ceil(6400 / vqvae.hops[lv]) for lv in (0, 1)]
    assert result.audio.shape == (6400,)
    assert np.array_equal(sample_audio(chain, vqvae, 0.4, "ann", seed=2).codes[0], result.codes[0])
    # the fine level is sampled given the coarse one: other coarse codes, other logits
    upsampler = chain[0][0]
    fine = torch.from_numpy(result.codes[0])[None]
    coarse = torch.from_numpy(result.codes[1])[None]
    with torch.no_grad():
        shifted = (coarse + 1) % upsampler.upper_codes
        assert not torch.allclose(upsampler(fine, None, coarse), upsampler(fine, None, shifted))
    with pytest.raises(UserError, match="upsampler"):
        from vqaudio.prior import PriorCoder

        PriorCoder(*chain[0])
