"""Reading a run's TensorBoard event files back, as TensorBoard itself would."""

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

EVERYTHING = {"scalars": 0, "images": 0, "audio": 0, "histograms": 0, "tensors": 0}


def read_events(run_dir: Path) -> list[EventAccumulator]:
    """One loaded accumulator per event file of ``run_dir`` (not its sub-folders)."""
    accumulators = []
    for events in sorted(Path(run_dir).glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance=EVERYTHING)
        acc.Reload()
        accumulators.append(acc)
    return accumulators


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag of the run and its (step, value) points, over all event files."""
    points: dict[str, list[tuple[int, float]]] = {}
    for acc in read_events(run_dir):
        for tag in acc.Tags()["scalars"]:
            points.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return points


def tags(run_dir: Path, kind: str) -> set[str]:
    """The tags of one kind (``scalars``, ``images``, ``audio``, ...) in the run."""
    return {tag for acc in read_events(run_dir) for tag in acc.Tags()[kind]}
