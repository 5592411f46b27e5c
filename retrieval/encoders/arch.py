"""The architecture file that `lsr train` writes into a model folder, so loaders know what the folder holds.

    lsr_encoder.json  {"arch": "splade" | "uhd", "query_encoder": "model" | "bow", "idf": bool,
                       and for UHD: "dim", "k", "layers", "binarized", and "head": "mlm" where it is}

A folder without the file is a plain masked-LM checkpoint: SPLADE on both sides.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from lsr import defaults
from lsr.errors import EncoderError

ARCH_FILE = "lsr_encoder.json"
ARCHS = ("splade", "uhd")
QUERY_ENCODERS = ("model", "bow")
UHD_HEADS = ("random", "mlm")


@dataclass(frozen=True)
class UhdSettings:
    dim: int = defaults.Training.uhd_dim  # latent dimensions per bucket
    k: int = defaults.Training.uhd_k  # winners kept per token: the sparsity knob
    layers: tuple[int, ...] = (-1,)  # hidden layers that each feed a head ("buckets"); -1 is the last
    binarized: bool = False
    # "mlm": each bucket's head starts as the checkpoint's masked-LM head (dim = its vocabulary), which already
    # retrieves; "random": a fresh projection (BERT's initialization)
    head: str = "random"

    def __post_init__(self) -> None:
        if self.head not in UHD_HEADS:
            raise EncoderError(f"UHD head must be one of {', '.join(UHD_HEADS)}, got {self.head!r}")
        if self.dim < 1:
            raise EncoderError(f"UHD dimension must be positive, got {self.dim}")
        if not 1 <= self.k <= self.dim:
            raise EncoderError(f"UHD k must be between 1 and the dimension {self.dim}, got {self.k}")
        if not self.layers or len(set(self.layers)) != len(self.layers):
            raise EncoderError(f"UHD layers must be distinct and at least one, got {list(self.layers)}")


@dataclass(frozen=True)
class Architecture:
    arch: str = "splade"
    query_encoder: str = "model"  # "bow": inference-free queries, tokenizer only
    idf: bool = False  # bow queries weighted by the IDF stored beside the model
    uhd: UhdSettings | None = None

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise EncoderError(f"architecture must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        if self.query_encoder not in QUERY_ENCODERS:
            raise EncoderError(f"query encoder must be one of {', '.join(QUERY_ENCODERS)}, got {self.query_encoder!r}")
        if (self.arch == "uhd") != (self.uhd is not None):
            raise EncoderError("UHD settings go with the uhd architecture, and only with it")
        if self.arch == "uhd" and self.query_encoder == "bow":
            raise EncoderError("inference-free (bag-of-words) queries need vocabulary dimensions: use the splade architecture")
        if self.idf and self.query_encoder != "bow":
            raise EncoderError("IDF weights apply to bag-of-words queries only")

    @property
    def spec_params(self) -> dict | None:
        """What an index manifest records; None for plain SPLADE so its spec matches the base model's."""
        if self.arch == "splade" and self.query_encoder == "model":
            return None
        params = {"arch": self.arch, "query_encoder": self.query_encoder, "idf": self.idf}
        if self.uhd:
            params.update(asdict(self.uhd), layers=list(self.uhd.layers))
            if self.uhd.head == "random":  # not recorded, so models and indexes from before the option still match
                del params["head"]
        return params

    def to_dict(self) -> dict:
        return {"arch": self.arch, "query_encoder": self.query_encoder, "idf": self.idf, **(self.spec_params or {})}

    @classmethod
    def from_dict(cls, data: dict) -> Architecture:
        uhd = None
        if data.get("arch") == "uhd":
            layers = tuple(int(i) for i in data["layers"])
            uhd = UhdSettings(int(data["dim"]), int(data["k"]), layers, bool(data["binarized"]), str(data.get("head", "random")))
        return cls(str(data["arch"]), str(data.get("query_encoder", "model")), bool(data.get("idf", False)), uhd)


def read_architecture(folder: Path) -> Architecture:
    path = folder / ARCH_FILE
    if not path.is_file():
        return Architecture()
    try:
        return Architecture.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise EncoderError(f"{path} is corrupt: {exc}") from exc


def write_architecture(folder: Path, architecture: Architecture) -> None:
    temporary = folder / f"{ARCH_FILE}.tmp"
    temporary.write_text(json.dumps(architecture.to_dict(), indent=2) + "\n")
    os.replace(temporary, folder / ARCH_FILE)
