"""The hierarchical VQ-VAE: one encoder / quantiser / decoder per level (Jukebox-like).

Each level's codes decode to audio on their own (Dhariwal et al., 2020, "Jukebox", sec. 3), so a
user picks a bitrate by picking a level; the decoders are conditioned on a speaker embedding so the
codes of one voice can be rendered in another (van den Oord et al., 2017, sec. 4.3).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vqaudio.config import LevelConfig, ModelConfig, QuantizerConfig
from vqaudio.errors import UserError
from vqaudio.models.decoder import Decoder
from vqaudio.models.encoder import Encoder
from vqaudio.models.meta import CheckpointMeta
from vqaudio.models.perturb import perturb_voices
from vqaudio.models.speaker import SpeakerAdversary, SpeakerEncoder
from vqaudio.quantize import QuantizerOutput, VectorQuantizer

__all__ = [
    "Codes",
    "LevelModel",
    "ReceptiveField",
    "VQVAE",
    "VQVAEOutput",
    "build_model",
    "as_batch",
    "time_jitter",
]


class Codes(Tensor):
    """A ``LongTensor`` ``[B, frames]`` of codes that remembers the audio length it came from.

    ``codes.num_samples`` lets :meth:`VQVAE.decode` return exactly as many samples as were encoded, and
    ``codes.level`` makes it refuse to decode them at another level; results of tensor operations are
    plain tensors again.
    """

    num_samples: int | None
    level: int | None

    @staticmethod
    def wrap(t: Tensor, num_samples: int, level: int) -> Codes:
        out = t.as_subclass(Codes)
        out.num_samples = num_samples
        out.level = level
        return out

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        result = super().__torch_function__(func, types, args, kwargs or {})
        return _unwrap(result)


def _unwrap(x: object) -> object:
    if isinstance(x, Codes):
        return x.as_subclass(Tensor)
    if isinstance(x, (tuple, list)):
        return type(x)(_unwrap(v) for v in x)
    return x


def _rows(x: Tensor, pick: Tensor | None) -> Tensor:
    """Batch rows ``pick`` of ``x`` (``None``: all of ``x``)."""
    return x if pick is None else x.index_select(0, pick)


def time_jitter(z: Tensor, p: float) -> Tensor:
    """Replace each frame of ``z`` ``[B, D, T]`` by its left or right neighbour with probability ``p``.

    The time-jitter regulariser of Chorowski et al. (2019, "Unsupervised speech representation
    learning using WaveNet autoencoders"): the decoder cannot rely on exact per-frame codes, which
    pushes the codes toward slowly varying, speaker-independent content.  Training only.
    """
    if p <= 0 or z.shape[-1] < 2:
        return z
    t = z.shape[-1]
    r = torch.rand(z.shape[0], t, device=z.device)
    shift = (r < p / 2).long() * -1 + (r > 1 - p / 2).long()
    idx = (torch.arange(t, device=z.device)[None] + shift).clamp(0, t - 1)
    return torch.gather(z, 2, idx[:, None].expand(-1, z.shape[1], -1))


def as_batch(wav: Tensor) -> Tensor:
    """Accept ``[T]``, ``[B, T]`` or ``[B, 1, T]`` audio and return ``[B, 1, T]`` float."""
    if not torch.is_tensor(wav):
        wav = torch.as_tensor(wav)
    if wav.dim() == 1:
        wav = wav[None, None]
    elif wav.dim() == 2:
        wav = wav[:, None]
    elif wav.dim() != 3 or wav.shape[1] != 1:
        raise ValueError(f"expected audio shaped [T], [B, T] or [B, 1, T], got {tuple(wav.shape)}")
    if wav.shape[-1] < 1:
        raise ValueError("audio must hold at least one sample")
    return wav if wav.is_floating_point() else wav.float()


@dataclass(frozen=True)
class ReceptiveField:
    """One level's receptive field as one-sided context ``(left, right)``, each in its part's input.

    ``encoder``: audio samples before and after a code frame's own ``hop`` samples that its code
    depends on. ``decoder``: code frames before and after frame ``f`` that the audio of frame ``f``
    (samples ``f * hop .. (f + 1) * hop - 1``) depends on. A chunk with this much context on each side
    codes and decodes exactly as the whole signal does.
    """

    encoder: tuple[int, int]
    decoder: tuple[int, int]


class LevelModel(nn.Module):
    """Encoder, quantiser and decoder of one level."""

    def __init__(
        self,
        level: LevelConfig,
        quantizer: QuantizerConfig,
        cond_dim: int,
        front: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        self.hop = level.hop
        # whether the decoder takes the speaker vector (LevelConfig.speaker_conditioned)
        self.conditioned = level.speaker_conditioned and cond_dim > 0
        common = dict(
            strides=level.strides,
            code_dim=level.code_dim,
            channels=level.channels,
            max_channels=level.max_channels,
            blocks_per_scale=level.blocks_per_scale,
            bottleneck_blocks=level.bottleneck_blocks,
            dilations=level.dilations,
            kernel_size=level.kernel_size,
        )
        self.encoder = Encoder(**{**common, "blocks_per_scale": level.encoder_blocks}, front=front)  # type: ignore[arg-type]
        self.quantizer = VectorQuantizer(
            level.codebook_size,
            level.code_dim,
            mode=quantizer.mode,
            decay=quantizer.decay,
            commitment=quantizer.commitment,
            codebook_weight=quantizer.codebook_weight,
            normalize=quantizer.normalize,
            init=quantizer.init,
            kmeans_iters=quantizer.kmeans_iters,
            restart_threshold=quantizer.restart_threshold,
            restart_every=quantizer.restart_every,
            entropy_weight=quantizer.entropy_weight,
            entropy_temperature=quantizer.entropy_temperature,
            usage_window=quantizer.usage_window,
            standardize=quantizer.standardize,
            stats_momentum=quantizer.stats_momentum,
        )
        cond_dim = cond_dim if self.conditioned else 0
        self.decoder = Decoder(**common, cond_dim=cond_dim, istft_strides=level.istft_strides)  # type: ignore[arg-type]

    def condition(self, cond: Tensor | None) -> Tensor | None:
        """The speaker vector this level's decoder takes: ``cond``, or None for an unconditioned level."""
        return cond if self.conditioned else None

    def pad(self, wav: Tensor) -> Tensor:
        """Right-pad ``[B, 1, T]`` with zeros to a whole number of frames."""
        extra = (-wav.shape[-1]) % self.hop
        return F.pad(wav, (0, extra)) if extra else wav

    def receptive_field(self, front: Encoder | None = None) -> ReceptiveField:
        """This level's :class:`ReceptiveField`, from its encoder's and decoder's layers; ``front`` is the
        encoder whose features this level's encoder reads (``model.shared_front``), whose layers count
        too. :meth:`VQVAE.receptive_field` passes it."""
        return ReceptiveField(self.encoder.receptive_field(front), self.decoder.receptive_field)


@dataclass
class VQVAEOutput:
    """Training forward pass: one reconstruction ``[B, 1, T]`` and quantiser output per level, and the
    speaker encoder's regression loss onto the speaker table (when the model has one), and per level the
    speaker adversary's classification loss and accuracy (when ``model.speaker_adversary > 0``)."""

    recon: list[Tensor]
    quantizer: list[QuantizerOutput]
    speaker_loss: Tensor | None = None
    adversary_loss: list[Tensor] | None = None
    adversary_accuracy: list[Tensor] | None = None


def _speaker_encoder_loss(embedded: Tensor, table: Tensor, unknown: Tensor | None) -> Tensor:
    """Mean squared error of the speaker encoder's ``[B, D]`` embeddings against the table's vectors,
    over the items whose voice has a table row (``unknown`` ``[B]`` marks the others; 0 when none has)."""
    if unknown is None:
        return F.mse_loss(embedded.float(), table.detach().float())
    err = (embedded.float() - table.detach().float()).pow(2).mean(-1)
    known = (~unknown).float()
    return (err * known).sum() / known.sum().clamp_min(1.0)


class VQVAE(nn.Module):
    """Hierarchical VQ-VAE with a speaker-conditioned decoder per level.

    Attributes: ``sample_rate``, ``num_levels``, ``speakers`` (names in index order), ``config``, and
    ``checkpoint`` (its :class:`~vqaudio.models.meta.CheckpointMeta` when loaded by ``load_model``).
    """

    checkpoint: CheckpointMeta | None = None

    def __init__(self, config: ModelConfig, speakers: Sequence[str] = ()) -> None:
        super().__init__()
        self.config = config
        self.speakers: list[str] = list(speakers)
        # what the corpus says about each speaker (VCTK: age, gender, accent, region); saved in checkpoints
        self.speaker_info: dict[str, dict[str, str | None]] = {}
        cond_dim = config.speaker_dim
        self.speaker_embedding = nn.Embedding(max(1, len(self.speakers)), cond_dim) if cond_dim > 0 else None
        self.speaker_encoder = (
            SpeakerEncoder(config.sample_rate, cond_dim) if config.speaker_encoder and cond_dim > 0 else None
        )
        first = LevelModel(config.levels[0], config.quantizer, cond_dim)
        front = (
            (len(config.levels[0].strides), first.encoder.feature_channels) if config.shared_front else None
        )
        self.levels = nn.ModuleList(
            [first, *(LevelModel(lv, config.quantizer, cond_dim, front) for lv in config.levels[1:])]
        )
        self.speaker_adversary = (
            nn.ModuleList(
                SpeakerAdversary(lv.code_dim, len(self.speakers), config.speaker_adversary)
                for lv in config.levels
            )
            if config.speaker_adversary > 0 and len(self.speakers) > 1
            else None
        )

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def num_levels(self) -> int:
        return len(self.levels)

    @property
    def hops(self) -> list[int]:
        return [lv.hop for lv in self.config.levels]

    def input_multiple(self, level: int) -> int:
        """Encoder inputs are zero-padded to a multiple of this many samples: the level's hop, or with
        ``shared_front`` the least common multiple of every level's hop (the shared features serve all)."""
        if self.config.shared_front:
            return math.lcm(*self.hops)
        return self.hops[level]

    def _latents(
        self, wav: Tensor, levels: Sequence[int], items: Sequence[Tensor | None] | None = None
    ) -> list[Tensor]:
        """Encoder outputs ``[B, code_dim, ceil(T / hop)]`` of ``levels`` for ``wav`` ``[B, 1, T]``.

        ``items[k]`` (an index tensor, or ``None`` for the whole batch) restricts level ``levels[k]`` to
        those batch items (its output is ``[len(items[k]), code_dim, frames]``); a shared front still
        runs once, on the whole batch.
        """
        t = wav.shape[-1]
        picks = list(items) if items is not None else [None] * len(levels)
        if not self.config.shared_front:
            return [
                self.level_model(i).encoder(self.level_model(i).pad(_rows(wav, pick)))
                for i, pick in zip(levels, picks, strict=True)
            ]
        unit = self.input_multiple(0)
        x = F.pad(wav, (0, (-t) % unit))
        first = self.level_model(0).encoder
        features = first.features(x)
        out = []
        for i, pick in zip(levels, picks, strict=True):
            level = self.level_model(i)
            feats = _rows(features, pick)
            z = first.latents(feats) if i % self.num_levels == 0 else level.encoder(feats)
            out.append(z[..., : -(-t // level.hop)])
        return out

    def perturbed_levels(self) -> list[int]:
        """The levels whose encoders hear voice-perturbed copies in training
        (``model.voice_perturbation_levels``; none when ``model.voice_perturbation`` is 0)."""
        if self.config.voice_perturbation <= 0:
            return []
        chosen = self.config.voice_perturbation_levels
        if chosen is None:
            return list(range(self.num_levels))
        return sorted({i % self.num_levels for i in chosen})

    def _heard_latents(self, wav: Tensor, picks: Sequence[Tensor | None]) -> list[Tensor]:
        """Every level's encoder output for a training pass: the perturbed levels read a voice-shifted
        copy of ``wav`` (one draw for the batch), the others the true audio (a shared front then runs
        once on each)."""
        levels = list(range(self.num_levels))
        perturbed = self.perturbed_levels() if self.training else []
        if not perturbed:
            return self._latents(wav, levels, picks)
        heard = perturb_voices(wav, self.config.voice_perturbation)
        clean = [i for i in levels if i not in perturbed]
        out = dict(
            zip(perturbed, self._latents(heard, perturbed, [picks[i] for i in perturbed]), strict=True)
        )
        if clean:
            out.update(zip(clean, self._latents(wav, clean, [picks[i] for i in clean]), strict=True))
        return [out[i] for i in levels]

    def receptive_field(self, level: int) -> ReceptiveField:
        """The :class:`ReceptiveField` of ``level``, including the shared front it reads, if any."""
        index = self.check_level(level)
        shared = self.config.shared_front and index != 0
        return self.level_model(index).receptive_field(self.level_model(0).encoder if shared else None)

    def check_level(self, level: int) -> int:
        """``level`` as an index ``0..num_levels - 1`` (negative counts from the coarsest).

        Raises:
            UserError: the model has no such level (the message names the valid ones).
        """
        if not -self.num_levels <= level < self.num_levels:
            raise UserError(f"level {level} does not exist: this model has levels 0..{self.num_levels - 1}")
        return level % self.num_levels

    def level_model(self, level: int) -> LevelModel:
        """The encoder, quantiser and decoder of ``level`` (checked as :meth:`check_level` does)."""
        return self.levels[self.check_level(level)]  # type: ignore[return-value]

    def code_counts(self, level: int) -> Tensor:
        """``[K]`` float: how often ``level``'s codes were used in training (its quantiser's EMA counts),
        from which the entropy coder's frequency table is made."""
        return self.level_model(level).quantizer.ema_count.detach()

    def speaker_tensors(self) -> list[str]:
        """State-dict names of the tensors indexed by speaker along their first dimension (the speaker
        table and the speaker adversaries' output layers): fine-tuning merges them by speaker name."""
        names = ["speaker_embedding.weight"] if self.speaker_embedding is not None else []
        for i, adversary in enumerate(self.speaker_adversary or []):
            assert isinstance(adversary, SpeakerAdversary)
            names += [f"speaker_adversary.{i}.{n}" for n in adversary.speaker_tensors()]
        return names

    def speaker_index(self, speaker: str | int) -> int:
        """Index of a speaker name (or a checked index); unknown names list close matches."""
        if isinstance(speaker, str) and not speaker.lstrip("-").isdigit():
            if speaker in self.speakers:
                return self.speakers.index(speaker)
            close = difflib.get_close_matches(speaker, self.speakers, n=5, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UserError(f"unknown speaker '{speaker}' ({len(self.speakers)} known){hint}")
        index = int(speaker)
        if not 0 <= index < max(1, len(self.speakers)):
            raise UserError(f"speaker index {index} out of range 0..{max(1, len(self.speakers)) - 1}")
        return index

    def speaker_vector(
        self, speaker: Tensor | str | int | None, batch: int, device: torch.device
    ) -> Tensor | None:
        """``[B, speaker_dim]`` conditioning (None for unconditioned models); ``None`` = speaker 0.

        ``speaker`` is a name, an index, a tensor of indices ``[B]``, or a float embedding ``[D]`` /
        ``[B, D]`` (from :meth:`embed_reference` or an enrolled voice).
        """
        if self.speaker_embedding is None:
            return None
        if speaker is None:
            speaker = 0
        if torch.is_tensor(speaker) and speaker.is_floating_point():
            emb = speaker.to(device).reshape(-1, self.config.speaker_dim)
            return emb.expand(batch, -1) if emb.shape[0] == 1 else emb
        if torch.is_tensor(speaker):
            idx = speaker.to(device=device, dtype=torch.long).reshape(-1)
            if idx.numel() == 1:
                idx = idx.expand(batch)
        else:
            idx = torch.full((batch,), self.speaker_index(speaker), dtype=torch.long, device=device)
        return self.speaker_embedding(idx)

    @torch.no_grad()
    def embed_reference(self, clips: Sequence[Tensor]) -> Tensor:
        """Mean speaker-encoder embedding ``[speaker_dim]`` of clips, each ``[T]`` at ``sample_rate``."""
        if self.speaker_encoder is None:
            raise UserError("this model has no speaker encoder (train it with model.speaker_encoder=true)")
        device = next(self.parameters()).device
        was_training = self.speaker_encoder.training
        self.speaker_encoder.eval()
        embs = [self.speaker_encoder(as_batch(c).to(device)) for c in clips]
        self.speaker_encoder.train(was_training)
        return torch.cat(embs).mean(0)

    def forward(
        self, wav: Tensor, speaker: Tensor | None = None, items: Sequence[Tensor | None] | None = None
    ) -> VQVAEOutput:
        """Training pass over every level: ``wav`` ``[B, 1, T]``, ``speaker`` ``[B]`` indices.

        Index -1 marks an item whose voice is in no table row (the trainer's speed perturbation,
        ``data.augment.speed``): with a speaker encoder, it is conditioned on the encoder's embedding of
        the item itself and left out of the speaker-encoder loss and the adversary; without one, row 0
        stands in (the config refuses speed perturbation where a decoder would then use it).

        ``items`` (one entry per level: a ``[B_i]`` index tensor or ``None`` = the whole batch) makes
        level ``i`` encode, quantise and decode only those items: its ``recon`` is ``[B_i, 1, T]`` (the
        trainer's ``train.level_fraction``). The speaker encoder still sees the whole batch.
        """
        wav = as_batch(wav)
        picks = list(items) if items is not None else [None] * self.num_levels
        if len(picks) != self.num_levels:
            raise ValueError(f"items has {len(picks)} entries for {self.num_levels} levels")
        t = wav.shape[-1]
        labels = unknown = None
        if torch.is_tensor(speaker) and not speaker.is_floating_point():
            labels = speaker.to(wav.device, torch.long).reshape(-1)
            unknown = labels < 0  # voices with no table entry (speed-perturbed items): index -1
        cond = self.speaker_vector(
            labels.clamp_min(0) if labels is not None else speaker, wav.shape[0], wav.device
        )
        speaker_loss = None
        if self.speaker_encoder is not None and cond is not None:
            embedded = self.speaker_encoder(wav)
            speaker_loss = _speaker_encoder_loss(embedded, cond, unknown)
            mix = self.config.speaker_encoder_mix
            if self.training and mix > 0:
                # condition some items on their own reference embedding, so the decoder learns the
                # encoder's continuous space rather than only the table's points (any-to-any conversion)
                use = torch.rand(wav.shape[0], 1, device=wav.device) < mix
                cond = torch.where(use, embedded.to(cond.dtype), cond)
            if unknown is not None:
                # a voice outside the table is conditioned on the encoder's embedding of itself
                cond = torch.where(unknown[:, None], embedded.to(cond.dtype), cond)
        adversary = self.speaker_adversary if labels is not None else None
        recon, qouts, adv_loss, adv_acc = [], [], [], []
        latents = self._heard_latents(wav, picks)
        for i, pick in enumerate(picks):
            level = self.level_model(i)
            q = level.quantizer(latents[i])
            if adversary is not None and labels is not None:
                loss, acc = adversary[i](q.quantized, _rows(labels, pick))
                adv_loss.append(loss)
                adv_acc.append(acc)
            z = time_jitter(q.quantized, self.config.time_jitter) if self.training else q.quantized
            level_cond = None if cond is None or not level.conditioned else _rows(cond, pick)
            recon.append(level.decoder(z, level_cond)[..., :t])
            qouts.append(q)
        if adversary is None:
            return VQVAEOutput(recon, qouts, speaker_loss)
        return VQVAEOutput(recon, qouts, speaker_loss, adv_loss, adv_acc)

    @torch.no_grad()
    def encode(self, wav: Tensor, level: int = 0) -> Codes:
        """Audio ``[T]``, ``[B, T]`` or ``[B, 1, T]`` at ``sample_rate`` -> :class:`Codes`.

        The codes are ``[B, ceil(T / hop)]``; they remember ``T`` for :meth:`decode`.
        """
        wav = as_batch(wav).to(next(self.parameters()).device)
        lv = self.level_model(level)
        codes = lv.quantizer.lookup_codes(self._latents(wav, [level])[0])
        return Codes.wrap(codes, wav.shape[-1], level % self.num_levels)

    @torch.no_grad()
    def decode(
        self,
        codes: Tensor,
        level: int = 0,
        speaker: Tensor | str | int | None = None,
        length: int | None = None,
    ) -> Tensor:
        """Codes ``[B, frames]`` (or ``[frames]``) -> audio ``[B, 1, T]``.

        ``T`` is ``length`` if given, else the encoded length remembered by :class:`Codes`, else
        ``frames * hop``.
        """
        lv = self.level_model(level)
        made_at = getattr(codes, "level", None)
        if made_at is not None and made_at != level % self.num_levels:
            raise UserError(f"these codes are level {made_at}'s; decoding them at level {level} is refused")
        if length is None:
            length = getattr(codes, "num_samples", None)
        codes = codes.as_subclass(Tensor) if isinstance(codes, Codes) else torch.as_tensor(codes)
        if codes.dim() == 1:
            codes = codes[None]
        k = lv.quantizer.codebook_size
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= k):
            raise UserError(f"codes out of range for level {level} (codebook size {k})")
        device = next(self.parameters()).device
        codes = codes.to(device=device, dtype=torch.long)
        cond = lv.condition(self.speaker_vector(speaker, codes.shape[0], device))
        wav = lv.decoder(lv.quantizer.dequantize(codes), cond)
        return wav[..., :length] if length is not None else wav


def build_model(config: ModelConfig, speakers: Sequence[str] = ()) -> VQVAE:
    """The one place a config turns into modules."""
    return VQVAE(config, speakers)
