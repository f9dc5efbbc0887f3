"""audioseq-export: a checkpoint's frontend plus model as one TorchScript or ONNX graph.

audioseq-export ckpt_path=logs/train/runs/<timestamp>/checkpoints/best.ckpt
audioseq-export ckpt_path=... format=onnx chunk_ms=20

Writes offline.{pt,onnx}, stream.{pt,onnx} (streamable models) and export.json into the
run directory (or ``output_dir``), checked against the PyTorch model unless verify=false.
"""

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from audioseq import SAMPLE_RATE
from audioseq.cli.config_dir import config_dir
from audioseq.cli.errors import report_errors
from audioseq.config_schema import validate
from audioseq.errors import ConfigError
from audioseq.inference.audio_stream import chunk_samples
from audioseq.inference.export import export_model, onnx_available
from audioseq.tasks.checkpoint import load_checkpoint


def export(cfg: DictConfig) -> dict:
    validate(cfg, "export")  # before the checkpoint is read
    if cfg.format == "onnx" and not onnx_available():
        raise ConfigError("format=onnx needs the onnx package: pip install 'audioseq[onnx]'")
    model, _ = load_checkpoint(to_absolute_path(cfg.ckpt_path))
    folder = to_absolute_path(cfg.output_dir or HydraConfig.get().runtime.output_dir)
    manifest = export_model(
        model, cfg.format, folder, chunk_samples(cfg.chunk_ms), cfg.opset, check=cfg.verify
    )
    print(f"offline  {folder}/{manifest['offline']['file']}: (audio [B, T], lengths [B]) "
          f"-> logits [B, {len(manifest['labels'])}]")  # fmt: skip
    stream = manifest["stream"]
    if stream:
        state = ", ".join(f"{e['name']} {e['shape']}" for e in stream["state"])
        print(
            f"stream   {folder}/{stream['file']}: (chunk [B, {stream['chunk_samples']}], "
            f"*state) -> (logits [B, {stream['frames_per_chunk']}, {len(manifest['labels'])}]"
            f", *state); state (batch 1): {state}; "
            f"chunk {1000 * stream['chunk_samples'] / SAMPLE_RATE:g} ms"
        )
    else:
        print(f"stream   not exported: {manifest['stream_refused']}")
    diffs = manifest.get("max_abs_diff")
    if diffs:
        shown = ", ".join(f"{name} {value:.2g}" for name, value in diffs.items())
        print(f"verified against PyTorch: max |logit difference| {shown}")
    elif cfg.verify:
        print("not verified: onnxruntime is not installed")
    print(f"signatures and state layout: {folder}/export.json")
    return manifest


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="export")
@report_errors
def main(cfg: DictConfig) -> None:
    export(cfg)


if __name__ == "__main__":
    main()
