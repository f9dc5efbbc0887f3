"""Frontends (LogMel, MFCC, Frames) and FeatureNorm: frame arithmetic, padding, causality."""

import pytest
import torch
import torchaudio

from audioseq.errors import ConfigError
from audioseq.models.frontends import MFCC, Frames, LogMel
from audioseq.models.masking import frame_mask
from audioseq.models.normalization import FeatureNorm

WIN, HOP = 400, 160
FRAME = 160
KINDS = ("logmel", "mfcc", "frames")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Short clips: one intra-op thread is faster, and immune to a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_frontend(kind: str, normalize: str = "none"):
    if kind == "logmel":
        return LogMel(win_length=WIN, hop_length=HOP, n_mels=16, normalize=normalize)
    if kind == "mfcc":
        return MFCC(win_length=WIN, hop_length=HOP, n_mels=16, n_mfcc=8, normalize=normalize)
    return Frames(frame_samples=FRAME, normalize=normalize)


def expected_frames(frontend, length: int) -> int:
    return max(0, length - frontend.win_length) // frontend.hop_length + 1


def clips(seed: int = 0) -> list[torch.Tensor]:
    """Clips of different lengths and loudness; one shorter than a window, one with silence."""
    gen = torch.Generator().manual_seed(seed)
    loud = torch.randn(3000, generator=gen)
    quiet = 1e-4 * torch.randn(1700, generator=gen)
    silent_start = torch.cat([torch.zeros(900), 0.3 * torch.randn(1100, generator=gen)])
    short = torch.randn(150, generator=gen)
    return [loud, quiet, silent_start, short]


def pad(batch: list[torch.Tensor], garbage: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(c) for c in batch])
    audio = torch.full((len(batch), int(lengths.max())), garbage)
    for row, clip in enumerate(batch):
        audio[row, : len(clip)] = clip
    return audio, lengths


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("length", [400, 401, 559, 560, 561, 2000, 3217])
def test_frame_count_equals_frame_lengths_unpadded(kind, length):
    frontend = make_frontend(kind)
    audio = torch.randn(2, length)
    features, frame_lengths = frontend(audio, torch.tensor([length, length]))
    assert features.shape[:2] == (2, expected_frames(frontend, length))
    assert frame_lengths.tolist() == [features.shape[1]] * 2
    assert frame_lengths.dtype == torch.int64


@pytest.mark.parametrize("kind", KINDS)
def test_frame_lengths_in_padded_batch_match_clip_alone(kind):
    frontend = make_frontend(kind)
    audio, lengths = pad(clips())
    _, batch_lengths = frontend(audio, lengths)
    for row, clip in enumerate(clips()):
        features, alone = frontend(clip[None], torch.tensor([len(clip)]))
        assert batch_lengths[row] == alone[0] == features.shape[1]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("normalize", ["none", "utterance"])
def test_clip_alone_equals_its_valid_frames_in_padded_batch(kind, normalize):
    frontend = make_frontend(kind, normalize)
    audio, lengths = pad(clips())
    batch, frame_lengths = frontend(audio, lengths)
    for row, clip in enumerate(clips()):
        alone, _ = frontend(clip[None], torch.tensor([len(clip)]))
        n = int(frame_lengths[row])
        torch.testing.assert_close(batch[row, :n], alone[0], atol=1e-5, rtol=1e-5)
        assert not batch[row, n:].any(), "padded frames must be zero"


