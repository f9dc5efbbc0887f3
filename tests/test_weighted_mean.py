"""The loss means: MeanMetric's arithmetic and states, without its per-update NaN check."""

import math
import warnings

import pytest
import torch
from torchmetrics import MeanMetric

from audioseq.tasks.metrics import WeightedMean
from audioseq.tasks.resume_state import load_metric_state, metric_state


def test_it_is_the_mean_weighted_by_batch_size_and_forward_gives_the_batch():
    mean = WeightedMean()
    batches = [(0.5, 64), (1.5, 64), (4.0, 8)]
    for loss, size in batches:
        assert float(mean(torch.tensor(loss), weight=size)) == pytest.approx(loss)
    expected = sum(loss * size for loss, size in batches) / sum(size for _, size in batches)
    assert float(mean.compute()) == pytest.approx(expected)


def test_a_nan_loss_makes_the_mean_nan_and_warns_of_nothing():
    """MeanMetric drops a NaN with a warning, which hides a diverged run."""
    mean = WeightedMean()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mean.update(torch.tensor(1.0), weight=4)
        mean.update(torch.tensor(float("nan")), weight=4)
    assert math.isnan(float(mean.compute()))


def test_checkpoints_of_either_metric_load_into_the_other():
    """Same states as MeanMetric: a run checkpointed before the change resumes its mean."""
    old = MeanMetric()
    old.update(torch.tensor(2.0), weight=3)
    new = WeightedMean()
    load_metric_state(new, metric_state(old))
    new.update(torch.tensor(6.0), weight=1)
    assert float(new.compute()) == pytest.approx((2.0 * 3 + 6.0) / 4)
    back = MeanMetric()
    load_metric_state(back, metric_state(new))
    assert float(back.compute()) == pytest.approx(3.0)
