"""audioseq.data.shards.tar_members reads what Python's tarfile writes, in every format, and
fails on cut or corrupt archives."""

import io
import tarfile

import pytest
from webdataset.tariterators import base_plus_ext

from audioseq.data.shards.storage import key_and_extension
from audioseq.data.shards.tar_members import BLOCK, TarError, members, members_in

NAMES = [
    "a/short.wav",
    "b/" + "long" * 40 + ".wav",  # > 100 characters: a ustar prefix, pax or GNU long name
    "c/nön-äscii.json",
    "d/empty.txt",
]


def archive(format: int, mtime: float = 1_700_000_000) -> tuple[bytes, dict[str, bytes]]:
    """The archive (end-of-archive blocks included) and the contents of its files."""
    data, contents, _ = archive_and_end(format, mtime)
    return data, contents


def archive_and_end(format: int, mtime: float) -> tuple[bytes, dict[str, bytes], int]:
    """``archive``, and where its last member ends (its end-of-archive blocks begin)."""
    contents = {name: (name * 7).encode("utf-8")[: 300 + 211 * i] for i, name in enumerate(NAMES)}
    contents["d/empty.txt"] = b""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=format) as tar:
        info = tarfile.TarInfo("a")
        info.type = tarfile.DIRTYPE
        tar.addfile(info)  # a directory: not a member to return
        for name, data in contents.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), mtime
            tar.addfile(info, io.BytesIO(data))
        end = tar.offset
    return buffer.getvalue(), contents, end


@pytest.mark.parametrize(
    ("format", "mtime"),
    [(tarfile.GNU_FORMAT, 1_700_000_000), (tarfile.PAX_FORMAT, 1_700_000_000.25)],
)
def test_every_member_as_tarfile_writes_it(format, mtime):
    """GNU long names; pax records (a fractional mtime gives every member one)."""
    data, contents = archive(format, mtime)
    assert dict(members(io.BytesIO(data), lambda *_: True)) == contents


def test_ustar_with_a_prefix_field():
    buffer = io.BytesIO()
    name = "dir/" * 30 + "clip.wav"  # > 100 characters, split into prefix + name
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    assert list(members(io.BytesIO(buffer.getvalue()), lambda *_: True)) == [(name, b"abc")]


def test_unselected_members_are_skipped():
    data, contents = archive(tarfile.PAX_FORMAT)
    got = list(members(io.BytesIO(data), lambda name, *_: name.endswith(".json")))
    assert got == [("c/nön-äscii.json", contents["c/nön-äscii.json"])]


@pytest.mark.parametrize("cut", [700, 1500, 2600])
def test_a_cut_archive_raises(cut):
    """Cut inside a header or a member's data (not on a block boundary)."""
    data, _ = archive(tarfile.PAX_FORMAT, 1_700_000_000.25)
    with pytest.raises(TarError, match="unexpected end of data"):
        list(members(io.BytesIO(data[:cut]), lambda *_: True))


def test_a_corrupt_header_raises():
    data, _ = archive(tarfile.GNU_FORMAT)
    corrupt = bytearray(data)
    corrupt[BLOCK + 10] ^= 0xFF  # the second header's name (the first is the directory)
    with pytest.raises(TarError, match="bad checksum"):
        list(members(io.BytesIO(bytes(corrupt)), lambda *_: True))
    with pytest.raises(TarError):
        list(members(io.BytesIO(b"this is not a tar file" * 40), lambda *_: True))


@pytest.mark.parametrize(
    ("format", "mtime"),
    [(tarfile.GNU_FORMAT, 1_700_000_000), (tarfile.PAX_FORMAT, 1_700_000_000.25)],
)
def test_a_byte_range_of_whole_members_reads_as_the_stream_does(format, mtime):
    """What the loader reads a sample by: every member of a range, from memory."""
    data, contents, end = archive_and_end(format, mtime)
    got = {name: bytes(view) for name, view in members_in(memoryview(data)[:end])}
    assert got == contents


def test_a_range_may_run_on_to_the_end_of_the_archive():
    """A scanned shard's last sample: its range ends where the file does."""
    data, contents, end = archive_and_end(tarfile.PAX_FORMAT, 1_700_000_000.25)
    assert len(data) > end + BLOCK  # the end-of-archive blocks (and the record's padding)
    assert {name: bytes(view) for name, view in members_in(data)} == contents


@pytest.mark.parametrize("format", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_each_member_starts_where_tarfile_put_its_headers(format):
    """``select`` learns where each member's headers begin (long names and pax records
    included: their headers come first) and where its contents begin."""
    data, _ = archive(format, 1_700_000_000.25)
    starts = {}
    list(members(io.BytesIO(data), lambda name, *at: starts.setdefault(name, at) is not None))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        expected = {m.name: (m.offset, m.offset_data) for m in tar.getmembers() if m.isfile()}
    assert starts == expected


@pytest.mark.parametrize("cut", [-512, -1, 100])
def test_a_range_that_does_not_end_where_a_member_ends_raises(cut):
    """Ranges from an index that does not fit the shard: cut inside a member, past the
    last one (into the end-of-archive blocks), or inside the first header."""
    data, _, end = archive_and_end(tarfile.PAX_FORMAT, 1_700_000_000.25)
    span = data[: end + cut] if cut < 0 else data[:cut]
    with pytest.raises(TarError):
        list(members_in(span))
    with pytest.raises(TarError, match="end-of-archive block inside"):
        list(members_in(data[: end + BLOCK] + data[:BLOCK]))
    with pytest.raises(TarError, match="invalid header"):
        list(members_in(b"this is not a tar file" * 40))


@pytest.mark.parametrize(
    "name",
    ["k.wav", "d/k.seg.wav", "d.x/k.json", "a/b/.h.wav", ".h.wav", "a/.b", "noext", "a.b/c", "k."],
)
def test_member_names_split_as_webdataset_splits_them(name):
    """Samples group by the same keys on both read paths as in webdataset."""
    assert key_and_extension(name) == base_plus_ext(name)
