"""Opening shards wherever they live, and reading a range of samples out of one.

Local paths are opened directly; ``http(s)://`` with urllib, a timeout and a few retries,
so a dead server fails within seconds instead of hanging (webdataset's own opener runs
``curl`` with 30 retries); other schemes (``s3://``, ``gs://``, ...) through fsspec.

Tar members are parsed by ``audioseq.data.shards.tar_members`` (several times faster than
``tarfile``) and grouped into samples as webdataset's ``group_by_keys`` does. What is added
here: reading only the samples
``start <= index < stop`` of a shard (members before ``start`` are skipped unread, and the
read stops at ``stop``), resuming after a lost connection, and telling the caller which
samples a truncated or corrupt shard lost, so epoch lengths stay exact. A local shard
whose index gives each sample's byte offset is not streamed: each sample is read in one
piece (``by_range``), or only its audio member when the index also gives where that lies
and the sample's label (``by_audio``).
"""

import http.client
import os
import posixpath
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
from webdataset.tariterators import base_plus_ext

from audioseq.data.shards.tar_members import BLOCK, TarError, members, members_in, plain_header
from audioseq.errors import ConfigError, DataError

if TYPE_CHECKING:  # index.py imports this module
    from audioseq.data.shards.index import SampleTable

#: The audio members a sample may hold: what make_shards writes (it re-encodes the rest).
AUDIO_MEMBERS = ("wav", "flac")
#: Whether local shards can be read by byte range (``os.pread``: not on Windows).
_PREAD = hasattr(os, "pread")
#: Exceptions that mean "the storage went away", not "the data is bad": retried.
NETWORK_ERRORS = (OSError, http.client.HTTPException)


