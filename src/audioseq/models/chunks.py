"""Running long recordings through frontend -> encoder -> head in chunks of frames.

Truncated back-propagation and chunked evaluation need the same thing streaming does
(:mod:`audioseq.inference.streaming`): chunk c's frames computed from exactly the samples
they read, the ``win - hop`` samples they share with the previous chunk included, and the
encoder state carried over from the previous chunk, so that the chunks' outputs equal one
pass over the whole recording. Recordings of a batch end at different chunks: a chunk
runs only the recordings that still have frames in it (no padding with silence), and the
others keep their final state.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from audioseq.models.encoders import State
from audioseq.models.frontends import Frontend


@dataclass
class Chunk:
    """Frames ``[start, start + frames[b])`` of the recordings ``rows`` (a bool mask over
    the batch); ``outputs`` [rows, max frames, ...] are the head's, zero-length rows
    excluded."""

    start: int
    rows: torch.Tensor
    frames: torch.Tensor
    outputs: torch.Tensor


def map_state(state: State, fn: Callable[[torch.Tensor], torch.Tensor]) -> State:
    """``fn`` applied to the state's tensor, or to both of an LSTM's ``(h, c)``."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(fn(s) for s in state)
    return fn(state)


def carry(state: State) -> State:
    """The state the next chunk starts from: the same values, cut from the graph of this
    chunk, so back-propagation stops at the chunk boundary (truncated BPTT)."""
    return map_state(state, torch.Tensor.detach)


def _rows(state: State, rows: torch.Tensor, dim: int) -> State:
    return map_state(state, lambda s: s.index_select(dim, rows.nonzero().flatten()))


def _merge(old: State, new: State, rows: torch.Tensor, dim: int) -> State:
    """``old`` (every recording) with the ``rows`` replaced by ``new``."""
    if old is None:  # the first chunk runs every recording
        return new
    index = rows.nonzero().flatten().to(rows.device)
    pairs = zip(old, new, strict=True) if isinstance(old, tuple) else [(old, new)]
    merged = [o.index_copy(dim, index.to(o.device), n) for o, n in pairs]
    return tuple(merged) if isinstance(old, tuple) else merged[0]


def chunk_count(frontend: Frontend, lengths: torch.Tensor, size: int | None) -> int:
    """How many chunks of ``size`` frames (None: one chunk) cover the longest recording."""
    frames = int(frontend.frame_lengths(lengths).max()) if len(lengths) else 0
    return 0 if not frames else 1 if size is None else -(-frames // size)


def pieces(
    frontend: Frontend, audio: torch.Tensor, lengths: torch.Tensor, size: int | None
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``(first frame, rows, audio [rows, S], lengths [rows])`` for each chunk of ``size``
    frames (None: one chunk): the samples the chunk's frames read, of the recordings that
    still have frames in it. The frontend makes exactly the chunk's frames from them."""
    frame_lengths = frontend.frame_lengths(lengths)
    hop, win = frontend.hop_length, frontend.win_length
    size = size or int(frame_lengths.max())
    for start in range(0, int(frame_lengths.max()), size):
        rows = frame_lengths > start
        begin, end = start * hop, (start + size - 1) * hop + win
        yield start, rows, audio[rows, begin:end], (lengths[rows] - begin).clamp(0, end - begin)


def run_chunks(
    frontend: Frontend,
    encoder: nn.Module,
    head: nn.Module,
    audio: torch.Tensor,
    lengths: torch.Tensor,
    size: int | None,
) -> Iterator[Chunk]:
    """The head's outputs chunk by chunk (``size`` frames each; None: the whole recording
    in one). The state between chunks is ``carry``-ed: the caller may back-propagate
    through one chunk's outputs before asking for the next."""
    dim = getattr(encoder, "state_batch_dim", 1)
    state: State = None
    for start, rows, piece, piece_lengths in pieces(frontend, audio, lengths, size):
        features, frames = frontend(piece, piece_lengths)
        initial = None if state is None else _rows(state, rows, dim)
        outputs, final = encoder(features, frames, initial)
        state = _merge(state, carry(final), rows, dim)
        yield Chunk(start, rows, frames, head(outputs))
