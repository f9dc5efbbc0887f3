"""scripts/make_shards.py: manifest or class-folder input -> equal shards of 16 kHz mono
audio with JSON sidecars, and an index.json the DataModule trusts."""

import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest
import soundfile as sf
import torch
from processes import script
from shard_corpus import write_corpus

from audioseq.data.audio import decode_audio, read_audio
from audioseq.data.shards.writer import input_entries, write_shards
from audioseq.errors import ConfigError, DataError


def make_shards_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return script("make_shards", *map(str, args), cwd=cwd, timeout=120, returncode=None)


def members(shard: Path) -> dict[str, bytes]:
    with tarfile.open(shard) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def test_cli_writes_equal_shards_and_an_index(tmp_path):
    manifest = write_corpus(tmp_path / "src", 11)
    result = make_shards_cli(manifest, tmp_path / "train", "--samples-per-shard", "4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "11 samples" in result.stdout and "3 shards" in result.stdout
    index = json.loads((tmp_path / "train" / "index.json").read_text())
    assert [s["url"] for s in index["shards"]] == [f"train-00000{i}.tar" for i in range(3)]
    assert [s["count"] for s in index["shards"]] == [4, 4, 3]
    assert index["count"] == 11 and index["labels"] == ["down", "go", "up"]
    assert index["seconds"] == pytest.approx(11 * 0.25)
    assert sum(sum(s["labels"].values()) for s in index["shards"]) == 11
    for shard in index["shards"]:
        names = list(members(tmp_path / "train" / shard["url"]))
        assert len(names) == 2 * shard["count"]
        assert {n.split(".", 1)[1] for n in names} == {"json", "wav"}
    assert not list((tmp_path / "train").glob("*.partial"))


def test_the_index_gives_where_each_sample_starts_and_the_last_ends(tmp_path):
    """The offsets the loader reads a sample by, in one piece: each sample's first header,
    then the end of the last member (where the end-of-archive blocks begin)."""
    out = tmp_path / "train"
    write_shards(input_entries(write_corpus(tmp_path / "src", 7)), out, 4, progress=False)
    index = json.loads((out / "index.json").read_text())
    for shard in index["shards"]:
        with tarfile.open(out / shard["url"]) as tar:
            found = tar.getmembers()
        assert len(shard["offsets"]) == shard["count"] + 1
        assert shard["offsets"][:-1] == [m.offset for m in found[::2]]  # KEY.json, KEY.wav
        end = found[-1].offset_data + found[-1].size
        assert shard["offsets"][-1] == end + (-end % 512)
    assert (out / "index.json").read_text().count("\n") < 20  # a line per shard, not per offset


@pytest.mark.parametrize("flac", [False, True])
def test_the_index_gives_each_samples_key_label_duration_and_audio_range(tmp_path, flac):
    """The sample table the loader reads a labelled clip by: the key, label and duration
    of each sample's sidecar, and where its audio member's contents lie, as tarfile finds
    them; WAV and FLAC members alike."""
    out, suffix = tmp_path / "train", ".flac" if flac else ".wav"
    manifest = write_corpus(tmp_path / "src", 7, flac_every=3, seconds=lambda i: 0.1 + 0.05 * i)
    write_shards(input_entries(manifest), out, 4, flac=flac, progress=False)
    index = json.loads((out / "index.json").read_text())
    for shard in index["shards"]:
        table = shard["samples"]
        with tarfile.open(out / shard["url"]) as tar:
            found = tar.getmembers()
            sidecars = [json.load(tar.extractfile(m)) for m in found if m.name.endswith(".json")]
        audio = [m for m in found if m.name.endswith(suffix)]
        assert table["keys"] == [m.name.removesuffix(suffix) for m in audio]
        assert table["audio"] == [[m.offset_data, m.size] for m in audio]
        assert table["labels"] == [meta["label"] for meta in sidecars]
        assert table["durations"] == [meta["duration"] for meta in sidecars]
    assert sum(len(s["samples"]["keys"]) for s in index["shards"]) == 7


def test_no_sample_table_for_a_name_too_long_for_its_own_header(tmp_path):
    """A source stem that makes the member name longer than a tar header holds (a pax
    header carries it): that shard gets no table, and is read from its sidecars."""
    manifest = write_corpus(tmp_path / "src", 4)
    lines = manifest.read_text().splitlines()
    long = Path(json.loads(lines[0])["audio_filepath"]).with_name("x" * 120 + ".wav")
    Path(json.loads(lines[0])["audio_filepath"]).rename(long)
    lines[0] = json.dumps({**json.loads(lines[0]), "audio_filepath": str(long)})
    manifest.write_text("\n".join(lines) + "\n")
    out = tmp_path / "train"
    write_shards(input_entries(manifest), out, 2, shuffle=False, progress=False)
    index = json.loads((out / "index.json").read_text())
    assert ["samples" in shard for shard in index["shards"]] == [False, True]


def test_audio_is_resampled_to_16k_mono_and_flac_works(tmp_path, sine):
    stereo = sine(440, 0.5, 8000, channels=2)
    path = tmp_path / "in" / "st.wav"
    path.parent.mkdir()
    sf.write(str(path), stereo, 8000)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"audio_filepath": str(path), "label": "x"}) + "\n")
    for flac in (False, True):
        out = tmp_path / ("flac" if flac else "wav")
        write_shards(input_entries(manifest), out, 10, flac=flac, progress=False)
        files = members(out / f"{out.name}-000000.tar")
        suffix = "flac" if flac else "wav"
        (name,) = [n for n in files if n.endswith(suffix)]
        info = sf.info(io.BytesIO(files[name]))
        assert (info.samplerate, info.channels) == (16000, 1)
        decoded = decode_audio(files[name], name)
        expected = read_audio(path)
        assert decoded.shape == expected.shape == (8000,)
        torch.testing.assert_close(decoded, expected, atol=2e-4, rtol=0)
        meta = json.loads(files[name.replace(suffix, "json")])
        assert meta["label"] == "x" and meta["duration"] == pytest.approx(0.5)


