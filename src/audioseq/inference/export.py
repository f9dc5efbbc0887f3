"""Writing the exported graphs (TorchScript, ONNX), running them, and checking them
against the PyTorch model they came from.

Files in the output folder: ``offline.pt|onnx`` (``(audio, lengths) -> logits``),
``stream.pt|onnx`` for streamable models (``(chunk, *state) -> (logits, *state)``), and
``export.json``, which describes both signatures, the state layout and the labels.
"""

import importlib.util
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from audioseq import SAMPLE_RATE, config_schema
from audioseq.errors import AudioseqError, ConfigError
from audioseq.inference.graphs import OfflineGraph, StreamGraph
from audioseq.inference.streaming import check_streamable, frame_logits

SUFFIX = {"torchscript": ".pt", "onnx": ".onnx"}
#: Largest difference from the PyTorch model an export may show.
TOLERANCE = 1e-4


class ExportMismatch(AudioseqError):
    """The exported graph computes something else than the model (a bug to report)."""


def onnx_available() -> bool:
    return importlib.util.find_spec("onnx") is not None


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def _trace(graph: nn.Module, inputs: tuple[Tensor, ...], path: Path) -> None:
    # The tracer warns about shape checks inside torch's RNN modules, which it freezes;
    # the graphs are checked on other batch sizes and lengths (``verify``, the tests).
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(graph, inputs, check_trace=False)
    torch.jit.save(traced, str(path))


def _onnx(
    graph: nn.Module,
    inputs: tuple[Tensor, ...],
    path: Path,
    names: tuple[list[str], list[str]],
    dynamic: dict[str, dict[int, str]],
    opset: int,
) -> None:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation notes
        torch.onnx.export(
            graph,
            inputs,
            str(path),
            input_names=names[0],
            output_names=names[1],
            dynamic_axes=dynamic,
            opset_version=opset,
            dynamo=False,
        )


