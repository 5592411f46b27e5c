"""UHD (Jang et al. 2021, "Ultra-High Dimensional Sparse Representations with Binarization").

Per token, a linear head projects the transformer's hidden state into ``dim`` latent dimensions and keeps
only the ``k`` largest (winner-take-all), so each token activates at most k dimensions: sparsity is set
directly, not learned through a regularizer. Tokens are max-pooled into one vector; optionally binarized
(1 for every active dimension, a straight-through estimator in training), so a score counts overlaps.
With several "buckets", one head reads each of several layers and the sub-vectors are concatenated:
the dot product then sums the per-bucket scores. Latent dimension j of bucket b is term id b·dim + j.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from safetensors.torch import load_model, save_model
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM

from lsr.errors import EncoderError
from lsr.retrieval.encoders.arch import UhdSettings
from lsr.retrieval.encoders.base import EncoderSpec
from lsr.retrieval.encoders.blocks import ColumnBlock, stack_sparse
from lsr.retrieval.encoders.device import resolve_device
from lsr.retrieval.encoders.registry import TruncatingTokenizer, load_tokenizer, transformers_quiet
from lsr.retrieval.encoders.screen import DecoderScreen
from lsr.retrieval.encoders.splade import decoder_removed, detach_decoder, screened_logits
from lsr.retrieval.encoders.tracing import traced_body

HEADS_FILE = "uhd_heads.safetensors"


class UhdHead(nn.Module):
    def __init__(self, projections: Sequence[nn.Module], settings: UhdSettings) -> None:
        """``projections``: one per bucket, (batch, tokens, hidden) → (batch, tokens, settings.dim)."""
        super().__init__()
        self.settings = settings
        self.projections = nn.ModuleList(projections)

    @classmethod
    def random(cls, hidden_size: int, settings: UhdSettings, initializer_range: float = 0.02) -> UhdHead:
        projections = [nn.Linear(hidden_size, settings.dim) for _ in settings.layers]
        # The backbone's own initialization (BERT: normal, std 0.02) rather than torch's default, whose ~25× larger
        # weights start training with scores in the hundreds: the ranking loss begins at ~13 instead of ln(batch)
        # and a higher head learning rate collapses every document onto the same few dimensions.
        for projection in projections:
            nn.init.normal_(projection.weight, std=initializer_range)
            nn.init.zeros_(projection.bias)
        return cls(projections, settings)

    @classmethod
    def from_masked_lm(cls, masked_lm: nn.Module, settings: UhdSettings) -> UhdHead:
        """Each bucket's projection a copy of ``masked_lm``'s masked-LM head (transform and decoder). Untrained,
        splade-tiny's head with k = 8 ranks nfcorpus test at nDCG@10 0.3049 against SPLADE's 0.3056
        (bench/uhd_mlm_head.py), where a random head stayed below 0.05 after 300 steps (docs/training)."""
        heads = (getattr(masked_lm, name, None) for name in ("cls", "lm_head"))
        head = next((module for module in heads if isinstance(module, nn.Module)), None)
        if head is None:
            raise EncoderError("a UHD head from the masked-LM head needs a BERT- or RoBERTa-style one (cls or lm_head)")
        vocabulary = masked_lm.config.vocab_size
        if settings.dim != vocabulary:
            raise EncoderError(f"a masked-LM UHD head has the vocabulary's {vocabulary} dimensions, not {settings.dim}")
        return cls([copy.deepcopy(head) for _ in settings.layers], settings)

    @property
    def dim(self) -> int:
        return self.settings.dim * len(self.settings.layers)

    def forward(
        self, hidden_states: Sequence[torch.Tensor], attention_mask: torch.Tensor, screened: bool = False
    ) -> torch.Tensor:
        """hidden_states: every layer's (batch, tokens, hidden) → (batch, buckets · dim), non-negative.

        ``screened`` (CPU: the int8 screen runs on torch._int_mm): each bucket's last linear layer computes only the
        columns DecoderScreen keeps, the union over the batch; equal values and gradients (see _ScreenedUhd), and
        the (batch, tokens, dim) latent values, saved for the backward pass, are never all materialized."""
        padding = attention_mask.unsqueeze(-1) == 0
        buckets = []
        for layer, projection in zip(self.settings.layers, self.projections, strict=True):
            if screened:
                pooled = self._screened_pool(projection, hidden_states[layer], padding)
            else:
                pooled = winners_pool(projection(hidden_states[layer]), padding, self.settings.k)
            buckets.append(self.activate(pooled))
        return torch.cat(buckets, dim=-1)

    def _screened_pool(self, projection: nn.Module, hidden: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        if isinstance(projection, nn.Linear):  # a random head is its decoder alone
            features, decoder = hidden, projection
        else:
            with decoder_removed(projection, _head_decoder(projection, self.settings.dim)) as decoder:
                features = projection(hidden)
        kept, latent = screened_logits(features, padding, decoder)
        pooled = winners_pool(latent, padding, self.settings.k)
        return pooled.new_zeros(pooled.shape[0], self.settings.dim).index_copy(1, kept, pooled)

    def activate(self, pooled: torch.Tensor) -> torch.Tensor:
        """Max-pooled winners → the bucket's weights."""
        if self.settings.head == "mlm":
            # SPLADE's saturation: raw MLM logits put scores in the hundreds, and training from them blew the
            # ranking loss up to 11 within 30 steps and collapsed documents from 133 to 31 terms in 200 (nfcorpus).
            pooled = torch.log1p(pooled)
        if self.settings.binarized:
            # Straight-through: the forward pass sees 0/1, the backward pass the identity.
            pooled = pooled + ((pooled > 0).to(pooled.dtype) - pooled).detach()
        return pooled


