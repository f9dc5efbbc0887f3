"""The members of a tar stream, parsed straight from its 512-byte headers.

Python's ``tarfile`` (which webdataset's reader uses) builds a TarInfo object per member
through several layers of Python; for shards of small audio clips that took more time
than decoding the audio (docs/PERFORMANCE.md). This reads what shards hold: ustar
headers, pax extended headers (``path``/``size``, as Python's own tar writer emits for long
or non-ASCII names and fractional times) and GNU long names. A stream's headers are
checksummed, so a corrupt or cut shard still fails with a reason; a sample read whole by
the byte range its shard's index gives is checked against that range instead.
"""

from collections.abc import Callable, Iterator
from typing import BinaryIO

BLOCK = 512
_REGULAR = (b"0", b"\0", b"7")  # file, old-style file, contiguous file
_PAX = (b"x", b"g")
_GNU_LONG_NAME, _GNU_LONG_LINK = b"L", b"K"
_ZEROS = bytes(BLOCK)  # an end-of-archive block


class TarError(Exception):
    """The bytes are not a (complete) tar archive."""


def _number(field: bytes) -> int:
    """A header's octal (or GNU base-256) number."""
    if field and field[0] & 0x80:
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text or b"0", 8)
    except ValueError:
        raise TarError("invalid header") from None


def _check(header: bytes) -> None:
    """The header checksum (unsigned, or the signed sum some old writers used)."""
    stored = _number(header[148:156])
    rest = header[:148] + header[156:]
    unsigned = sum(rest) + 8 * 32
    if stored != unsigned and stored != unsigned - 2 * sum(b for b in rest if b > 127):
        raise TarError("bad checksum")


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise TarError("unexpected end of data")
    return data


def _pax_records(data: bytes) -> dict[str, str]:
    """``"<length> <key>=<value>\\n"`` records."""
    records, position = {}, 0
    while position < len(data):
        length = int(data[position : data.index(b" ", position)])
        key, _, value = data[data.index(b" ", position) + 1 : position + length - 1].partition(b"=")
        records[key.decode("utf-8")] = value.decode("utf-8", "surrogateescape")
        position += length
    return records


def _fields(header: bytes, pending: dict[str, str]) -> tuple[bytes, int, str | None]:
    """A header's type, size and member name; the name is None for a pax or GNU long-name
    header, whose data (given to ``_describe``) describes the member after it."""
    kind, size = header[156:157], _number(header[124:136])
    if kind in _PAX or kind in (_GNU_LONG_NAME, _GNU_LONG_LINK):
        return kind, size, None
    name = pending.pop("path", None)
    if name is None:
        name = header[:100].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        if header[345] and header[257:262] == b"ustar":  # a ustar prefix: the name's head
            prefix = header[345:500].split(b"\0", 1)[0]
            name = prefix.decode("utf-8", "surrogateescape") + "/" + name
    if "size" in pending:
        size = int(pending.pop("size"))
    pending.clear()
    return kind, size, name


def _describe(kind: bytes, data: bytes, pending: dict[str, str]) -> None:
    """Take in what a pax or GNU long-name header says about the next member."""
    if kind == b"x":
        pending.update(_pax_records(data))
    elif kind == _GNU_LONG_NAME:
        pending["path"] = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def members(
    stream: BinaryIO, select: Callable[[str, int, int], bool]
) -> Iterator[tuple[str, bytes]]:
    """``(name, contents)`` of each regular file that ``select(name, start, contents)``
    accepts, in order (``start``: the stream offset of the member's first header block, pax
    or GNU long-name headers included; ``contents``: where its contents begin); the
    contents of the others are skipped unread. Ends at
    the end-of-archive block or at the end of the stream on a block boundary; raises
    TarError for anything else."""
    pending: dict[str, str] = {}
    position = start = 0  # where the stream is, and where the member's headers began
    while True:
        header = stream.read(BLOCK)
        if not header or header == _ZEROS:
            return
        if len(header) < BLOCK:
            raise TarError("unexpected end of data")
        _check(header)
        kind, size, name = _fields(header, pending)
        padded = size + (-size % BLOCK)
        position += BLOCK + padded
        if name is None:
            _describe(kind, _read_exactly(stream, padded)[:size], pending)
            continue
        # Skipped members are read too (not seeked over), so a cut shard fails here as it
        # would over HTTP.
        wanted = kind in _REGULAR and select(name, start, position - padded)
        start = position
        data = _read_exactly(stream, size)
        _read_exactly(stream, padded - size)
        if wanted:
            yield name, data


def member_ranges(span: bytes | memoryview) -> Iterator[tuple[str, int, int]]:
    """``(name, start, size)`` of each regular file in ``span``: whole members (headers,
    data, padding) read in one piece, e.g. one sample of a shard whose index gives its
    byte range; ``start`` is where the member's contents begin in ``span``. Headers are not
    checksummed (the range already pins where each member must end: a member that does
    not end exactly at the span's end raises TarError, as does an unparsable field). The
    span may end with the archive's end-of-archive blocks: a scanned shard's last sample
    runs to the end of the file."""
    view, position, pending = memoryview(span), 0, {}
    while position < len(span):
        header = bytes(view[position : position + BLOCK])
        if len(header) < BLOCK:
            raise TarError("the sample's byte range ends inside a member")
        if header == _ZEROS:  # the archive's end: only more of it may follow
            if bytes(view[position:]).strip(b"\0"):
                raise TarError("an end-of-archive block inside the sample's byte range")
            break
        kind, size, name = _fields(header, pending)
        start = position + BLOCK
        position = start + size + (-size % BLOCK)
        if position > len(span):
            raise TarError("a member runs past the sample's byte range")
        if name is None:
            _describe(kind, bytes(view[start : start + size]), pending)
        elif kind in _REGULAR:
            yield name, start, size
    if pending:
        raise TarError("the sample's byte range ends after a pax or long-name header")


def members_in(span: bytes | memoryview) -> Iterator[tuple[str, memoryview]]:
    """``(name, contents)`` of each regular file in ``span`` (see ``member_ranges``); the
    contents are views into ``span``, not copies."""
    view = memoryview(span)
    for name, start, size in member_ranges(span):
        yield name, view[start : start + size]


def plain_header(header: bytes) -> tuple[str, int] | None:
    """The name and size a member's own 512-byte header gives (None: not a regular file).
    No pax or long-name header is taken into account: only for members that have none."""
    kind, size, name = _fields(header, {})
    return None if name is None or kind not in _REGULAR else (name, size)