class StorageError(DataError):
    """Storage that cannot be reached after the retries: always raised (``on_error=skip``
    is for bad samples, not for an outage)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "bad_shard")


def scheme(url: str) -> str:
    """``""`` for a local path (or ``file://``), else the URL scheme (``http``, ``s3``...)."""
    parsed = urllib.parse.urlparse(url)
    return "" if len(parsed.scheme) <= 1 or parsed.scheme == "file" else parsed.scheme


def local_path(url: str) -> Path:
    return Path(urllib.parse.urlparse(url).path if url.startswith("file://") else url)


def join(base: str, name: str) -> str:
    """``name`` relative to the folder ``base`` (absolute paths and URLs are kept)."""
    if scheme(name) or Path(name).is_absolute():
        return name
    if scheme(base):
        return posixpath.join(base.rstrip("/"), name)
    return str(local_path(base) / name)


def parent(url: str) -> str:
    return posixpath.dirname(url) if scheme(url) else str(local_path(url).parent)


class _LengthChecked:
    """An HTTP body that raises when the connection ends before Content-Length bytes
    (http.client returns a silent short read, which would look like a cut tar)."""

    def __init__(self, response: http.client.HTTPResponse, url: str) -> None:
        self.response, self.url, self.read_bytes = response, url, 0
        length = response.getheader("Content-Length")
        self.length = int(length) if length and length.isdigit() else None

    def read(self, size: int = -1) -> bytes:
        data = self.response.read(size)
        self.read_bytes += len(data)
        if not data and size != 0 and self.length is not None and self.read_bytes < self.length:
            raise ConnectionError(f"connection lost after {self.read_bytes} of {self.length} bytes")
        return data

    def close(self) -> None:
        self.response.close()


def _open_http(url: str, timeout: float) -> BinaryIO:
    """The response to a GET of ``url``, through the proxies the environment names now.

    A fresh opener per request: ``urllib.request.urlopen`` keeps the one it built first,
    with the proxies of that moment, for the life of the process (a test that had pointed
    ``http_proxy`` at a dead port made every later shard request in its process refused).
    """
    try:
        response = urllib.request.build_opener().open(url, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code in (404, 410):
            raise DataError(f"{url}: not found (HTTP {e.code})", "missing") from None
        if 400 <= e.code < 500 and e.code not in (408, 429):  # retrying will not help
            raise StorageError(f"{url}: HTTP {e.code} {e.reason}") from None
        raise
    return _LengthChecked(response, url)  # type: ignore[return-value]


def _open_fsspec(url: str) -> BinaryIO:
    try:
        import fsspec
    except ImportError:
        raise ConfigError(f"{url}: reading {scheme(url)}:// URLs needs fsspec") from None
    try:
        return fsspec.open(url, "rb").open()
    except (ImportError, ValueError) as e:  # fsspec names the missing package (s3fs, gcsfs)
        raise ConfigError(f"{url}: cannot open {scheme(url)}:// URLs ({e})") from None
    except FileNotFoundError:
        raise DataError(f"{url}: not found", "missing") from None


def open_binary(url: str, timeout: float = 30.0, retries: int = 3) -> BinaryIO:
    """Open a shard or index for reading; connection failures are retried ``retries``
    times (0.2 s, 0.4 s, ... apart) and then raised as StorageError."""
    kind = scheme(url)
    if not kind:
        path = local_path(url)
        if not path.is_file():
            raise DataError(f"{url}: not found", "missing")
        # A member's header, data and padding come out of one 1 MiB buffer: one system call
        # per MiB rather than about three per member (no CPU change measured warm).
        return path.open("rb", buffering=1 << 20)
    # Hand-written: urllib3 is not installed; fsspec's HTTP has no retries nor our 4xx rules.
    for attempt in range(retries + 1):
        try:
            return _open_http(url, timeout) if kind in ("http", "https") else _open_fsspec(url)
        except (DataError, ConfigError):  # StorageError included: already final
            raise
        except NETWORK_ERRORS as e:
            if attempt == retries:
                raise StorageError(
                    f"{url}: unreachable after {retries + 1} attempts ({_reason(e)})"
                ) from None
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")


def read_bytes(url: str, timeout: float = 30.0, retries: int = 3) -> bytes:
    """A whole (small) file, e.g. ``index.json``."""
    with closing(open_binary(url, timeout, retries)) as f:
        return f.read()


def _reason(e: BaseException) -> str:
    """An exception's message without webdataset's `` @ <stream>`` decorations."""
    if isinstance(e, urllib.error.URLError):
        e = e.reason if isinstance(e.reason, BaseException) else e
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    text = str(e.args[0]) if e.args else type(e).__name__
    return text.split(" @ ")[0] or type(e).__name__


def key_and_extension(name: str) -> tuple[str | None, str | None]:
    """A member name split as webdataset's ``base_plus_ext`` splits it (``dir/key`` and
    everything after the first dot of the file name), without its regular expression for
    the usual name: that took a fifth of the time of reading a sample by its byte range."""
    start = name.rfind("/") + 1
    dot = name.find(".", start)
    if dot > start:
        return name[:dot], name[dot + 1 :]
    return base_plus_ext(name)  # no dot, or a file name that starts with one


class _Done(Exception):
    """Raised from the member selector at index ``stop``: ends the read without
    touching the rest of the shard."""


_NO_AUDIO_YET = -2  # a scanned sample's audio position before its audio member is seen


@dataclass
class _Cursor:
    start: int
    stop: int
    index: int = -1
    key: str | None = None
    member: str = ""
    extension: str = ""
    error: BaseException | None = None
    #: Where each sample's first member begins in the stream, when asked for (a scan).
    starts: list[int] | None = None
    #: With ``starts``: where each sample's audio member's contents begin (-1: not exactly
    #: one audio member).
    audio: list[int] = field(default_factory=list)

    def select(self, name: str, start: int, contents: int) -> bool:
        """Counts samples as member names change key; True for members in range (whose
        key and extension are then ``key``/``extension``: split once per member)."""
        prefix, self.extension = key_and_extension(name)
        if prefix is None:
            return False
        if prefix != self.key:
            self.key, self.index = prefix, self.index + 1
            if self.starts is not None:
                self.starts.append(start)
                self.audio.append(_NO_AUDIO_YET)
        if self.starts is not None and (self.extension or "").lower() in AUDIO_MEMBERS:
            self.audio[-1] = contents if self.audio[-1] == _NO_AUDIO_YET else -1
        self.member = name
        if self.index >= self.stop:
            raise _Done
        return self.index >= self.start


def _one_pass(stream: BinaryIO, url: str, cursor: _Cursor) -> Iterator[dict]:
    """The complete samples of ``cursor``'s range, in order, until the range or the
    shard ends or reading fails (then ``cursor.error`` says why). Members are grouped
    into samples by key as webdataset's ``group_by_keys`` does: ``{"__key__", "__url__",
    "<extension>": bytes, ...}``."""
    sample: dict | None = None
    try:
        for name, data in members(stream, cursor.select):
            key, extension = cursor.key, cursor.extension
            if sample is None or sample["__key__"] != key:
                if sample is not None:
                    yield sample
                sample = {"__key__": key, "__url__": url}
            extension = extension.lower()
            if extension in sample:
                raise TarError(f"{name}: duplicate file name in the tar file")
            sample[extension] = data
    except _Done:
        pass
    except (TarError, *NETWORK_ERRORS, ValueError) as e:
        cursor.error = e
        return  # the sample being read may lack members
    if sample is not None:
        yield sample


@dataclass
class ShardReader:
    """Reads ranges of samples from shards, with the storage's timeout and retries."""

    timeout: float = 30.0
    retries: int = 3

    def open(self, url: str) -> BinaryIO:
        return open_binary(url, self.timeout, self.retries)

    def samples(
        self,
        url: str,
        start: int = 0,
        stop: int | None = None,
        offsets: np.ndarray | None = None,
        table: "SampleTable | None" = None,
    ) -> Iterator[tuple[int, dict | DataError]]:
        """``(index, sample)`` for each sample ``start <= index < stop`` of the shard, or
        ``(index, DataError)`` for each one a missing, truncated or corrupt shard lost
        (``stop=None``: to the end of the shard, and one DataError where reading failed).

        With the index's sample ``offsets``, a local uncompressed shard is read one sample
        at a time at its byte range (``by_range``), or only its audio with the index's
        ``table`` (``by_audio``). Otherwise it is streamed: a lost connection resumes at
        the next sample (``retries`` times); storage that stays unreachable raises
        StorageError.
        """
        if offsets is not None and not scheme(url) and url.endswith(".tar") and _PREAD:
            end = len(offsets) - 1 if stop is None else stop
            if table is not None:
                yield from by_audio(url, start, end, table)
            else:
                yield from by_range(url, start, end, offsets)
            return
        end = sys.maxsize if stop is None else stop
        position, failures = start, 0

        def lost(error: DataError) -> Iterator[tuple[int, DataError]]:
            return ((i, error) for i in (range(position, end) if stop is not None else [position]))

        while position < end:
            try:
                stream = self.open(url)
            except StorageError:
                raise
            except DataError as e:
                yield from lost(e)
                return
            cursor = _Cursor(position, end)
            try:
                for sample in _one_pass(stream, url, cursor):
                    yield position, sample
                    position += 1
            finally:
                stream.close()
            error = cursor.error
            if error is None or isinstance(error, _Done):
                if stop is not None and position < stop:
                    yield from lost(
                        DataError(
                            f"{url}: shard ends after {position} samples "
                            "(index.json promises more)",
                            "bad_shard",
                        )
                    )
                return
            # A body cut mid-read, which no request-level retry (urllib3's, fsspec's) sees.
            if isinstance(error, NETWORK_ERRORS):
                failures += 1
                if failures > self.retries:
                    raise StorageError(
                        f"{url}: {cursor.member}: reading failed {failures} times "
                        f"({_reason(error)})"
                    )
                continue  # reopen and skip to ``position``
            yield from lost(_unreadable(url, cursor))
            return


def _unreadable(url: str, cursor: _Cursor) -> DataError:
    return DataError(
        f"{url}: {cursor.member}: unreadable tar ({_reason(cursor.error)})", "bad_shard"
    )


class ShardScan:
    """One pass over a whole local shard that no index describes: its samples in order,
    then ``error`` (why it stopped early, or None) and, for an uncompressed shard read to
    its end, ``offsets``: where each sample begins and the file's size, as make_shards'
    index gives them, so the shard is then read by byte range, and ``audio``: where each
    sample's audio member's contents begin (-1: not exactly one audio member)."""

    def __init__(self, url: str, reader: ShardReader) -> None:
        self.url, self.reader = url, reader
        self.error: DataError | None = None
        self.offsets: np.ndarray | None = None
        self.audio: list[int] = []

    def __iter__(self) -> Iterator[dict]:
        try:
            stream = self.reader.open(self.url)
        except DataError as e:
            self.error = e
            return
        cursor = _Cursor(0, sys.maxsize, starts=[])
        with stream:
            yield from _one_pass(stream, self.url, cursor)
        if cursor.error is not None:
            self.error = _unreadable(self.url, cursor)
        elif self.url.endswith(".tar") and cursor.starts:
            size = local_path(self.url).stat().st_size
            self.offsets = np.array([*cursor.starts, size], dtype=np.int64)
            self.audio = cursor.audio


def by_range(
    url: str, start: int, stop: int, offsets: np.ndarray
) -> Iterator[tuple[int, dict | DataError]]:
    """``ShardReader.samples`` for a local shard whose index gives each sample's byte
    range: one ``pread`` a sample, its members views of that one buffer.

    Per sample that is about half the streaming reader's CPU time (docs/PERFORMANCE.md),
    and a bad sample costs only itself: the next one's range does not depend on it. A shard
    shorter than its index says loses the samples from where it ends.
    """
    spans = pairwise(offsets[start : stop + 1].tolist())
    yield from _read_spans(url, start, stop, spans, lambda span, i: _sample(span, url, i))


def by_audio(
    url: str, start: int, stop: int, table: "SampleTable"
) -> Iterator[tuple[int, dict | DataError]]:
    """``ShardReader.samples`` for a local shard whose index has a ``SampleTable``: one
    ``pread`` of a sample's audio member (its header and contents), no other member read
    and no tar parsing but that header's name and size, checked against the index."""
    spans = ((begin - BLOCK, begin + size) for begin, size in table.audio[start:stop].tolist())
    yield from _read_spans(
        url, start, stop, spans, lambda span, i: _audio_sample(span, url, i, table)
    )


def _read_spans(
    url: str,
    start: int,
    stop: int,
    spans: Iterable[tuple[int, int]],
    parse: Callable[[bytes, int], dict | DataError],
) -> Iterator[tuple[int, dict | DataError]]:
    """``(i, parse(bytes, i))`` for samples ``start <= i < stop``, each read at its span."""
    try:
        file = local_path(url).open("rb", buffering=0)
    except (FileNotFoundError, IsADirectoryError):  # as ``open_binary`` finds them
        missing = DataError(f"{url}: not found", "missing")
        yield from ((i, missing) for i in range(start, stop))
        return
    with file:
        fd = file.fileno()
        for i, (begin, end) in enumerate(spans, start):
            try:
                span = os.pread(fd, end - begin, begin)
            except OSError as e:
                raise StorageError(f"{url}: reading sample {i} failed ({_reason(e)})") from None
            if len(span) < end - begin:
                cut = DataError(
                    f"{url}: shard ends after {i} samples (index.json promises more)", "bad_shard"
                )
                yield from ((j, cut) for j in range(i, stop))
                return
            yield i, parse(span, i)


def _audio_sample(span: bytes, url: str, index: int, table: "SampleTable") -> dict | DataError:
    """Sample ``index`` from its audio member's header and contents, with the label and
    duration the index gives (``__meta__``, read instead of the JSON sidecar)."""
    try:
        described = plain_header(span[:BLOCK])
    except TarError:
        described = None
    key, extension = key_and_extension(described[0]) if described else (None, None)
    expected = table.keys[index].decode("ascii")
    if key != expected or described is None or described[1] != len(span) - BLOCK:
        return DataError(
            f"{url}: sample {index}: no audio member of {expected!r} where index.json says "
            "(was the shard rewritten after its index? re-run make_shards.py)",
            "bad_shard",
        )
    return {
        "__url__": url,
        "__key__": key,
        str(extension).lower(): memoryview(span)[BLOCK:],
        "__meta__": table.meta(index),
    }


def _sample(span: bytes, url: str, index: int) -> dict | DataError:
    """The sample whose members fill ``span``, grouped as ``_one_pass`` groups them, or
    why they cannot be one sample."""
    sample: dict = {"__url__": url}
    try:
        for name, data in members_in(span):
            key, extension = key_and_extension(name)
            if key is None:
                continue
            if sample.setdefault("__key__", key) != key:
                raise TarError(f"{name}: a second sample inside sample {index}'s byte range")
            extension = extension.lower()
            if extension in sample:
                raise TarError(f"{name}: duplicate file name in the tar file")
            sample[extension] = data
    except (TarError, ValueError) as e:
        where = sample.get("__key__", f"sample {index}")
        return DataError(f"{url}: {where}: unreadable tar ({_reason(e)})", "bad_shard")
    if "__key__" not in sample:
        return DataError(f"{url}: sample {index}: unreadable tar (no members)", "bad_shard")
    return sample
