"""The package's layout is its architecture: imports point down the layers (core <- engine,
models, data <- lineup, wiring <- methods <- lottery <- runs <- reports), none forms a circle,
none hides in a function to dodge one, and no module grows into a grab-bag."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "ltjax"
MAX_LINES = 400
# What each part of ltjax may import from ltjax (besides itself); '' is the top-level `ltjax`.
ALLOWED = {
    "core": set(),
    "configs": set(),
    "files": set(),
    "importpath": set(),
    "engine": {"core", "data", "files"},
    "models": {"core", "importpath"},
    "data": {"files", "importpath"},
    "lineup": {"core", "engine", "methods.modes"},
    "wiring": {"core", "engine", "models", "data", "lineup", "methods.modes"},
    "stability": {"core", "engine", "lineup"},
    "methods": {"core", "engine", "data", "models", "lineup", "wiring", "methods"},
    "lottery": {"core", "engine", "data", "lineup", "wiring", "stability", "methods"},
    "runs": {"core", "engine", "data", "models", "lineup", "wiring", "lottery", "methods", "files",
             "importpath",
             "configs", "stability"},
    "reports": {"core", "runs.results", "runs.checkpoint", "files"},
}


def _modules():
  for path in sorted(PACKAGE.rglob("*.py")):
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
    yield name, path


def _imports(path: pathlib.Path, top_level_only: bool):
  """(module imported, line) for each ltjax import; only the module's own top level if asked."""
  tree = ast.parse(path.read_text())
  nodes = tree.body if top_level_only else list(ast.walk(tree))
  for node in nodes:
    if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "ltjax":
      for alias in node.names:
        full = f"{node.module}.{alias.name}"
        yield (full if (PACKAGE.parent / (full.replace(".", "/") + ".py")).exists()
               or (PACKAGE.parent / full.replace(".", "/")).is_dir() else node.module), node.lineno
    elif isinstance(node, ast.Import):
      for alias in node.names:
        if alias.name.split(".")[0] == "ltjax":
          yield alias.name, node.lineno


def _part(module: str) -> str:
  parts = module.split(".")[1:]
  return parts[0] if parts else ""


@pytest.mark.parametrize("name, path", list(_modules()), ids=lambda x: str(x))
def test_imports_point_down_the_layers(name, path):
  if name == "ltjax":
    return  # the public API gathers every layer
  part = _part(name)
  for target, line in _imports(path, top_level_only=False):
    there = _part(target)
    if there == part or target == "ltjax":
      continue
    allowed = ALLOWED[part]
    sub = ".".join(target.split(".")[1:3])
    assert there in allowed or sub in allowed, f"{name}:{line} imports {target} ({part} may use {sorted(allowed)})"


def test_no_import_circle():
  graph = {name: {t for t, _ in _imports(path, top_level_only=True)} for name, path in _modules()}
  graph = {k: {t for t in v if t in graph and t != k} for k, v in graph.items()}
  state = {}

  def visit(node, stack):
    if state.get(node) == "done":
      return
    assert state.get(node) != "open", f"import circle: {' -> '.join([*stack, node])}"
    state[node] = "open"
    for nxt in sorted(graph[node]):
      if nxt != "ltjax" and not node.startswith(nxt + "."):  # a package's __init__ runs first anyway
        visit(nxt, [*stack, node])
    state[node] = "done"

  for node in sorted(graph):
    visit(node, [])


def test_no_module_is_a_grab_bag():
  long = {name: n for name, path in _modules() if (n := len(path.read_text().splitlines())) > MAX_LINES}
  assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_lottery_reads_in_one_screen():
  assert len((PACKAGE / "lottery.py").read_text().splitlines()) <= 200
