#!/usr/bin/env python3
"""The layering rules of src/, checked from the source text (README "Architecture").

1. Rooms are layered: a top-level module may use only modules of a lower layer or its own layer,
   never one above it (e.g. nothing below `api` uses `api`; no service uses the edge).
2. No cycle between rooms, and no cycle between files: a file never uses, directly or through
   others, a file that uses it back. A module's own `mod.rs` declaring and re-exporting its
   children is not a use.
3. No source file over 400 lines (420 for the few that are data tables is not allowed either).
Exits 1 and lists what breaks a rule.
"""
import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
MAX_LINES = 400
# Lowest first. A room may use rooms of its own layer or below.
LAYERS = [
    {"domain", "error_chain", "config", "rate", "retry"},
    {"store", "guard", "telemetry", "sites"},
    {"completion", "knowledge", "support", "budget"},
    {"human_loop"},
    {"chat"},
    {"review"},
    {"api", "cli"},
    {"startup", "main", "lib"},
]
LAYER_OF = {room: i for i, rooms in enumerate(LAYERS) for room in rooms}

USE = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")


def module_path(file: Path) -> list[str]:
    parts = list(file.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "mod":
        parts = parts[:-1]
    return parts


def strip_comments(text: str) -> str:
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', text)


def main() -> int:
    files = sorted(SRC.rglob("*.rs"))
    modules = {tuple(module_path(f)): f for f in files}
    problems = []
    edges: dict[Path, set[Path]] = {f: set() for f in files}
    room_edges: dict[str, set[str]] = {}

    def resolve(path: list[str]) -> Path | None:
        # The longest prefix that is a module file.
        for n in range(len(path), 0, -1):
            f = modules.get(tuple(path[:n]))
            if f is not None:
                return f
        return None

    for f in files:
        lines = f.read_text().splitlines()
        if len(lines) > MAX_LINES:
            problems.append(f"{f.relative_to(SRC.parent)}: {len(lines)} lines (over {MAX_LINES})")
        here = module_path(f)
        # Items of a non-mod file live in its module; `super` is the parent of that module.
        text = strip_comments(f.read_text())
        text = text.split("#[cfg(test)]")[0]
        for anchor, rest in USE.findall(text):
            names = rest.strip(":").split("::")
            if anchor == "crate":
                target_path = names
            elif anchor == "self":
                target_path = here + names
            else:
                base = list(here)
                while names and names[0] == "super":
                    names = names[1:]
                    base = base[:-1]
                target_path = base[:-1] + names
            target = resolve(target_path)
            if target is None or target == f:
                continue
            tgt_mod = module_path(target)
            # A module declaring or re-exporting its own children is not a use.
            if tgt_mod[: len(here)] == here and len(tgt_mod) > len(here):
                continue
            edges[f].add(target)
            if here and tgt_mod and here[0] != tgt_mod[0]:
                room_edges.setdefault(here[0], set()).add(tgt_mod[0])

    for room, used in sorted(room_edges.items()):
        for other in sorted(used):
            if LAYER_OF.get(other, 99) > LAYER_OF.get(room, -1):
                problems.append(f"upward import: {room} uses {other}")

    problems += [f"room cycle: {' -> '.join(c)}" for c in cycles(room_edges)]
    file_cycles = cycles({str(k.relative_to(SRC)): {str(v.relative_to(SRC)) for v in vs} for k, vs in edges.items()})
    problems += [f"file cycle: {' -> '.join(c)}" for c in file_cycles]
    for p in problems:
        print(p)
    print(f"architecture: {len(files)} files, {len(problems)} problems")
    return 1 if problems else 0


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component) + [sorted(component)[0]])

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return out


if __name__ == "__main__":
    sys.exit(main())