class Exported:
    """A saved graph run from Python: TorchScript through torch.jit, ONNX through
    onnxruntime; inputs and outputs are torch tensors either way."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.suffix == ".onnx":
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            self.session = onnxruntime.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
            self.inputs = [i.name for i in self.session.get_inputs()]
        else:
            self.module = torch.jit.load(str(self.path))

    def __call__(self, *args: Tensor) -> tuple[Tensor, ...]:
        if self.path.suffix == ".onnx":
            feed = {name: a.numpy() for name, a in zip(self.inputs, args, strict=True)}
            return tuple(torch.from_numpy(out) for out in self.session.run(None, feed))
        with torch.no_grad():
            out = self.module(*args)
        return tuple(out) if isinstance(out, tuple | list) else (out,)


def run_stream(graph: Any, manifest: dict[str, Any], audio: Tensor) -> tuple[Tensor, int]:
    """Stream ``audio`` [B, T] through a streaming graph as its ``export.json`` says:
    the first ``overlap`` samples start the state, then whole chunks. Returns the logits of
    every frame [B, F, C] and the samples consumed."""
    stream = manifest["stream"]
    size, overlap = stream["chunk_samples"], stream["overlap_samples"]
    state: list[Tensor] = [audio[:, :overlap].contiguous()] if overlap else []
    for entry in stream["state"][1 if overlap else 0 :]:
        shape = list(entry["shape"])
        shape[entry["batch_dim"]] = audio.shape[0]
        state.append(torch.zeros(shape))
    outputs, end = [], overlap
    while end + size <= audio.shape[1]:
        logits, *state = graph(audio[:, end : end + size].contiguous(), *state)
        outputs.append(logits)
        end += size
    return torch.cat(outputs, dim=1), end


def _probe_audio(seed: int = 7) -> tuple[Tensor, Tensor]:
    """A batch unlike the one traced with: other size and length, padded rows, silence."""
    gen = torch.Generator().manual_seed(seed)
    audio = 0.3 * torch.randn(3, 13_000, generator=gen)
    audio[0, :3000] = 0.0
    lengths = torch.tensor([13_000, 7_100, 350])
    audio[1, 7_100:] = 0.0
    audio[2, 350:] = 0.0
    return audio, lengths


def verify(model: nn.Module, manifest: dict[str, Any], folder: Path) -> dict[str, float]:
    """Largest |logit| differences between the saved graphs and ``model``; raises
    ExportMismatch past TOLERANCE."""
    audio, lengths = _probe_audio()
    with torch.no_grad():
        want = model(audio, lengths)
    got = Exported(folder / manifest["offline"]["file"])(audio, lengths)[0]
    diffs = {"offline": float((got - want).abs().max())}
    if manifest.get("stream"):
        graph = Exported(folder / manifest["stream"]["file"])
        streamed, _ = run_stream(graph, manifest, audio)
        with torch.no_grad():
            want = frame_logits(model, audio, torch.full((3,), audio.shape[1]))
        diffs["stream"] = float((streamed - want[:, : streamed.shape[1]]).abs().max())
    for name, diff in diffs.items():
        if not diff <= TOLERANCE:
            raise ExportMismatch(
                f"the exported {name} graph differs from the PyTorch model by {diff:.3g} "
                f"(more than {TOLERANCE:g}): please report this"
            )
    return diffs


def export_model(
    model: nn.Module,
    fmt: str,
    folder: str | Path,
    chunk_samples: int = 1600,
    opset: int = 17,
    check: bool = True,
) -> dict[str, Any]:
    """Write ``model``'s graphs in ``fmt`` and ``export.json`` into ``folder``; returns the
    manifest (with ``max_abs_diff`` when checked)."""
    config_schema.check("format", fmt, "export")  # audioseq-export's rule
    if fmt == "onnx" and not onnx_available():
        raise ConfigError("format=onnx needs the onnx package: pip install 'audioseq[onnx]'")
    model = model.eval()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = SUFFIX[fmt]
    offline = OfflineGraph(model).eval()
    audio = 0.1 * torch.randn(2, 16_000, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([16_000, 12_000])
    manifest: dict[str, Any] = {
        "format": fmt,
        "sample_rate": SAMPLE_RATE,
        "labels": list(model.labels),
        "offline": {
            "file": f"offline{suffix}",
            "inputs": {"audio": "float32 [B, T], 16 kHz mono", "lengths": "int64 [B]"},
            "outputs": {"logits": "float32 [B, C]"},
        },
        "stream": None,
    }
    if fmt == "torchscript":
        _trace(offline, (audio, lengths), folder / manifest["offline"]["file"])
    else:
        dynamic = {"audio": {0: "batch", 1: "samples"}, "lengths": {0: "batch"}}
        dynamic["logits"] = {0: "batch"}
        names = (["audio", "lengths"], ["logits"])
        _onnx(
            offline, (audio, lengths), folder / manifest["offline"]["file"], names, dynamic, opset
        )
    try:
        check_streamable(model)
    except ConfigError as e:
        manifest["stream_refused"] = str(e)
    else:
        manifest["stream"] = _export_stream(model, fmt, folder, chunk_samples, opset)
    if check and (fmt == "torchscript" or onnxruntime_available()):
        manifest["max_abs_diff"] = verify(model, manifest, folder)
    (folder / "export.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _export_stream(
    model: nn.Module, fmt: str, folder: Path, chunk_samples: int, opset: int
) -> dict[str, Any]:
    graph = StreamGraph(model, chunk_samples).eval()
    layout = graph.state_layout()
    first = 0.1 * torch.randn(2, graph.overlap, generator=torch.Generator().manual_seed(1))
    chunk = 0.1 * torch.randn(2, chunk_samples, generator=torch.Generator().manual_seed(2))
    inputs = (chunk, *graph.initial_state(first))
    info = {
        "file": f"stream{SUFFIX[fmt]}",
        "chunk_samples": chunk_samples,
        "hop_samples": graph.hop,
        "win_samples": graph.win,
        "overlap_samples": graph.overlap,
        "frames_per_chunk": chunk_samples // graph.hop,
        "inputs": ["chunk", *(e["name"] for e in layout)],
        "outputs": ["logits", *(f"next_{e['name']}" for e in layout)],
        "state": layout,
        "usage": (
            "state starts as: overlap = the stream's first overlap_samples samples (or "
            "zeros), encoder states = zeros; then per chunk of chunk_samples: "
            "(logits [B, frames_per_chunk, C], *state) = graph(chunk, *state). Frame k of "
            "the stream ends at sample k * hop_samples + win_samples."
        ),
    }
    path = folder / info["file"]
    if fmt == "torchscript":
        _trace(graph, inputs, path)
    else:
        dynamic = {name: {0: "batch"} for name in ("chunk", "logits")}
        for entry, out in zip(layout, info["outputs"][1:], strict=True):
            dynamic[entry["name"]] = dynamic[out] = {entry["batch_dim"]: "batch"}
        _onnx(graph, inputs, path, (info["inputs"], info["outputs"]), dynamic, opset)
    return info
