"""ONNX exports of an encoder's transformer, for ONNX Runtime and OpenVINO: built once per model, cached outside
the model folder.

The model folder may be read-only package data, so exports go to lsr's cache folder (``$LSR_CACHE_DIR``, else
``$XDG_CACHE_HOME/lsr``, else ``~/.cache/lsr``), under ``onnx/<model content hash>/``: a model changed in place
rehashes and gets a new export. Each file is written in a fresh temporary folder beside it and renamed into place,
so a reader never sees half a file and two processes exporting at once both end with a whole one.

The dense graph maps (input_ids, attention_mask, token_type_ids) to the last hidden state; tokenization and pooling
stay in sentence-transformers' hands (retrieval/encoders/dense.py). A SPLADE encoder's graph maps one unpadded
text's input_ids to its MLM transform's output, for lone queries (retrieval/encoders/splade.py). ``int8`` is the
dense graph dynamically quantized with the
settings of sentence-transformers' ``export_dynamic_quantized_onnx_model(model, "avx512_vnni", ...)`` (optimum's
``AutoQuantizationConfig.avx512_vnni(is_static=False)``): u8 activations, s8 symmetric per-channel weights, full
range, every operator ONNX Runtime quantizes dynamically. sentence-transformers' own ONNX backend needs
optimum-onnx, whose releases pin transformers < 4.58, so lsr exports with torch and quantizes with ONNX Runtime.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

from lsr.errors import EncoderError

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
EXPORT_VERSION = 2  # part of the cache path: bump when the exports below change
FILES = {"fp32": "model.onnx", "int8": "model_qint8_avx512_vnni.onnx"}
UNPADDED_FILE = "unpadded.onnx"


def cache_dir() -> Path:
    configured = os.environ.get("LSR_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "lsr"


def onnx_model(transformer, content_hash: str, weights: str = "fp32") -> Path:
    """The cached export of ``transformer`` (a transformers model whose weights hash to ``content_hash``), building it
    first if it is missing."""
    if weights == "int8":
        source = onnx_model(transformer, content_hash, "fp32")
        return _cached(content_hash, FILES["int8"], lambda partial: _quantize(source, partial))
    return _cached(content_hash, FILES["fp32"], lambda partial: _export_last_hidden_state(transformer, partial))


def unpadded_onnx_model(build_module, content_hash: str) -> Path:
    """The cached export of the module ``build_module()`` returns, which maps one unpadded text's (1, tokens) ids to
    a (1, tokens, …) tensor (a SPLADE encoder's transformer and MLM transform: retrieval/encoders/splade.py) and
    whose weights hash to ``content_hash``; built only if the cache lacks it."""
    import torch

    example = (torch.tensor([[101, 1037, 2460, 3793, 102]]),)
    dynamic = {"input_ids": {1: "tokens"}, "output": {1: "tokens"}}
    return _cached(content_hash, UNPADDED_FILE, lambda partial: _export(build_module(), example, "output", dynamic, partial))


def _cached(content_hash: str, name: str, write) -> Path:
    target = cache_dir() / "onnx" / f"v{EXPORT_VERSION}" / content_hash[:32] / name
    if not target.is_file():
        _atomically(target, write)
    return target


def _atomically(target: Path, write) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".partial-") as scratch:
            partial = Path(scratch) / target.name
            write(partial)
            os.replace(partial, target)
    except OSError as exc:
        raise EncoderError(f"cannot write the ONNX export {target} (set LSR_CACHE_DIR to a writable folder): {exc}") from exc


def _export_last_hidden_state(transformer, path: Path) -> None:
    import torch

    class LastHiddenState(torch.nn.Module):  # keyword arguments: transformers 5 reordered BertModel.forward's
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    # Two texts of different lengths, so the example has padding and the mask is traced as data, not a constant.
    example = (
        torch.tensor([[101, 1037, 2460, 3793, 102], [101, 2460, 102, 0, 0]]),
        torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]),
        torch.zeros(2, 5, dtype=torch.long),
    )
    dynamic = {name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "last_hidden_state")}
    _export(LastHiddenState(), example, "last_hidden_state", dynamic, path)


def _export(module, example: tuple, output: str, dynamic: dict, path: Path) -> None:
    """``module`` traced on ``example`` (its inputs, named as INPUTS in order) and written to ``path``, its output
    named ``output``; ``dynamic``: the inputs' and the output's dynamic axes by name."""
    import torch

    try:
        import onnx  # noqa: F401  (torch's exporter serializes with it)
    except ImportError as exc:
        raise EncoderError('the ONNX backends need the onnx and onnxruntime packages: pip install "lsr[onnx]"') from exc
    # The tracer warns of Python booleans it freezes: transformers' mask padding (always 0 when the mask covers the
    # text, as here) and its is-causal test (false for an encoder given a mask); the test suite checks every length.
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The TorchScript exporter: a second here, where the torch.export one takes ten and needs onnxscript too.
        torch.onnx.export(
            module.eval(),
            example,
            str(path),
            input_names=list(INPUTS[: len(example)]),
            output_names=[output],
            dynamic_axes=dynamic,
            opset_version=17,
            dynamo=False,
        )


def _quantize(source: Path, path: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.registry import IntegerOpsRegistry

    quantize_dynamic(
        source,
        path,
        op_types_to_quantize=list(IntegerOpsRegistry),
        per_channel=True,
        reduce_range=False,
        weight_type=QuantType.QInt8,
        extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
    )


def session(path: Path, threads: int | None = None):
    """An ONNX Runtime CPU session; ``threads``: intra-op threads (None: torch's thread count, as the torch backend)."""
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: its warnings about unused initializers are noise
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def openvino_precision() -> str:
    """The precision OpenVINO runs at on this CPU unless told: bf16 where the CPU computes it natively, else fp32."""
    import openvino as ov

    hint = str(ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT"))
    return "bf16" if "bf16" in hint.lower() or "bfloat16" in hint.lower() else "fp32"


def openvino_runner(path: Path, precision: str, threads: int | None = None):
    """The ONNX export compiled by OpenVINO for the CPU at ``precision``: feeds → last hidden state. A new infer
    request per call, as the API's worker threads encode at once and one request serves one caller at a time."""
    import openvino as ov
    import torch

    config = {
        "INFERENCE_NUM_THREADS": threads or torch.get_num_threads(),
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
    }
    compiled = ov.Core().compile_model(str(path), "CPU", config)
    return lambda feeds: compiled.create_infer_request().infer(feeds)[0]
