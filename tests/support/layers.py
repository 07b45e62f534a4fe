"""
The import rules between txcomet's layers, read from the source with
L{ast} (nothing is imported): who imports whom, at any depth (inside
functions, under C{if TYPE_CHECKING:}, in C{try:}), and which of those
imports break a rule.

The rules, as docs/architecture.md states them:

  - C{_model} imports nothing of the package but C{interfaces};
  - C{_fastpath} imports only the model (and C{interfaces});
  - C{_auth} imports only the model (and C{interfaces});
  - a bus (C{_bus}) imports nothing from sessions, transports, the server,
    the node, the demo or the client;
  - sessions (C{_sessions}) import nothing from transports, the server, the
    node or the demo;
  - nothing inside the package imports the package itself (its
    C{__init__}), so the public facade is free to import anything;
  - no import cycles between modules.

Used by tests/test_layers.py on txcomet/ and on small synthetic packages
that break each rule.
"""

import ast
import os
from typing import Dict, List, Optional, Set

#: For each layer, the layers of the package it may import (besides
#: itself); C{None} means anything not forbidden below.
ALLOWED: Dict[str, Optional[Set[str]]] = {
    "_model": {"interfaces"},
    "_fastpath": {"_model", "interfaces"},
    "_auth": {"_model", "interfaces"},
}

#: For each layer, the layers it must not import.
FORBIDDEN: Dict[str, Set[str]] = {
    "_bus": {"_sessions", "_transports", "_server", "_node", "_demo", "_client"},
    "_sessions": {"_transports", "_server", "_node", "_demo"},
}


def findModules(directory: str, package: str) -> Dict[str, str]:
    """
    Map every module's dotted name under the package at C{directory} (called
    C{package}) to its file; a package's C{__init__.py} has the package's name.
    """
    modules = {}
    for folder, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if os.path.exists(os.path.join(folder, d, "__init__.py")))
        relative = os.path.relpath(folder, directory)
        prefix = package if relative == "." else package + "." + relative.replace(os.sep, ".")
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            stem = name[:-3]
            modules[prefix if stem == "__init__" else prefix + "." + stem] = os.path.join(folder, name)
    return modules


def _resolve(importer: str, isPackage: bool, node: ast.ImportFrom) -> str:
    """
    The absolute module name an C{import from} starts at, relative ones
    resolved against C{importer}.
    """
    if not node.level:
        return node.module or ""
    parts = importer.split(".")
    if not isPackage:
        parts = parts[:-1]
    if node.level > 1:
        parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def importsOf(name: str, path: str, modules: Dict[str, str], package: str) -> Dict[str, int]:
    """
    The modules of C{package} that the module C{name} (source at C{path})
    imports, each with the first line that does: C{from a import b} names
    module C{a.b} when that is a module, C{a} otherwise.
    """
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    isPackage = os.path.basename(path) == "__init__.py"
    found: Dict[str, int] = {}

    def add(target, line):
        if target == package or target.startswith(package + "."):
            # A name below a module (``from a.b.c import d`` where d is a
            # name, or a package's __init__ module) counts as
            # the nearest module that exists; a module that does not exist
            # at all keeps its name (its layer still counts).
            nearest = target
            while nearest not in modules and nearest.count(".") > 1:
                nearest = nearest.rsplit(".", 1)[0]
            found.setdefault(nearest if nearest in modules else target, line)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, isPackage, node)
            for alias in node.names:
                sub = base + "." + alias.name
                add(sub if sub in modules else base, node.lineno)
    found.pop(name, None)
    return found


def importGraph(directory: str, package: str) -> Dict[str, Dict[str, int]]:
    """
    Every module of the package at C{directory} with the package's modules it
    imports (and the line of the first such import).
    """
    modules = findModules(directory, package)
    return {name: importsOf(name, path, modules, package) for name, path in modules.items()}


def layerOf(module: str, package: str) -> Optional[str]:
    """
    The layer of a module: the first name below the package (C{_model},
    C{interfaces}, C{tap}...), or C{None} for the package's C{__init__}.
    """
    if module == package:
        return None
    return module[len(package) + 1 :].split(".")[0]


def ruleViolations(graph: Dict[str, Dict[str, int]], package: str) -> List[str]:
    """
    One line for each import that breaks a layer rule, or imports the
    package's C{__init__}.
    """
    problems = []
    for importer in sorted(graph):
        source = layerOf(importer, package)
        for target, line in sorted(graph[importer].items()):
            where = "%s (line %d) imports %s" % (importer, line, target)
            if target == package:
                problems.append("%s: nothing inside the package imports its __init__" % where)
                continue
            layer = layerOf(target, package)
            if source is None or layer == source:
                continue
            allowed = ALLOWED.get(source)
            if allowed is not None and layer not in allowed:
                problems.append("%s: %s may import only %s" % (where, source, ", ".join(sorted(allowed))))
            elif layer in FORBIDDEN.get(source, ()):
                problems.append("%s: %s must not import %s" % (where, source, layer))
    return problems


def cycles(graph: Dict[str, Dict[str, int]]) -> List[List[str]]:
    """
    The import cycles: every strongly connected group of more than one
    module (Tarjan's algorithm, iterative), each sorted, in sorted order.
    """
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    onStack: Set[str] = set()
    stack: List[str] = []
    found = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        onStack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    onStack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in onStack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        onStack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        found.append(sorted(group))
    return sorted(found)


def check(directory: str, package: str) -> List[str]:
    """
    Everything wrong with the imports of the package at C{directory}: rule
    violations, then one line per cycle.
    """
    graph = importGraph(directory, package)
    problems = ruleViolations(graph, package)
    for group in cycles(graph):
        problems.append("import cycle: %s" % " <-> ".join(group))
    return problems
