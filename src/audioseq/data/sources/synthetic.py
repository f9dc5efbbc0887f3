"""The built-in procedural corpus, streamed as batches from an IterableDataset."""

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import IterableDataset

from audioseq import SAMPLE_RATE
from audioseq.config_schema import check_all
from audioseq.data.batch_slots import batch_buffer
from audioseq.data.batching import Batch
from audioseq.data.example import Example
from audioseq.data.partition import batches, rank_indices, worker_share
from audioseq.data.seeding import hashed_seed
from audioseq.data.sources import dialling, dtmf
from audioseq.data.spec import LoaderSpec
from audioseq.errors import ConfigError

SPLITS = ("train", "val", "test")
#: The PCG64 increment (which of its 2**127 sequences) every clip's stream uses.
_INCREMENT = 0x2B992DDFA23249D6_2A9AC7F4EE4C7331 | 1


def clip_lengths(corpus: str, delay_seconds: float, clip_seconds: float | None) -> tuple[int, int]:
    """(samples generated per clip, samples each batch is padded to).

    A ``dtmf`` clip is ``clip_seconds`` long (null: 1 s), a ``dialling`` recording too
    (null: 60 s). A ``memory`` clip is as long as
    its key slot plus the delay, whatever ``clip_seconds`` says, because cutting it would
    cut the key or the delay; ``clip_seconds`` may only pad it (the true length travels
    with the batch), and a shorter one is a configuration error.
    """
    if corpus != "memory":
        default = dialling.DEFAULT_SECONDS if corpus == "dialling" else 1.0
        samples = round((clip_seconds or default) * SAMPLE_RATE)
        return samples, samples
    samples = dtmf.memory_samples(delay_seconds, SAMPLE_RATE)
    if clip_seconds is None:
        return samples, samples
    if round(clip_seconds * SAMPLE_RATE) < samples:
        raise ConfigError(
            f"data.clip_seconds={clip_seconds} would cut the memory clips "
            f"({dtmf.KEY_SECONDS} s key + data.delay_seconds={delay_seconds} s): "
            "set data.clip_seconds=null, the clip length follows from the delay"
        )
    return samples, round(clip_seconds * SAMPLE_RATE)


