"""The picture of a detector at work: true labels above, frame posteriors below, over time."""

import torch
from matplotlib.figure import Figure

from audioseq.data.frame_labels import PAD


def posteriors_figure(
    targets: torch.Tensor, posteriors: torch.Tensor, labels: list[str], seconds_per_frame: float
) -> Figure:
    """``targets`` [F] (class per frame, -1 padding) and ``posteriors`` [F, C] as two
    class-by-time images on one time axis: where the model's mass sits against where the
    events are."""
    frames, classes = posteriors.shape
    truth = torch.zeros(classes, frames)
    valid = targets != PAD
    truth[targets[valid], valid.nonzero().flatten()] = 1.0
    extent = (0.0, frames * seconds_per_frame, classes - 0.5, -0.5)
    fig = Figure(figsize=(12, 6))
    axes = fig.subplots(2, 1, sharex=True)
    for ax, image, title in zip(
        axes, (truth, posteriors.T.float()), ("labels", "posteriors"), strict=True
    ):
        ax.imshow(
            image.cpu().numpy(),
            aspect="auto",
            cmap="Greys",
            vmin=0,
            vmax=1,
            extent=extent,
            interpolation="nearest",
        )
        ax.set_yticks(range(classes), labels, fontsize=7)
        ax.set_title(title)
    axes[1].set_xlabel("seconds")
    fig.tight_layout()
    return fig
