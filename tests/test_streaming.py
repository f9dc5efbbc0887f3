"""Streaming: chunked processing with carried overlap and state equals offline processing."""

import io

import pytest
import torch
from tiny_models import CELLS, FRONTENDS, LABELS, make_classifier, signal

from audioseq.data.audio import read_audio, to_mono_16k
from audioseq.errors import ConfigError, DataError
from audioseq.inference.audio_stream import StreamingResampler, file_chunks, pcm_chunks
from audioseq.inference.streaming import StreamingClassifier, check_streamable, frame_logits
from audioseq.tasks.events import EventDetector


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one intra-op thread is faster, and immune to a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def stream(streamer: StreamingClassifier, audio: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """All frame logits of ``audio`` fed in chunks of ``sizes`` (cycled)."""
    outputs, start, k = [], 0, 0
    while start < audio.shape[-1]:
        size = sizes[k % len(sizes)]
        outputs.append(streamer.process(audio[..., start : start + size]))
        start, k = start + size, k + 1
    return torch.cat(outputs, dim=-2)


#: Chunk sizes that never align with the 160-sample hop or the 400-sample window.
ODD_SIZES = [1601, 37, 999, 161, 5, 2417, 400, 159]


@pytest.mark.parametrize("frontend", list(FRONTENDS))
@pytest.mark.parametrize("cell", CELLS)
def test_streamed_frames_equal_offline(frontend, cell):
    model = make_classifier(frontend, cell)
    audio = signal()
    with torch.no_grad():
        offline = frame_logits(model, audio[None], torch.tensor([audio.shape[0]]))[0]
    streamer = StreamingClassifier(model)
    streamed = stream(streamer, audio, ODD_SIZES)
    assert streamed.shape == offline.shape
    assert streamer.frames == offline.shape[0]
    torch.testing.assert_close(streamed, offline, atol=1e-4, rtol=1e-4)
    # The last frame's logits are the classifier's logits for the whole signal.
    with torch.no_grad():
        clip = model(audio[None], torch.tensor([audio.shape[0]]))[0]
    torch.testing.assert_close(streamed[-1], clip, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("chunk", [1, 160, 1600, 100_000])
def test_any_chunk_size_gives_the_same_frames(chunk):
    model = make_classifier("mfcc", "lstm", normalize="none")
    audio = signal(0.6)
    with torch.no_grad():
        offline = frame_logits(model, audio[None], torch.tensor([audio.shape[0]]))[0]
    streamed = stream(StreamingClassifier(model), audio, [chunk])
    torch.testing.assert_close(streamed, offline, atol=1e-4, rtol=1e-4)


def test_scratch_cells_stream_too():
    model = make_classifier("logmel", "lstm", impl="scratch")
    audio = signal(0.5)
    with torch.no_grad():
        offline = frame_logits(model, audio[None], torch.tensor([audio.shape[0]]))[0]
    torch.testing.assert_close(
        stream(StreamingClassifier(model), audio, ODD_SIZES), offline, atol=1e-4, rtol=1e-4
    )


def test_batched_streams_in_lockstep_and_reset():
    model = make_classifier("logmel", "rnn")
    audio = torch.stack([signal(0.7, seed=1), signal(0.7, seed=2)])
    lengths = torch.tensor([audio.shape[1]] * 2)
    with torch.no_grad():
        offline = frame_logits(model, audio, lengths)
    streamer = StreamingClassifier(model)
    torch.testing.assert_close(stream(streamer, audio, ODD_SIZES), offline, atol=1e-4, rtol=1e-4)
    streamer.reset()
    again = stream(streamer, audio[1], [3000])
    torch.testing.assert_close(again, offline[1], atol=1e-4, rtol=1e-4)


def test_no_frame_before_a_whole_window_and_frame_times():
    model = make_classifier("logmel", "gru")
    streamer = StreamingClassifier(model)
    assert streamer.process(torch.zeros(399)).shape == (0, 3)
    assert streamer.process(torch.zeros(1)).shape == (1, 3)  # 400 samples: frame 0
    assert streamer.process(torch.zeros(159)).shape == (0, 3)
    assert streamer.process(torch.zeros(1)).shape == (1, 3)  # 560 samples: frame 1
    assert (streamer.frame_end(0), streamer.frame_end(1)) == (400, 560)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"bidirectional": True}, "bidirectional.*backward half reads the future"),
        ({"normalize": "utterance"}, "normalize=utterance.*global and none stream"),
        ({"pooling": "mean"}, "pooling=mean.*last streams"),
        ({"pooling": "max"}, "pooling=max.*pooling=last, features.normalize=global\\|none"),
    ],
)
def test_models_that_cannot_stream_are_refused_with_the_reason(options, match):
    model = make_classifier("logmel", "lstm", **options)
    with pytest.raises(ConfigError, match=match):
        StreamingClassifier(model)


def test_normalize_none_streams():
    check_streamable(make_classifier("frames", "rnn", normalize="none"))


# --- events --------------------------------------------------------------------------------


def posteriors(rows: list[tuple[int, float]], classes: int = 3) -> torch.Tensor:
    """One frame per (class, probability): that class gets p, the rest share 1 - p."""
    probs = torch.zeros(len(rows), classes)
    for k, (index, p) in enumerate(rows):
        probs[k] = (1 - p) / (classes - 1)
        probs[k, index] = p
    return probs