class SyntheticBatches(IterableDataset):
    """Deterministic clips from (seed, split, index), made a batch at a time in the workers.

    Each clip is drawn from its own stream, so it is the same whatever batch, worker or
    rank makes it. Every rank yields the same number of batches (see ``partition``);
    workers take whole batches in turn, and the training order is reshuffled each epoch
    from (seed, epoch). The epoch, and the batches of it to leave out (a run resumed in
    its middle had trained on them), live in shared memory so persistent workers see
    ``set_epoch`` too.
    """

    def __init__(
        self,
        split: str,
        size: int,
        seed: int,
        spec: LoaderSpec,
        corpus: str = "dtmf",
        delay_seconds: float = 1.0,
    ) -> None:
        self.split, self.size, self.seed, self.spec = split, size, seed, spec
        self.corpus, self.delay_seconds = corpus, delay_seconds
        self.clip_samples, self.pad_to = clip_lengths(corpus, delay_seconds, spec.clip_seconds)
        self._position = torch.zeros(2, dtype=torch.int64).share_memory_()
        self._generators: list[np.random.Generator] = []

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self._position[:] = torch.tensor([epoch, start])

    def _epoch_batches(self) -> list[list[int]]:
        order = np.arange(self.size)
        if self.spec.train:
            epoch = int(self._position[0])
            order = np.random.default_rng([self.seed, 7919, epoch]).permutation(self.size)
        positions = rank_indices(
            self.size, self.spec.rank, self.spec.world_size, drop_last=self.spec.train
        )
        return batches([int(order[p]) for p in positions], self.spec.batch_size)

    def __len__(self) -> int:
        return len(self._epoch_batches())

    def batch_width(self) -> int:
        """Every batch's samples."""
        return self.pad_to

    def _streams(self, indices: list[int]) -> list[tuple[np.random.Generator, int]]:
        """Each clip's own random stream, after its first draw (the label).

        Clip ``i`` starts its split's PCG64 sequence at a state hashed from (seed, split,
        i) with BLAKE2b: independent starting points in a cycle of 2**128, as a
        ``SeedSequence`` would give, at a third of its cost (the seeding was a tenth of a
        clip's). The generators are reused from call to call, so a stream is only good
        until the next call.
        """
        while len(self._generators) < len(indices):
            self._generators.append(np.random.Generator(np.random.PCG64(0)))
        split = SPLITS.index(self.split)
        streams = []
        for index, rng in zip(indices, self._generators, strict=False):
            state = {"state": hashed_seed(self.seed, split, index, bits=128), "inc": _INCREMENT}
            rng.bit_generator.state = {  # and no half word left over from the last clip
                "bit_generator": "PCG64",
                "state": state,
                "has_uint32": 0,
                "uinteger": 0,
            }
            streams.append((rng, int(rng.integers(len(dtmf.KEYS)))))
        return streams

    def _key(self, index: int) -> str:
        return f"synthetic/{self.split}/{index:07d}"

    def example(self, index: int) -> Example:
        """Clip ``index`` on its own (the row it gets in any ``batch`` is the same)."""
        ((rng, label),) = self._streams([index])
        if self.corpus == "dialling":
            audio, frames = dialling.dialling_recording(rng, self.clip_samples, SAMPLE_RATE)
            key = self._key(index)
            return Example(key, torch.from_numpy(audio), None, torch.from_numpy(frames))
        if self.corpus == "memory":
            audio = dtmf.memory_clip(rng, label, self.delay_seconds, SAMPLE_RATE)
        else:
            audio = dtmf.dtmf_clip(rng, label, self.clip_samples, SAMPLE_RATE)
        return Example(self._key(index), torch.from_numpy(audio), label)

    def batch(self, indices: list[int]) -> Batch:
        """What ``collate`` makes of ``example(i) for i in indices``, without the per-clip
        arrays and copies: each clip is rendered straight into its row of the batch."""
        streams = self._streams(indices)
        rngs, labels = [rng for rng, _ in streams], [label for _, label in streams]
        audio, sent = batch_buffer(len(indices), self.pad_to)
        clips = audio.numpy()[:, : self.clip_samples]
        extra = {}
        if self.corpus == "dialling":  # no clip label: a class at every frame instead
            frames = dialling.dialling_batch(clips, rngs, SAMPLE_RATE)
            labels, extra["frame_labels"] = [-1] * len(indices), torch.from_numpy(frames)
        elif self.corpus == "memory":
            dtmf.memory_batch(clips, rngs, labels, SAMPLE_RATE)
        else:
            dtmf.dtmf_batch(clips, rngs, labels, SAMPLE_RATE)
        audio[:, self.clip_samples :] = 0.0  # memory clips under a longer clip_seconds
        return Batch(
            audio=sent,
            lengths=torch.full((len(indices),), self.clip_samples, dtype=torch.int64),
            label=torch.tensor(labels, dtype=torch.int64),
            key=[self._key(i) for i in indices],
            skipped={},
            **extra,
        )

    def __iter__(self):
        for indices in worker_share(self._epoch_batches()[int(self._position[1]) :]):
            yield self.batch(indices)


@dataclass
class SyntheticSource:
    """12-class DTMF keypad presses in noise; ``*_size`` clips per split.

    ``corpus=dtmf``: one press somewhere in the clip. ``corpus=memory``: the press comes
    first, then ``delay_seconds`` of distractors; the label is still the first press (train,
    val and test use the same delay). ``corpus=dialling``: long recordings of numbers being
    dialled (:mod:`audioseq.data.sources.dialling`), labelled at every 10 ms (``frame_labels``;
    class 0 is the background), for ``task=detect``.
    """

    train_size: int = 8000
    val_size: int = 1000
    test_size: int = 1000
    seed: int = 0
    corpus: str = "dtmf"
    delay_seconds: float = 1.0

    def __post_init__(self) -> None:
        keys = ("train_size", "val_size", "test_size", "corpus", "delay_seconds")
        check_all("data", **{key: getattr(self, key) for key in keys})

    @property
    def labels(self) -> list[str]:
        return list(dialling.LABELS if self.corpus == "dialling" else dtmf.KEYS)

    def dataset(self, split: str, spec: LoaderSpec) -> SyntheticBatches | None:
        size = getattr(self, f"{split}_size")
        if not size:
            return None
        return SyntheticBatches(split, size, self.seed, spec, self.corpus, self.delay_seconds)
