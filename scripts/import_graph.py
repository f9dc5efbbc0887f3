"""Draw the package's import graph by rooms (docs/import_graph.png) and check it has no cycle.

    python scripts/import_graph.py [--out docs/import_graph.png]

Each node is a room: ``core`` (errors, config_schema, ...: what everything imports), a
sub-package (``models``, ``tasks``, ...), or inside ``data/`` one of its rooms (``sources``,
``shards``) or modules, so the data path reads file -> tensor -> batch. An arrow A -> B
means some module of A imports one of B (at any depth in the module, as Python would on
use). Rooms are drawn in layers: a room sits above every room it imports, so all arrows
point down; a cycle would make that impossible and is reported instead (exit status 1).
"""

import argparse
import ast
import sys
from collections.abc import Iterable
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "audioseq"
#: Modules of data/ drawn together: the records every stage passes along.
DATA_RECORDS = {"example", "entries", "frame_labels", "skipping"}
#: Top-level modules everything may use.
CORE = {"__init__", "config_schema", "errors", "checkpoint_io", "heartbeat"}


def room(module: str) -> str:
    """The room of a dotted module name below ``audioseq`` (``data.sources.manifest`` ->
    ``data/sources``)."""
    parts = module.split(".")
    if parts[0] != "data":
        return "core" if parts[0] in CORE else parts[0]
    if len(parts) == 1 or parts[1] == "__init__":
        return "data/records"
    if parts[1] in ("sources", "shards"):
        return f"data/{parts[1]}"
    if parts[1] == "wav":
        return "data/audio"
    return "data/records" if parts[1] in DATA_RECORDS else f"data/{parts[1]}"


def imported(tree: ast.AST) -> Iterable[str]:
    """The ``audioseq.*`` modules (or module.attribute names) a parsed module imports."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("audioseq."))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("audioseq"):
            yield from (f"{node.module}.{a.name}" for a in node.names)


def known(name: str, modules: set[str]) -> str | None:
    """The longest module prefix of ``audioseq.x.y.Name`` that is a module of the package."""
    parts = name.removeprefix("audioseq.").split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules or f"{candidate}.__init__" in modules:
            return candidate
    return None


def graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Room -> the rooms it imports (itself left out)."""
    files = {
        ".".join(p.relative_to(package).with_suffix("").parts): p for p in package.rglob("*.py")
    }
    modules = set(files)
    edges: dict[str, set[str]] = {}
    for name, path in files.items():
        source = room(name)
        edges.setdefault(source, set())
        for target in imported(ast.parse(path.read_text(), str(path))):
            module = known(target, modules)
            if module is not None and room(module) != source:
                edges[source].add(room(module))
    return edges


def layers(edges: dict[str, set[str]]) -> list[list[str]]:
    """Rooms by depth: the bottom layer imports nothing, each room sits one above the
    highest room it imports. Raises ValueError naming a cycle if there is one."""
    depth: dict[str, int] = {}

    def visit(node: str, path: tuple[str, ...]) -> int:
        if node in path:
            cycle = " -> ".join((*path[path.index(node) :], node))
            raise ValueError(f"import cycle between rooms: {cycle}")
        if node not in depth:
            depth[node] = 1 + max((visit(t, (*path, node)) for t in edges[node]), default=-1)
        return depth[node]

    for node in sorted(edges):
        visit(node, ())
    rows = [
        sorted(n for n, d in depth.items() if d == level)
        for level in range(max(depth.values()) + 1)
    ]
    return rows[::-1]


def draw(edges: dict[str, set[str]], out: Path) -> None:
    """Layered drawing: data/ rooms in blue, arrows from importer to imported."""
    from matplotlib.figure import Figure

    rows = layers(edges)
    width = max(len(r) for r in rows)
    pos = {
        node: ((i + 0.5) * width / len(row), len(rows) - 1 - level)
        for level, row in enumerate(rows)
        for i, node in enumerate(row)
    }
    fig = Figure(figsize=(2.1 * width, 1.3 * len(rows)))
    ax = fig.add_subplot()
    for source, targets in edges.items():
        for target in targets - {"core"}:  # everything imports core: its arrows are noise
            ax.annotate(
                "",
                xy=pos[target],
                xytext=pos[source],
                arrowprops={
                    "arrowstyle": "->",
                    "color": "0.6",
                    "lw": 0.7,
                    "shrinkA": 14,
                    "shrinkB": 14,
                },
            )
    for node, (x, y) in pos.items():
        color = "#cfe3f7" if node.startswith("data/") else "#eeeeee"
        ax.text(x, y, node, ha="center", va="center", fontsize=9,
                bbox={"boxstyle": "round", "fc": color, "ec": "0.4"})  # fmt: skip
    ax.set_xlim(0, width)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.axis("off")
    ax.set_title(
        "audioseq import graph by room: an arrow points to what a room imports "
        "(arrows into core left out); data/ rooms in blue"
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=PACKAGE.parents[1] / "docs" / "import_graph.png"
    )
    args = parser.parse_args(argv)
    edges = graph()
    try:
        draw(edges, args.out)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{len(edges)} rooms, {sum(map(len, edges.values()))} imports between them: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
