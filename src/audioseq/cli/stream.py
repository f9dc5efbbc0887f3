"""audioseq-stream: classify audio as it arrives, chunk by chunk, and report events.

audioseq-stream ckpt_path=logs/train/runs/<timestamp>/checkpoints/best.ckpt input=long.wav
sox -d -t raw -r 16000 -e signed -b 16 -c 1 - | audioseq-stream ckpt_path=... input=-

A classifier (``model.pooling=last``) or a frame detector (``task=detect``) streams.

Each chunk's frames go through the model with the carried frontend overlap and recurrent
state (:mod:`audioseq.inference.streaming`); their posteriors feed the event detector
(:mod:`audioseq.tasks.events`). Ends with the real-time factor and per-chunk latency.
"""

import json
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from audioseq import SAMPLE_RATE
from audioseq.cli.config_dir import config_dir
from audioseq.cli.errors import report_errors
from audioseq.config_schema import validate
from audioseq.data.frame_labels import BACKGROUND
from audioseq.errors import ConfigError
from audioseq.inference.audio_stream import file_chunks, pcm_chunks
from audioseq.inference.streaming import StreamingClassifier
from audioseq.tasks.checkpoint import load_checkpoint
from audioseq.tasks.events import Event, EventDetector

#: Event settings for a classifier checkpoint where the command line leaves them null.
CLASSIFIER_EVENTS = {"smooth_ms": 200.0, "threshold": 0.5, "refractory_ms": 500.0}


def open_input(source: str, chunk_ms: float) -> Iterator[torch.Tensor]:
    """16 kHz float32 chunks from a file, or raw PCM from standard input (``-``)."""
    if source == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise ConfigError(
                "input=-: standard input is a terminal; pipe raw 16 kHz signed 16-bit mono "
                "PCM into it, e.g. sox -d -t raw -r 16000 -e signed -b 16 -c 1 - | ..."
            )
        return pcm_chunks(sys.stdin.buffer, chunk_ms)
    return file_chunks(to_absolute_path(source), chunk_ms)


def _line(seconds: float, kind: str, label: str, p: float) -> str:
    return f"{seconds:8.3f} s  {kind:<5}  {label}  (p={p:.2f})"


def _write(out: IO[str] | None, record: dict[str, Any]) -> None:
    if out is not None:
        out.write(json.dumps(record) + "\n")
        out.flush()  # a stream stopped with Ctrl-C keeps every line written so far


def latency_summary(latencies: list[float], audio_seconds: float) -> dict[str, float]:
    """Real-time factor (processing time / audio time) and per-chunk latency in ms."""
    total = sum(latencies)
    ordered = sorted(latencies) or [0.0]
    return {
        "audio_seconds": audio_seconds,
        "processing_seconds": total,
        "chunks": len(latencies),
        "real_time_factor": total / audio_seconds if audio_seconds else 0.0,
        "latency_ms_mean": 1000 * total / max(1, len(latencies)),
        "latency_ms_p50": 1000 * statistics.median(ordered),
        "latency_ms_p95": 1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
        "latency_ms_max": 1000 * ordered[-1],
    }


def event_settings(cfg: DictConfig, model: torch.nn.Module) -> dict[str, Any]:
    """``smooth_ms``, ``threshold``, ``refractory_ms`` and ``ignore``: the command line's
    where given, else a detector checkpoint's own (the ones its validation and test scored
    events with, so the stream finds the events the eval counted), else the classifier
    defaults. A detector's background class never fires."""
    detector = getattr(model, "frame_level", False)
    saved = model.hparams if detector else CLASSIFIER_EVENTS
    settings = {
        key: float(saved[key] if cfg[key] is None else cfg[key]) for key in CLASSIFIER_EVENTS
    }
    ignore = list(cfg.ignore_labels)
    settings["ignore"] = [*ignore, BACKGROUND] if detector and BACKGROUND not in ignore else ignore
    return settings


def stream(cfg: DictConfig) -> dict[str, Any]:
    validate(cfg, "stream")  # before the checkpoint is read
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    model, _ = load_checkpoint(to_absolute_path(cfg.ckpt_path))
    streamer = StreamingClassifier(model.to(cfg.device))
    labels = list(model.labels)
    detector = EventDetector(
        labels,
        frame_step=streamer.hop / SAMPLE_RATE,
        first_frame_end=streamer.win / SAMPLE_RATE,
        **event_settings(cfg, model),
    )
    chunks = open_input(str(cfg.input), cfg.chunk_ms)
    out = None
    if cfg.output:
        path = Path(to_absolute_path(cfg.output))
        path.parent.mkdir(parents=True, exist_ok=True)
        out = path.open("w")
    latencies: list[float] = []
    events: list[Event] = []
    try:
        for chunk in chunks:
            start_sample = streamer.samples
            started = time.perf_counter()
            probs = streamer.process(chunk).softmax(-1).cpu()
            _, fired = detector.update(probs)
            latencies.append(time.perf_counter() - started)
            end = streamer.samples / SAMPLE_RATE
            for event in fired:
                print(_line(event.time, "event", event.label, event.probability), flush=True)
                _write(out, {"type": "event", "time": round(event.time, 4),
                             "label": event.label, "p": round(event.probability, 4)})  # fmt: skip
            events += fired
            if len(probs):
                p, top = probs[-1].max(0)
                if cfg.print_chunks:
                    print(_line(end, "chunk", labels[int(top)], float(p)), flush=True)
                _write(out, {
                    "type": "chunk", "start": start_sample / SAMPLE_RATE, "end": end,
                    "frames": len(probs), "label": labels[int(top)], "p": round(float(p), 4),
                    "posteriors": [round(float(x), 5) for x in probs[-1]],
                })  # fmt: skip
    except KeyboardInterrupt:  # a live stream ends with Ctrl-C: still report
        pass
    finally:
        if out is not None:
            out.close()
    if not streamer.samples:
        print("no audio received", file=sys.stderr)
    summary = latency_summary(latencies, streamer.samples / SAMPLE_RATE)
    summary["events"] = len(events)
    summary["chunk_ms"] = float(cfg.chunk_ms)
    print(
        f"streamed {summary['audio_seconds']:.2f} s of audio in {summary['chunks']} chunks of "
        f"{cfg.chunk_ms:g} ms: {len(events)} events\n"
        f"real-time factor {summary['real_time_factor']:.4f} "
        f"({summary['processing_seconds']:.3f} s of processing)\n"
        f"per-chunk latency: mean {summary['latency_ms_mean']:.2f} ms, "
        f"median {summary['latency_ms_p50']:.2f} ms, p95 {summary['latency_ms_p95']:.2f} ms, "
        f"max {summary['latency_ms_max']:.2f} ms"
    )
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    (run_dir / "stream_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="stream")
@report_errors
def main(cfg: DictConfig) -> None:
    stream(cfg)


if __name__ == "__main__":
    main()