@pytest.mark.parametrize("kind", KINDS)
def test_features_do_not_depend_on_the_padding_value(kind):
    frontend = make_frontend(kind, "utterance")
    zeros, lengths = pad(clips(), garbage=0.0)
    noisy = zeros.clone()
    noisy[torch.arange(zeros.shape[1]) >= lengths[:, None]] = 5.0
    a, _ = frontend(zeros, lengths)
    b, _ = frontend(noisy, lengths)
    # the clip shorter than a window is zero-padded to one window by definition; skip it
    torch.testing.assert_close(a[:3], b[:3], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("k", [0, 3, 7])
def test_causal_later_samples_do_not_change_earlier_frames(kind, k):
    frontend = make_frontend(kind, "none")
    gen = torch.Generator().manual_seed(k)
    # silence first, so any clamp relative to the loudest value of the clip would show
    audio = torch.cat([torch.zeros(1000), 1e-3 * torch.randn(3000, generator=gen)])[None]
    end = k * frontend.hop_length + frontend.win_length  # frame k covers [k*hop, end)
    changed = audio.clone()
    changed[0, end:] = 100 * torch.randn(audio.shape[1] - end, generator=gen)
    lengths = torch.tensor([audio.shape[1]])
    before, _ = frontend(audio, lengths)
    after, _ = frontend(changed, lengths)
    assert torch.equal(before[0, : k + 1], after[0, : k + 1])
    assert not torch.equal(before[0, k + 1 :], after[0, k + 1 :])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("length", [1, 100, 159])
def test_clip_shorter_than_a_window_gives_one_frame(kind, length):
    frontend = make_frontend(kind)
    features, frame_lengths = frontend(torch.randn(1, length), torch.tensor([length]))
    assert frame_lengths.tolist() == [1]
    assert features.shape == (1, 1, frontend.num_features)
    assert torch.isfinite(features).all()


@pytest.mark.parametrize(
    ("frontend", "size"),
    [
        (LogMel(normalize="none"), 40),
        (LogMel(n_mels=24, normalize="none"), 24),
        (MFCC(normalize="none"), 20),
        (MFCC(n_mels=32, n_mfcc=13, normalize="none"), 13),
        (Frames(normalize="none"), 160),
        (Frames(frame_samples=80, normalize="none"), 80),
    ],
)
def test_feature_size(frontend, size):
    features, _ = frontend(torch.randn(2, 1600), torch.tensor([1600, 1000]))
    assert frontend.num_features == size
    assert features.shape[-1] == size
    assert features.dtype == torch.float32


def test_mfcc_is_the_dct_of_logmel():
    logmel = LogMel(n_mels=32, normalize="none")
    mfcc = MFCC(n_mels=32, n_mfcc=13, normalize="none")
    audio = torch.randn(2, 3200)
    lengths = torch.tensor([3200, 2000])
    mel, _ = logmel(audio, lengths)
    cep, _ = mfcc(audio, lengths)
    dct = torchaudio.functional.create_dct(13, 32, "ortho")
    torch.testing.assert_close(cep, mel @ dct, atol=1e-4, rtol=1e-4)  # padding is 0 in both


def test_frames_reshape_the_waveform_exactly():
    frontend = Frames(frame_samples=FRAME, normalize="none")
    audio = torch.randn(2, 5 * FRAME + 37)  # a trailing partial frame is dropped
    lengths = torch.tensor([audio.shape[1], 3 * FRAME + 5])
    features, frame_lengths = frontend(audio, lengths)
    assert frame_lengths.tolist() == [5, 3]
    assert features.shape == (2, 5, FRAME)
    for i in range(5):
        assert torch.equal(features[0, i], audio[0, i * FRAME : (i + 1) * FRAME])
    for i in range(3):
        assert torch.equal(features[1, i], audio[1, i * FRAME : (i + 1) * FRAME])
    assert not features[1, 3:].any()


@pytest.mark.parametrize("kind", KINDS)
def test_features_are_float32_under_autocast(kind):
    frontend = make_frontend(kind, "utterance")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        features, _ = frontend(torch.randn(2, 1600), torch.tensor([1600, 900]))
    assert features.dtype == torch.float32


@pytest.mark.parametrize("n_mfcc", [0, 41])
def test_mfcc_count_out_of_range_is_a_config_error(n_mfcc):
    with pytest.raises(ConfigError, match="n_mfcc"):
        MFCC(n_mels=40, n_mfcc=n_mfcc)


def test_bad_normalize_mode_is_a_config_error():
    with pytest.raises(ConfigError, match="normalize"):
        FeatureNorm(4, "batch")
    with pytest.raises(ConfigError):
        LogMel(normalize="per-clip")


# --- FeatureNorm -------------------------------------------------------------------------


def padded_features(seed: int = 0, garbage: float = 1e3):
    gen = torch.Generator().manual_seed(seed)
    features = 3.0 + 2.0 * torch.randn(3, 10, 4, generator=gen)
    lengths = torch.tensor([10, 6, 1])
    features[~frame_mask(lengths, 10)] = garbage
    return features, lengths


def test_utterance_stats_ignore_padded_frames():
    norm = FeatureNorm(4, "utterance")
    features, lengths = padded_features()
    out = norm(features, lengths)
    for row, n in enumerate(lengths.tolist()):
        valid = features[row, :n]
        mean = valid.mean(0)
        std = valid.std(0, unbiased=False)
        torch.testing.assert_close(out[row, :n], (valid - mean) / (std + norm.eps))
        alone = norm(valid[None], torch.tensor([n]))
        torch.testing.assert_close(out[row, :n], alone[0], atol=1e-6, rtol=1e-6)
    full = out[0]
    torch.testing.assert_close(full.mean(0), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(full.std(0, unbiased=False), torch.ones(4), atol=1e-4, rtol=0)


@pytest.mark.parametrize("mode", ["utterance", "global", "none"])
def test_padded_frames_are_zeroed(mode):
    norm = FeatureNorm(4, mode)
    features, lengths = padded_features()
    if mode == "global":
        norm.accumulate(features, lengths)
        norm.finish()
    out = norm(features, lengths)
    assert not out[~frame_mask(lengths, 10)].any()
    assert torch.isfinite(out).all()
    if mode == "none":
        valid = frame_mask(lengths, 10)
        assert torch.equal(out[valid], features[valid])


def test_global_accumulate_and_finish_give_the_stats_of_valid_frames():
    norm = FeatureNorm(4, "global")
    assert not bool(norm.ready)
    a, la = padded_features(seed=1)
    b, lb = padded_features(seed=2, garbage=-7e4)
    b = b[:, :7]
    lb = torch.tensor([7, 2, 5])
    norm.accumulate(a, la)
    norm.accumulate(b, lb)
    norm.finish()
    valid = torch.cat([a[frame_mask(la, 10)], b[frame_mask(lb, 7)]])
    torch.testing.assert_close(norm.mean, valid.mean(0))
    torch.testing.assert_close(norm.std, valid.std(0, unbiased=False))
    assert bool(norm.ready)
    assert norm.pending_sums is None
    out = norm(a, la)
    mask = frame_mask(la, 10)
    torch.testing.assert_close(out[mask], (a[mask] - norm.mean) / norm.std)


def test_global_finish_with_summed_sums_equals_accumulating_everything():
    """What an all-reduce over ranks does: each rank accumulates, the sums are added."""
    a, la = padded_features(seed=3)
    b, lb = padded_features(seed=4)
    rank0, rank1, single = (
        FeatureNorm(4, "global"),
        FeatureNorm(4, "global"),
        FeatureNorm(4, "global"),
    )
    rank0.accumulate(a, la)
    rank1.accumulate(b, lb)
    single.accumulate(a, la)
    single.accumulate(b, lb)
    total = rank0.pending_sums + rank1.pending_sums
    rank0.finish(total)
    single.finish()
    torch.testing.assert_close(rank0.mean, single.mean)
    torch.testing.assert_close(rank0.std, single.std)


def test_global_stats_travel_in_the_state_dict():
    norm = FeatureNorm(4, "global")
    features, lengths = padded_features()
    norm.accumulate(features, lengths)
    norm.finish()
    fresh = FeatureNorm(4, "global")
    fresh.load_state_dict(norm.state_dict())
    assert bool(fresh.ready)
    torch.testing.assert_close(fresh(features, lengths), norm(features, lengths))


def test_global_constant_feature_does_not_divide_by_zero():
    norm = FeatureNorm(2, "global")
    features = torch.ones(1, 5, 2)
    lengths = torch.tensor([5])
    norm.accumulate(features, lengths)
    norm.finish()
    out = norm(features, lengths)
    assert torch.isfinite(out).all()
    assert not out.any()


def test_global_not_ready_raises():
    norm = FeatureNorm(4, "global")
    features, lengths = padded_features()
    with pytest.raises(RuntimeError, match="never estimated"):
        norm(features, lengths)
    norm.accumulate(features, lengths)  # accumulating alone does not make it ready
    with pytest.raises(RuntimeError):
        norm(features, lengths)
    frontend = LogMel(normalize="global")
    with pytest.raises(RuntimeError):
        frontend(torch.randn(1, 800), torch.tensor([800]))


@pytest.mark.parametrize("kind", KINDS)
def test_global_normalisation_is_causal_and_batch_independent(kind):
    frontend = make_frontend(kind, "global")
    audio, lengths = pad(clips())
    frontend.norm.accumulate(*frontend.raw(audio, lengths))
    frontend.norm.finish()
    batch, frame_lengths = frontend(audio, lengths)
    for row, clip in enumerate(clips()):
        alone, _ = frontend(clip[None], torch.tensor([len(clip)]))
        n = int(frame_lengths[row])
        torch.testing.assert_close(batch[row, :n], alone[0], atol=1e-5, rtol=1e-5)
