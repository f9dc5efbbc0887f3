"""Shards over real HTTP (http.server on loopback, in a thread) and through fsspec:
exact epochs, a dropped connection resumed, and dead or silent servers failing fast."""

import shutil
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest
from shard_corpus import make_shards, shard_keys

from audioseq.data.datamodule import AudioDataModule
from audioseq.data.shards.storage import StorageError, read_bytes
from audioseq.data.sources.shards import ShardSource
from audioseq.errors import ConfigError, DataError, one_line

SERVER = r"""
import sys
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

folder, drop_log = sys.argv[1], sys.argv[2]


class Handler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        log = Path(drop_log) if drop_log else None
        if log and path.suffix == ".tar" and path.name not in log.read_text().split():
            with log.open("a") as f:  # cut the first transfer of each shard off halfway
                f.write(path.name + "\n")
            data = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
            return
        super().do_GET()


server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=folder))
print(server.server_address[1], flush=True)
server.serve_forever()
"""


class Server:
    """``python -m http.server``'s handler over ``folder`` in a process of its own (a
    server in this process would live on in the DataLoader workers it forks)."""

    def __init__(self, folder: Path, drop_log: Path | None) -> None:
        self.drop_log = drop_log
        if drop_log:
            drop_log.write_text("")
        cmd = [sys.executable, "-c", SERVER, str(folder), str(drop_log or "")]
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        self.port = int(self.process.stdout.readline())

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def dropped(self) -> list[str]:
        return self.drop_log.read_text().split() if self.drop_log else []

    def kill(self) -> None:
        """Die like a crashed host: open transfers are cut, new connections refused."""
        self.process.kill()
        self.process.wait(timeout=10)


@contextmanager
def serve(folder: Path, drop_log: Path | None = None) -> Iterator[Server]:
    server = Server(folder, drop_log)
    try:
        yield server
    finally:
        server.kill()


def within(seconds: float, fn: Callable[[], object]) -> dict:
    """Run ``fn`` in a thread; fail (instead of hanging the suite) if it is still running
    after ``seconds``. Returns ``{"value": ...}`` or ``{"error": exception}``."""
    result: dict = {}

    def target() -> None:
        try:
            result["value"] = fn()
        except BaseException as e:
            result["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s: a hang"
    return result


def epoch_keys(dm: AudioDataModule, split: str = "train") -> tuple[int, int, list[str]]:
    loader = getattr(dm, f"{split}_dataloader")()
    batches = list(loader)
    return len(loader), len(batches), [k for b in batches for k in b["key"]]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """tmp_path/train: 9 shards of 4 clips (36 in all) with index.json."""
    make_shards(tmp_path, 36, 4)
    return tmp_path


def test_http_shards_give_exact_epochs_with_two_workers(corpus):
    with serve(corpus) as server:
        dm = AudioDataModule(
            source="shards",
            train_shards=server.url("train"),
            val_shards=server.url("train/train-{000000..000008}.tar"),
            batch_size=5,
            num_workers=2,
            clip_seconds=None,
        )
        assert dm.labels == ["down", "go", "up"]
        for split in ("train", "val"):
            length, count, keys = within(60, partial(epoch_keys, dm, split))["value"]
            assert length == count == 8
            assert sorted(keys) == sorted(shard_keys(corpus / "train"))


def test_connection_lost_mid_shard_resumes_where_it_stopped(corpus):
    with serve(corpus, drop_log=corpus / "dropped.txt") as server:
        dm = AudioDataModule(
            source="shards", train_shards=server.url("train"), batch_size=4, num_workers=2
        )
        length, count, keys = within(60, partial(epoch_keys, dm))["value"]
        assert len(server.dropped()) == 9  # every shard was cut once, and read again
    assert length == count == 9
    assert sorted(keys) == sorted(shard_keys(corpus / "train"))


def test_server_dying_mid_epoch_is_a_clear_error_not_a_hang(corpus):
    with serve(corpus) as server:
        dm = AudioDataModule(
            source="shards",
            train_shards=server.url("train"),
            batch_size=2,
            num_workers=2,
            shuffle_buffer=0,
            timeout_seconds=5.0,
        )

        def consume() -> int:
            seen = 0
            for _ in dm.train_dataloader():
                seen += 1
                if seen == 1:  # the server goes away mid-epoch
                    server.kill()
            return seen

        result = within(60, consume)
    assert "error" in result, f"epoch finished after the server died: {result}"
    message = one_line(result["error"])
    assert message.startswith("http://127.0.0.1:"), message
    assert "unreachable after 4 attempts" in message or "reading failed" in message, message
    assert "127.0.0.1" in message and ".tar" in message


def test_silent_server_times_out_quickly():
    with socket.socket() as listener:  # accepts connections (backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        result = within(
            30,
            partial(
                ShardSource,
                train_shards=f"http://127.0.0.1:{port}/train",
                timeout_seconds=0.3,
                retries=1,
            ),
        )
    assert isinstance(result.get("error"), StorageError), result
    assert "index.json: unreachable after 2 attempts" in str(result["error"])


def test_missing_index_and_remote_pattern_without_index(corpus):
    (corpus / "train" / "index.json").rename(corpus / "train" / "elsewhere.json")
    with serve(corpus) as server:
        with pytest.raises(DataError, match=r"train/index\.json: not found \(HTTP 404\)"):
            ShardSource(train_shards=server.url("train"), retries=0)
        with pytest.raises(ConfigError, match="remote shards are not scanned"):
            ShardSource(train_shards=server.url("train/train-{000000..000001}.tar"))
        source = ShardSource(train_shards=server.url("train/elsewhere.json"))
        assert sum(s.count for s in source._shards["train"]) == 36


def test_the_proxy_is_the_one_the_environment_names_at_each_request(corpus, monkeypatch):
    """A proxy that was set once, and urllib's global opener built meanwhile (as by a
    download in another library), is not kept: shards are read through the proxies of
    the moment. Kept, every later shard request of the process went to a dead port."""
    with serve(corpus) as server:
        index = server.url("train/index.json")
        with monkeypatch.context() as m:
            m.setenv("http_proxy", "http://127.0.0.1:9")  # a proxy that is not there
            m.setenv("no_proxy", "")
            with pytest.raises(OSError):
                urllib.request.urlopen(index, timeout=5)
            with pytest.raises(StorageError, match="Connection refused"):
                read_bytes(index, timeout=5, retries=0)  # the proxy is honoured...
        assert b'"shards"' in read_bytes(index, timeout=5, retries=0)  # ...and forgotten


def test_fsspec_urls(corpus):
    fsspec = pytest.importorskip("fsspec")
    memory = fsspec.filesystem("memory")
    for path in (corpus / "train").iterdir():
        memory.pipe(f"/shards/train/{path.name}", path.read_bytes())
    try:
        dm = AudioDataModule(
            source="shards", train_shards="memory://shards/train", batch_size=6, num_workers=0
        )
        length, count, keys = epoch_keys(dm)
    finally:
        memory.rm("/shards", recursive=True)
    assert length == count == 6 and sorted(keys) == sorted(shard_keys(corpus / "train"))
    with pytest.raises(ConfigError, match=r"s3://"):
        ShardSource(train_shards="s3://no-such-bucket/train")
    shutil.rmtree(corpus / "train_src")