def winners_pool(latent: torch.Tensor, padding: torch.Tensor | None, k: int) -> torch.Tensor:
    """(texts, tokens, columns) latent values → (texts, columns): per token its k largest (winner-take-all), ReLU,
    then the max over the texts' real tokens (``padding`` (texts, tokens, 1) True on padded ones; None: none)."""
    winners, positions = latent.topk(min(k, latent.shape[-1]), dim=-1)
    # ReLU keeps the weights non-negative, as the index's unsigned impacts require.
    sparse = torch.zeros_like(latent).scatter(-1, positions, torch.relu(winners))
    if padding is not None:
        sparse = sparse.masked_fill(padding, 0.0)
    return sparse.amax(dim=1)


class UhdModel(nn.Module):
    """Backbone + head; what training optimizes and what the encoder runs."""

    def __init__(self, backbone: nn.Module, head: UhdHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, screened: bool = False, **tokens) -> torch.Tensor:
        outputs = self.backbone(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, **tokens)
        return self.head(outputs.hidden_states, attention_mask, screened)

    @classmethod
    def from_backbone(cls, path: Path, settings: UhdSettings) -> UhdModel:
        """New heads on a pretrained backbone (a masked-LM checkpoint's encoder is fine): random, or its MLM head."""
        # One load for an MLM head: the backbone is the masked-LM model's own encoder.
        with transformers_quiet(keep_warnings=False):  # the unused MLM head of a checkpoint is expected
            masked_lm = AutoModelForMaskedLM.from_pretrained(path) if settings.head == "mlm" else None
            backbone = masked_lm.base_model if masked_lm is not None else AutoModel.from_pretrained(path)
        layer_count = backbone.config.num_hidden_layers
        for layer in settings.layers:
            if not -layer_count - 1 <= layer <= layer_count:
                raise EncoderError(f"UHD layer {layer} does not exist: the backbone has {layer_count} layers (0 = embeddings)")
        if masked_lm is not None:
            return cls(backbone, UhdHead.from_masked_lm(masked_lm, settings))
        initializer_range = getattr(backbone.config, "initializer_range", 0.02)
        return cls(backbone, UhdHead.random(backbone.config.hidden_size, settings, initializer_range))

    @classmethod
    def load(cls, path: Path, settings: UhdSettings) -> UhdModel:
        model = cls.from_backbone(path, settings)
        heads = path / HEADS_FILE
        if not heads.is_file():
            raise EncoderError(f"{path} is a UHD model folder without {HEADS_FILE}")
        try:
            load_model(model.head, heads)
        except RuntimeError as exc:  # shapes that disagree with lsr_encoder.json
            raise EncoderError(f"{heads} does not fit the settings in the folder: {exc}") from exc
        return model

    def save(self, path: Path) -> None:
        self.backbone.save_pretrained(path)
        save_model(self.head, str(path / HEADS_FILE))  # an MLM head's decoder shares its bias: save_file refuses that