def test_class_folder_input_skips_noise_and_hidden_folders(tmp_path, sine, write_wav):
    root = tmp_path / "tree"
    for label in ("no", "yes"):
        for i in range(3):
            write_wav(root / label / f"{i}.wav", sine(300 + i, 0.2, 16000), 16000)
    write_wav(root / "_background_noise_" / "n.wav", sine(50, 0.2, 16000), 16000)
    write_wav(root / ".cache" / "c.wav", sine(60, 0.2, 16000), 16000)
    write_wav(root / "yes" / ".hidden" / "h.wav", sine(70, 0.2, 16000), 16000)
    index = write_shards(input_entries(root), tmp_path / "out", 5, progress=False)
    assert index["count"] == 6 and index["labels"] == ["no", "yes"]
    assert [s["count"] for s in index["shards"]] == [5, 1]


def test_shuffled_by_default_in_order_on_request(tmp_path):
    manifest = write_corpus(tmp_path / "src", 12)
    keys = {}
    for shuffle in (True, False):
        out = tmp_path / f"s{shuffle}"
        write_shards(input_entries(manifest), out, 12, shuffle=shuffle, progress=False)
        names = members(out / f"{out.name}-000000.tar")
        keys[shuffle] = [n.split("_", 1)[1].split(".")[0] for n in names if n.endswith(".wav")]
    assert keys[False] == [f"clip{i:03d}" for i in range(12)]
    assert sorted(keys[True]) == keys[False] and keys[True] != keys[False]


def test_bad_inputs_raise_or_are_skipped_and_counted(tmp_path):
    manifest = write_corpus(tmp_path / "src", 5)
    bad = tmp_path / "src" / "clips" / "clip002.wav"
    bad.write_bytes(b"not audio" * 50)
    with pytest.raises(DataError, match=r"clip002\.wav: cannot decode"):
        write_shards(input_entries(manifest), tmp_path / "a", 2, progress=False)
    assert not (tmp_path / "a" / "index.json").exists()
    with pytest.warns(UserWarning, match="skipping"):
        index = write_shards(
            input_entries(manifest), tmp_path / "b", 2, on_error="skip", progress=False
        )
    assert [s["count"] for s in index["shards"]] == [2, 2] and index["skipped"] == {"corrupt": 1}
    result = make_shards_cli(manifest, tmp_path / "c", "--samples-per-shard", "2", cwd=tmp_path)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]  # after the progress bar
    assert last.startswith("error: ") and "clip002.wav: cannot decode" in last
    assert not list((tmp_path / "c").glob("*.partial"))


def test_usage_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        input_entries(tmp_path / "nothing")
    with pytest.raises(ConfigError, match="samples-per-shard"):
        write_shards([], tmp_path / "o", 0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no audio files"):
        input_entries(tmp_path / "empty")