def detector(**options) -> EventDetector:
    settings = dict(smooth_ms=30, threshold=0.8, refractory_ms=100)
    settings.update(options)
    return EventDetector(LABELS, frame_step=0.01, first_frame_end=0.025, **settings)


def test_smoothing_is_a_causal_moving_average_across_calls():
    det = detector(smooth_ms=30)  # 3 frames
    probs = torch.rand(7, 3, generator=torch.Generator().manual_seed(0))
    first, _ = det.update(probs[:2])
    second, _ = det.update(probs[2:])
    smoothed = torch.cat([first, second])
    for k in range(7):
        want = probs[max(0, k - 2) : k + 1].mean(0)
        torch.testing.assert_close(smoothed[k], want)


def test_a_one_frame_spike_does_not_fire_but_a_sustained_sound_fires_once():
    det = detector(smooth_ms=30)
    rows = [(0, 0.3)] * 5 + [(1, 1.0)] + [(0, 0.3)] * 5  # a spike: smoothed 1/3 + ...
    rows += [(2, 0.95)] * 20  # a sustained class 2: one event, when the average reaches 0.8
    _, events = det.update(posteriors(rows))
    assert [(e.label, e.index) for e in events] == [("c", 2)]
    # frames 11, 12 have 2 of 3 frames at 0.95 with one at 0.35: 0.75 < 0.8; frame 13 fires
    assert events[0].time == pytest.approx(0.025 + 13 * 0.01)
    assert events[0].probability == pytest.approx(0.95)


def test_threshold_and_rearming():
    det = detector(smooth_ms=10, threshold=0.9, refractory_ms=0)
    rows = [(1, 0.85)] * 3 + [(1, 0.95)] * 3 + [(1, 0.5)] + [(1, 0.95)] * 2 + [(0, 0.92)]
    _, events = det.update(posteriors(rows))
    # below threshold, then fires (frame 3); drops below at 6 and fires again at 7; a new
    # class at 9 fires without dropping below in between
    assert [(round(e.time, 3), e.label) for e in events] == [
        (0.055, "b"),
        (0.095, "b"),
        (0.115, "a"),
    ]


def test_refractory_period_drops_edges_that_come_too_soon():
    det = detector(smooth_ms=10, threshold=0.5, refractory_ms=100)
    rows = [(0, 0.9)] * 2 + [(1, 0.9)] * 2 + [(0, 0.9)] * 2 + [(2, 0.3)] * 6 + [(2, 0.9)] * 2
    _, events = det.update(posteriors(rows))
    # frame 0 fires; 2 (class b) and 4 (class a again) fall within 100 ms; 12 is 120 ms on
    assert [(round(e.time, 3), e.label) for e in events] == [(0.025, "a"), (0.145, "c")]


def test_ignored_labels_never_fire():
    det = detector(smooth_ms=10, threshold=0.5, ignore=["a"])
    _, events = det.update(posteriors([(0, 0.99)] * 5 + [(1, 0.6)]))
    assert [e.label for e in events] == ["b"]
    with pytest.raises(ConfigError, match="ignore_labels"):
        detector(ignore=["zebra"])


# --- audio arriving in chunks ----------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
def test_streaming_resampler_equals_resampling_the_whole_signal(rate):
    audio = torch.randn(rate + 123, generator=torch.Generator().manual_seed(rate))
    want = to_mono_16k(audio, rate)
    resampler = StreamingResampler(rate)
    gen = torch.Generator().manual_seed(0)
    pieces, start = [], 0
    while start < audio.shape[0]:
        size = int(torch.randint(1, 3000, (1,), generator=gen))
        pieces.append(resampler.push(audio[start : start + size]))
        start += size
    got = torch.cat([*pieces, resampler.flush()])
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_file_chunks_of_a_stereo_44k_file_equal_reading_it_whole(tmp_path, sine, write_wav):
    path = write_wav(tmp_path / "a.wav", sine(697, 1.3, 44100, channels=2), 44100)
    chunks = list(file_chunks(path, chunk_ms=100))
    assert len(chunks) > 10
    torch.testing.assert_close(torch.cat(chunks), read_audio(path), atol=1e-5, rtol=0)


def test_file_chunks_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match=r"input: .*nope\.wav: audio file not found"):
        next(file_chunks(tmp_path / "nope.wav", 100))
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wave file")
    with pytest.raises(DataError, match=r"input: .*bad\.wav: cannot decode audio"):
        next(file_chunks(bad, 100))


class Trickle(io.RawIOBase):
    """A pipe that returns at most ``step`` bytes per read, as a live pipe may."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step = data, step

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = min(self.step, size if size >= 0 else len(self.data))
        out, self.data = self.data[:size], self.data[size:]
        return out


@pytest.mark.parametrize("step", [7, 3200, 10_000])
def test_pcm_chunks_decode_s16le_across_any_read_boundary(step):
    samples = torch.randint(-32768, 32767, (5001,), generator=torch.Generator().manual_seed(1))
    data = samples.to(torch.int16).numpy().astype("<i2").tobytes() + b"\x01"  # stray byte
    chunks = list(pcm_chunks(Trickle(data, step), chunk_ms=100))
    assert all(len(c) <= 1600 for c in chunks)
    torch.testing.assert_close(torch.cat(chunks), samples.float() / 32768.0)
