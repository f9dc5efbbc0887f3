"""The package's rooms import each other without cycles (scripts/import_graph.py)."""

import importlib.util

import pytest
from processes import ROOT

spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts" / "import_graph.py")
import_graph = importlib.util.module_from_spec(spec)
spec.loader.exec_module(import_graph)


def test_rooms_form_layers_without_a_cycle() -> None:
    edges = import_graph.graph()
    rows = import_graph.layers(edges)
    level = {room: i for i, row in enumerate(rows) for room in row}
    for source, targets in edges.items():
        for target in targets:
            assert level[target] > level[source], (source, target)  # arrows only point down
    assert {"data/sources", "data/shards", "data/audio", "data/batching"} <= set(level)
    assert rows[-1] and "core" in rows[-1] and edges["core"] == set()


def test_the_data_path_is_layered_file_to_batch() -> None:
    edges = import_graph.graph()
    assert "data/audio" in edges["data/sources"]  # sources decode through data/audio
    assert "data/batching" in edges["data/sources"]
    assert "data/sources" in edges["data/datamodule"]
    assert not edges["data/audio"] & {"data/sources", "data/batching", "data/datamodule"}


def test_a_cycle_is_named() -> None:
    with pytest.raises(ValueError, match="a -> b -> a"):
        import_graph.layers({"a": {"b"}, "b": {"a"}, "c": {"a"}})


def test_the_picture_is_drawn(tmp_path) -> None:
    out = tmp_path / "graph.png"
    assert import_graph.main(["--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
