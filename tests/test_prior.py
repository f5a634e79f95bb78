"""The code prior: causality, the cached step equals the full pass, it learns structure; baselines."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from vqaudio.audio import read_audio
from vqaudio.codec.compress import encode_audio, model_fingerprint
from vqaudio.codec.entropy import EntropyError
from vqaudio.config import load_prior_config
from vqaudio.data.corpora import Utterance
from vqaudio.data.synthetic import toy_utterance
from vqaudio.errors import CheckpointError, UserError
from vqaudio.models import VQVAE, build_model
from vqaudio.prior import CodePrior, PriorState, baseline_bits, bigram_bits, unigram_bits
from vqaudio.prior.checkpoint import PriorMeta, build_prior, check_vqvae, load_prior, prior_shapes, save_prior
from vqaudio.prior.codes import CodeSet, cached_codes, encode_corpus, load_codes, save_codes
from vqaudio.prior.coding import decode_with_prior, encode_with_prior
from vqaudio.prior.evaluate import evaluate_prior, speaker_indices, utterance_bits
from vqaudio.prior.sampling import filter_logits, sample_codes


def tiny_prior(**kw: object) -> CodePrior:
    torch.manual_seed(0)
    args = {"num_codes": 16, "num_speakers": 3, "width": 32, "layers": 2, "heads": 2, "context": 8} | kw
    return CodePrior(**args).eval()  # type: ignore[arg-type]


def test_a_code_depends_only_on_the_codes_before_it() -> None:
    prior = tiny_prior()
    codes = torch.randint(0, 16, (2, 12))
    logits = prior(codes, torch.tensor([0, 2]))
    assert logits.shape == (2, 12, 16)
    for t in range(12):
        changed = codes.clone()
        changed[:, t:] = torch.randint(0, 16, (2, 12 - t))
        torch.testing.assert_close(prior(changed, torch.tensor([0, 2]))[:, : t + 1], logits[:, : t + 1])
        if t < 11:  # ... and does depend on the code just before it
            assert not torch.allclose(prior(changed, torch.tensor([0, 2]))[:, t + 1], logits[:, t + 1])


@pytest.mark.parametrize("layers", [1, 2])
def test_a_code_sees_layers_times_context_minus_one_codes_back(layers: int) -> None:
    """Each layer attends to the last ``context`` positions (sliding window), so the input at position
    3 reaches positions 3 .. 3 + layers * (context - 1) and no further."""
    prior = tiny_prior(context=4, layers=layers)
    codes = torch.randint(0, 16, (1, 14))
    base = prior(codes)
    changed = codes.clone()
    changed[0, 2] = (codes[0, 2] + 1) % 16  # the input of position 3
    diff = (prior(changed) - base).abs().amax(dim=-1)[0]
    last = 3 + layers * 3
    assert torch.all(diff[:3] == 0) and torch.all(diff[3 : last + 1] > 0) and torch.all(diff[last + 1 :] == 0)


@pytest.mark.parametrize("upper", [False, True])
def test_step_with_its_cache_equals_the_full_pass_beyond_the_context(upper: bool) -> None:
    prior = tiny_prior(upper_codes=5 if upper else 0, upper_ratio=4)
    codes = torch.randint(0, 16, (3, 21))  # longer than the context of 8
    speaker = torch.tensor([0, 1, 3])  # 3: no speaker
    coarse = torch.randint(0, 5, (3, 6)) if upper else None
    full = prior(codes, speaker, coarse)
    state = PriorState()
    with torch.no_grad():
        for t in range(21):
            step = prior.step(None if t == 0 else codes[:, t - 1], state, speaker, coarse)
            torch.testing.assert_close(step, full[:, t], atol=1e-5, rtol=1e-5)
    assert state.position == 21 and all(c[0].shape[2] == 8 for c in state.caches)


def test_conditioning_is_checked() -> None:
    prior = tiny_prior()
    codes = torch.randint(0, 16, (2, 5))
    with pytest.raises(ValueError, match="speaker"):
        prior(codes, torch.tensor([0, 4]))  # 3 speakers + "none"
    with pytest.raises(ValueError, match="not conditioned"):
        prior(codes, None, torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="coarser"):
        tiny_prior(upper_codes=4, upper_ratio=2)(codes)
    assert not torch.allclose(prior(codes, torch.tensor([0, 0])), prior(codes, torch.tensor([1, 1])))


K, T = 16, 24


def cyclic_codes(rng: np.random.Generator, speakers: np.ndarray) -> list[np.ndarray]:
    """Codes that follow a speaker-dependent cycle (steps of 1, 3 or 5) with 5% noise."""
    out = []
    for speaker in speakers:
        s = (rng.integers(0, K) + [1, 3, 5][speaker] * np.arange(T)) % K
        noise = rng.random(T) < 0.05
        s[noise] = rng.integers(0, K, int(noise.sum()))
        out.append(s)
    return out


@pytest.fixture(scope="module")
def trained() -> tuple[CodePrior, list[np.ndarray], np.ndarray]:
    """A tiny prior trained on cyclic codes, with the codes it trained on and their speakers."""
    speakers = np.arange(96) % 3
    data = cyclic_codes(np.random.default_rng(0), speakers)
    codes, spk = torch.tensor(np.stack(data)), torch.tensor(speakers)
    prior = tiny_prior(context=T).train()
    opt = torch.optim.AdamW(prior.parameters(), lr=3e-3)
    for _ in range(300):
        loss = prior.bits_per_code(codes, spk).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return prior.eval(), data, speakers


def test_a_tiny_prior_learns_a_code_set_far_below_log2_k(trained) -> None:
    """The prior's bits per code on new sequences fall far below log2(K) = 4 and below the bigram's,
    which cannot know the speaker."""
    prior, data, _ = trained
    test_speakers = np.arange(30) % 3
    test = cyclic_codes(np.random.default_rng(1), test_speakers)
    with torch.no_grad():
        bits = float(prior.bits_per_code(torch.tensor(np.stack(test)), torch.tensor(test_speakers)).mean())
    base = baseline_bits(data, test, K)
    assert bits < 0.45 * math.log2(K), bits  # 1.28 bits when written (the bigram: 2.21)
    assert bits < base.bigram_bits < base.unigram_bits <= math.log2(K) + 0.05, (bits, base)


def test_coding_with_the_prior_is_exact_and_small(trained) -> None:
    prior, _, _ = trained
    torch.set_num_threads(2)
    test = cyclic_codes(np.random.default_rng(2), np.array([0, 1, 2]))
    total = 0
    for speaker, codes in enumerate(test):
        data = encode_with_prior(prior, codes, speaker)
        assert torch.get_num_threads() == 2  # restored
        np.testing.assert_array_equal(decode_with_prior(prior, data, codes.size, speaker), codes)
        total += len(data)
        with pytest.raises(EntropyError):
            decode_with_prior(prior, data + b"\x00", codes.size, speaker)
    assert total * 8 < 0.5 * 3 * T * math.log2(K)  # well under half of packed 4-bit codes
    empty = encode_with_prior(prior, np.zeros(0, np.int64))
    assert decode_with_prior(prior, empty, 0).size == 0


def test_coding_with_an_untrained_conditioned_prior_round_trips() -> None:
    prior = tiny_prior(upper_codes=5, upper_ratio=4, context=6)
    rng = np.random.default_rng(3)
    codes, upper = rng.integers(0, 16, 37), rng.integers(0, 5, 10)
    data = encode_with_prior(prior, codes, 2, upper)
    np.testing.assert_array_equal(decode_with_prior(prior, data, 37, 2, upper), codes)


def test_baselines_on_known_sequences() -> None:
    k = 4
    uniform = [np.random.default_rng(i).integers(0, k, 2000) for i in range(6)]
    assert unigram_bits(uniform[:4], uniform[4:], k) == pytest.approx(2.0, abs=0.01)
    assert bigram_bits(uniform[:4], uniform[4:], k) == pytest.approx(2.0, abs=0.03)
    cycle = [np.arange(400) % k for _ in range(5)]  # each code determines the next
    assert unigram_bits(cycle[:4], cycle[4:], k) == pytest.approx(2.0, abs=0.01)
    assert bigram_bits(cycle[:4], cycle[4:], k) < 0.02
    skewed = [np.random.default_rng(i).choice(k, 5000, p=[0.7, 0.1, 0.1, 0.1]) for i in range(4)]
    entropy = -(0.7 * math.log2(0.7) + 0.3 * math.log2(0.1))
    assert unigram_bits(skewed[:3], skewed[3:], k) == pytest.approx(entropy, abs=0.02)
    with pytest.raises(ValueError, match="codes in"):
        unigram_bits([np.array([0, 4])], cycle, k)


# --- code sets -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Utterance]:
    root = tmp_path_factory.mktemp("corpus")
    utts = []
    for i, speaker in enumerate(["ann", "bob", "ann", "cy"]):
        path = root / f"{speaker}_{i}.wav"
        sf.write(path, toy_utterance(np.random.default_rng(i), 16000, 0.3 + 0.1 * i, 120.0, 1.0), 16000)
        utts.append(Utterance(path, speaker, f"{speaker}_{i}", heldout=speaker == "cy"))
    return utts


@pytest.fixture
def vqvae(tiny_model: VQVAE) -> VQVAE:
    """The shared tiny VQ-VAE (speakers ann, bob; two levels): encode with it, never change it."""
    return tiny_model


def test_code_sets_encode_once_and_round_trip(tmp_path: Path, corpus: list[Utterance], vqvae: VQVAE) -> None:
    codes, cached = cached_codes(vqvae, corpus, [1, 0], tmp_path)
    assert not cached and codes.levels == (0, 1) and codes.heldout == [False, False, False, True]
    for lv in (0, 1):
        for u, c in zip(corpus, codes.codes[lv], strict=True):
            wav = read_audio(u.path, 16000)
            np.testing.assert_array_equal(c, encode_audio(vqvae, wav, 16000, level=lv))
    again, cached = cached_codes(vqvae, corpus, [0, 1], tmp_path)
    assert cached and again.utt_ids == codes.utt_ids and again.model_id == model_fingerprint(vqvae)
    for lv in (0, 1):
        assert all(np.array_equal(a, b) for a, b in zip(again.codes[lv], codes.codes[lv], strict=True))
    assert len(list(tmp_path.iterdir())) == 1
    _, cached = cached_codes(vqvae, corpus[:3], [0, 1], tmp_path)  # other utterances: encoded anew
    assert not cached and len(list(tmp_path.iterdir())) == 2
    sub = codes.select([3, 0])
    assert sub.utt_ids == ["cy_3", "ann_0"] and np.array_equal(sub.codes[1][1], codes.codes[1][0])


def test_a_damaged_code_set_is_a_clear_error(tmp_path: Path, corpus: list[Utterance], vqvae: VQVAE) -> None:
    codes = encode_corpus(vqvae, corpus[:2], [0])
    path = tmp_path / "c.safetensors"
    save_codes(path, codes)
    assert load_codes(path)[0].utt_ids == codes.utt_ids
    data = bytearray(path.read_bytes())
    for broken in (data[:100], data[: len(data) // 2], b"nonsense"):
        path.write_bytes(bytes(broken))
        with pytest.raises(UserError, match="cannot read this code set"):
            load_codes(path)


# --- checkpoints ---------------------------------------------------------------------------------------


def test_prior_checkpoint_round_trip_and_its_vqvae(tmp_path: Path, vqvae: VQVAE) -> None:
    config = load_prior_config(
        None, ["prior.width=16", "prior.layers=1", "prior.heads=2", "prior.upper=true"]
    )
    shapes = prior_shapes(config.prior, vqvae)
    assert shapes == {"num_codes": 32, "num_speakers": 2, "upper_codes": 32, "upper_ratio": 4}
    prior = build_prior(config.prior, shapes).eval()
    path = tmp_path / "p.safetensors"
    sha = save_prior(path, prior, config, vqvae, step=7)
    loaded, meta = load_prior(path)
    assert meta.step == 7 and meta.weights_sha256 == sha and meta.config == config
    assert meta.vqvae_id == model_fingerprint(vqvae) and meta.speakers == ["ann", "bob"]
    codes, upper = torch.randint(0, 32, (1, 9)), torch.randint(0, 32, (1, 3))
    torch.testing.assert_close(loaded(codes, None, upper), prior(codes, None, upper), rtol=0, atol=0)
    check_vqvae(meta, vqvae)
    other = build_model(vqvae.config, ["ann", "zoe"])  # other speakers (and weights)
    with pytest.raises(UserError, match="belongs to VQ-VAE"):
        check_vqvae(meta, other)
    with pytest.raises(UserError, match="coarsest"):
        prior_shapes(load_prior_config(None, ["prior.level=1", "prior.upper=true"]).prior, vqvae)
    with pytest.raises(UserError, match="level"):
        prior_shapes(load_prior_config(None, ["prior.level=5"]).prior, vqvae)


def test_a_bad_prior_file_is_a_clear_error(tmp_path: Path, vqvae: VQVAE) -> None:
    from vqaudio.checkpoint import save_checkpoint
    from vqaudio.config import RunConfig

    vq_path = tmp_path / "vq.safetensors"
    save_checkpoint(vq_path, vqvae, RunConfig(model=vqvae.config))
    with pytest.raises(CheckpointError, match="not a vqaudio prior"):
        load_prior(vq_path)
    with pytest.raises(CheckpointError, match="no such prior"):
        load_prior(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"junk" * 10)
    with pytest.raises(CheckpointError, match="not a vqaudio prior"):
        load_prior(tmp_path / "junk.safetensors")
    with pytest.raises(CheckpointError, match="no prior checkpoint"):
        load_prior(tmp_path)


# --- sampling ------------------------------------------------------------------------------------------


def test_filter_logits_keeps_what_top_k_and_top_p_say() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = lambda **kw: torch.isfinite(filter_logits(logits, **kw))[0].tolist()  # noqa: E731
    assert kept(top_k=2) == [True, True, False, False]
    assert kept(top_p=0.5) == [True, False, False, False]
    assert kept(top_p=0.8) == [True, True, False, False]  # 0.5 + 0.3 reaches 0.8
    assert kept(top_p=0.81) == [True, True, True, False]
    assert kept() == [True] * 4
    torch.testing.assert_close(filter_logits(logits, temperature=2.0), logits / 2)
    with pytest.raises(ValueError):
        filter_logits(logits, temperature=0.0)


def test_sampling_is_reproducible_and_follows_the_prior(trained) -> None:
    prior, _, _ = trained
    speakers = torch.tensor([0, 1, 2])

    def draw(seed: int, **kw: object) -> torch.Tensor:
        return sample_codes(prior, T, speakers, generator=torch.Generator().manual_seed(seed), **kw)  # type: ignore[arg-type]

    a, b, c = draw(0), draw(0), draw(1)
    assert a.shape == (3, T) and torch.equal(a, b) and not torch.equal(a, c)
    # cooled, the samples mostly follow each speaker's cycle (steps 1, 3, 5)
    cool = draw(0, temperature=0.3)
    steps = (cool[:, 1:] - cool[:, :-1]) % K
    for row, step in zip(steps, [1, 3, 5], strict=True):
        assert (row == step).float().mean() > 0.7, row  # 0.83, 0.83, 1.0 when written; chance: 1/16
    greedy = draw(2, top_k=1)
    with torch.no_grad():
        logits = prior(greedy, speakers)
    assert torch.equal(greedy[:, 1:], logits.argmax(-1)[:, 1:])  # top-k 1: each code the most likely
    prompt = torch.tensor([[3, 4, 5]] * 3)
    continued = draw(3, prompt=prompt, temperature=0.3)
    assert torch.equal(continued[:, :3], prompt)
    assert ((continued[0, 3:] - continued[0, 2:-1]) % K == 1).float().mean() > 0.8


# --- evaluation ----------------------------------------------------------------------------------------


def test_evaluate_prior_scores_seen_and_heldout_voices(trained) -> None:
    prior, data, speakers = trained
    names = ["a", "b", "c"]
    config = load_prior_config(
        None, ["prior.width=32", "prior.layers=2", "prior.heads=2", f"prior.context={T}"]
    )
    shapes = {"num_codes": K, "num_speakers": 3, "upper_codes": 0, "upper_ratio": 1}
    meta = PriorMeta(1, config, "0" * 64, names, shapes, 300, "", "test")

    def code_set(seqs: list[np.ndarray], who: list[str]) -> CodeSet:
        return CodeSet(
            "0" * 64,
            (0,),
            {0: K},
            [f"u{i}" for i in range(len(seqs))],
            who,
            [w == "z" for w in who],
            {0: seqs},
        )

    train = code_set(data, [names[s] for s in speakers])
    test_speakers = np.array([0, 1, 2, 0, 1, 2])
    test_codes = cyclic_codes(np.random.default_rng(5), test_speakers)
    who = [names[s] for s in test_speakers[:4]] + ["z", "z"]  # the last two: a voice the model lacks
    scores = evaluate_prior(prior, meta, train, code_set(test_codes, who))
    assert list(scores) == ["all", "seen", "heldout"]
    assert (scores["seen"].utterances, scores["heldout"].utterances, scores["all"].codes) == (4, 2, 6 * T)
    mixed = (4 * scores["seen"].bits_per_code + 2 * scores["heldout"].bits_per_code) / 6
    assert scores["all"].bits_per_code == pytest.approx(mixed)
    assert scores["seen"].bits_per_code < scores["seen"].bigram_bits < scores["seen"].log2_k == 4.0
    assert scores["heldout"].bits_per_code > scores["seen"].bits_per_code  # no speaker to condition on
    bits = utterance_bits(prior, test_codes[:1], [0])
    with torch.no_grad():
        expected = (
            prior.bits_per_code(torch.tensor(np.stack(test_codes[:1])), torch.tensor([0]))[0].double().numpy()
        )
    np.testing.assert_allclose(bits[0], expected)
    assert speaker_indices(meta, ["b", "z"], True) == [1, None] and speaker_indices(meta, ["b"], False) == [
        None
    ]
