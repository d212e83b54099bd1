"""The package's import structure: every internal import at the top of its module (none hidden
in a function to get past a cycle) and no cycle among the modules. Read from the source with
`ast`, so a cycle is found even where Python's import order would happen to tolerate it."""

import ast
import os

from conftest import REPO

PACKAGE = "empathy_jax"


def _modules() -> dict[str, str]:
  """Module name -> file, for every module of the package."""
  found = {}
  for folder, _, files in os.walk(os.path.join(REPO, PACKAGE)):
    for name in files:
      if name.endswith(".py"):
        path = os.path.join(folder, name)
        module = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
        found[module.removesuffix(".__init__")] = path
  return found


def _imported(node, package: str, modules) -> list[str]:
  """The package modules an import statement loads (its own package's __init__ included)."""
  if isinstance(node, ast.Import):
    names = [a.name for a in node.names]
  elif isinstance(node, ast.ImportFrom):
    base = node.module or ""
    if node.level:
      parts = package.split(".")[:len(package.split(".")) - node.level + 1]
      base = ".".join(parts + ([base] if base else []))
    names = [base] + [f"{base}.{a.name}" for a in node.names]
  else:
    return []
  loaded = set()
  for name in names:
    while name and name not in modules:  # `from pkg import function`: the module pkg
      name = name.rpartition(".")[0]
    if name.startswith(PACKAGE):
      loaded.add(name)
  return sorted(loaded)


def _graph():
  modules = _modules()
  top, inner = {}, []
  for module, path in modules.items():
    with open(path, encoding="utf-8") as f:
      tree = ast.parse(f.read(), path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    top[module] = {m for node in tree.body for m in _imported(node, package, modules)
                   if m != module}
    for fn in ast.walk(tree):
      if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
        inner += [f"{os.path.relpath(path, REPO)}:{node.lineno}" for node in ast.walk(fn)
                  if _imported(node, package, modules)]
  return top, inner


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """One cycle of `graph` as a path, or None (depth-first search, three colours)."""
  state, stack = {}, []

  def visit(node):
    state[node] = "open"
    stack.append(node)
    for nxt in sorted(graph.get(node, ())):
      if state.get(nxt) == "open":
        return stack[stack.index(nxt):] + [nxt]
      if nxt not in state:
        found = visit(nxt)
        if found:
          return found
    state[node] = "done"
    stack.pop()
    return None

  for node in sorted(graph):
    if node not in state:
      found = visit(node)
      if found:
        return found
  return None


def test_internal_imports_are_at_the_top_of_their_module():
  _, inner = _graph()
  assert not inner, f"package imports inside functions: {inner}"


def test_the_package_has_no_import_cycle():
  top, _ = _graph()
  assert {"empathy_jax.pipeline", "empathy_jax.training.ppo.trainer"} <= set(top)
  assert top["empathy_jax.pipeline"]  # imports were read
  assert _cycle(top) is None, " -> ".join(_cycle(top))


def test_the_cycle_finder_finds_a_cycle():
  assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
  assert _cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