class UhdEncoder:
    def __init__(
        self,
        name: str,
        path: Path,
        content_hash: str,
        settings: UhdSettings,
        arch_params: dict,
        *,
        query_max_length: int,
        doc_max_length: int,
        batch_size: int = 16,
        device: str = "cpu",
    ) -> None:
        config = AutoConfig.from_pretrained(path)
        limit = getattr(config, "max_position_embeddings", 512)
        for label, length in (("query", query_max_length), ("document", doc_max_length)):
            if not 1 <= length <= limit:
                raise EncoderError(f"{label} max length must be between 1 and {limit} for {name!r}, got {length}")
        self.spec = EncoderSpec("uhd", name, content_hash, query_max_length, doc_max_length, arch=arch_params)
        self.batch_size = batch_size
        self.settings = settings
        self.tokenizer = load_tokenizer(path)
        self._token_ids = TruncatingTokenizer(self.tokenizer)
        self._device = resolve_device(device)
        self._model = UhdModel.load(path, settings).to(self._device).eval()
        self.dim = self._model.head.dim
        self._screened = _ScreenedUhd(self._model) if self._device.type == "cpu" else None

    def encode_queries(self, texts: Sequence[str]) -> sp.csr_matrix:
        return self._encode(texts, self.spec.query_max_length)

    def encode_documents(self, texts: Sequence[str]) -> sp.csr_matrix:
        return self._encode(texts, self.spec.doc_max_length)

    def decode(self, ids: Sequence[int]) -> list[str]:
        return [f"uhd{int(i) // self.settings.dim}:{int(i) % self.settings.dim}" for i in ids]

    def _encode(self, texts: Sequence[str], max_length: int) -> sp.csr_matrix:
        texts = list(texts)
        if not texts:  # the tokenizer refuses an empty list
            return sp.csr_matrix((0, self.dim), dtype=np.float32)
        if self._screened is None:
            return self._encode_batches(texts, max_length)
        ids = self._token_ids(texts, max_length)
        with torch.inference_mode():
            return stack_sparse((self._screened.weights(row) for row in ids), self.dim)

    def _encode_batches(self, texts: list[str], max_length: int) -> sp.csr_matrix:
        """The model's own forward pass on padded batches: every latent dimension of every token computed."""
        blocks = [sp.csr_matrix((0, self.dim), dtype=np.float32)]
        for start in range(0, len(texts), self.batch_size):
            tokens = self.tokenizer(
                texts[start : start + self.batch_size], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            )
            with torch.inference_mode():
                blocks.append(sp.csr_matrix(self._model(**tokens.to(self._device)).cpu().numpy()))
        return sp.vstack(blocks, format="csr").astype(np.float32)


class _BucketFeatures(nn.Module):
    """(1, tokens) ids of one unpadded text → (buckets, tokens, hidden): each bucket's decoder input."""

    def __init__(self, backbone: nn.Module, layers: Sequence[int], transforms: Sequence[nn.Module]) -> None:
        super().__init__()
        self.backbone = backbone
        self.layers = list(layers)
        self.transforms = nn.ModuleList(transforms)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        mask = torch.ones_like(input_ids)
        hidden = self.backbone(input_ids=input_ids, attention_mask=mask, output_hidden_states=True).hidden_states
        return torch.stack([transform(hidden[layer])[0] for layer, transform in zip(self.layers, self.transforms, strict=True)])


class _ScreenedUhd:
    """UHD weights of one text without computing every latent dimension (CPU).

    A token's winners that count are its k largest latent values that are > 0 (ReLU zeroes the rest), and every
    latent value > 0 is in a column the SPLADE screen keeps (encoders/screen.py: a column it drops is ≤ 0 on every
    token, provably). So each bucket's decoder runs on those columns only (~2% of 30,522 for an MLM head) and the k
    winners are chosen among them: the same winners and weights as the full forward pass, up to the last bits of
    the logits (the matmul is narrower) and so to which of two tied winners is kept. Gradients too (training's
    UhdHead(screened=True)): a winner ≤ 0 gets none through ReLU either way. bench/encode.py --uhd measures it.
    """

    def __init__(self, model: UhdModel) -> None:
        self.head = model.head
        transforms, self.decoders = [], []
        for projection in model.head.projections:
            transform, decoder = _split_projection(projection, model.head.settings.dim)
            transforms.append(transform)
            weight, bias = decoder.weight.detach(), decoder.bias.detach() if decoder.bias is not None else None
            self.decoders.append((DecoderScreen(weight, bias), weight, bias))
        self.body = traced_body(_BucketFeatures(model.backbone, model.head.settings.layers, transforms))

    def weights(self, ids: list[int]) -> ColumnBlock:
        features = self.body(torch.tensor([ids]))
        dim, columns, weights = self.head.settings.dim, [], []
        for bucket, (screen, weight, bias) in enumerate(self.decoders):
            kept = screen.columns(features[bucket : bucket + 1], None)
            latent = nn.functional.linear(features[bucket : bucket + 1], weight[kept], bias[kept] if bias is not None else None)
            columns.append(kept + bucket * dim)
            weights.append(self.head.activate(winners_pool(latent, None, self.head.settings.k)))
        return ColumnBlock(torch.cat(columns), torch.cat(weights, dim=1))


def _head_decoder(head: nn.Module, dim: int) -> nn.Linear:
    """An MLM head's decoder: its one linear layer into the bucket's ``dim`` dimensions."""
    decoders = [module for module in head.modules() if isinstance(module, nn.Linear) and module.out_features == dim]
    if len(decoders) != 1:
        raise EncoderError(f"a UHD head needs exactly one linear layer into its {dim} dimensions, found {len(decoders)}")
    return decoders[0]


def _split_projection(projection: nn.Module, dim: int) -> tuple[nn.Module, nn.Linear]:
    """A copy of ``projection`` without its decoder (an MLM head's transform; a random head's identity), and the
    decoder."""
    if isinstance(projection, nn.Linear):  # a random head is its decoder alone
        return nn.Identity(), projection
    transform = copy.deepcopy(projection)
    return transform, detach_decoder(transform, _head_decoder(transform, dim))
