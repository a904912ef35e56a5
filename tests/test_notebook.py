"""The Colab TPU notebook runs: executed on CPU at a tiny size with 8 forced host devices and the
offline data, so it cannot rot (the TPU run itself is the same code on 8 TPU cores)."""

import json
import re
import subprocess
import sys

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO, shared_data_dir

sys.path.insert(0, str(REPO / "notebooks"))
import make_notebook  # noqa: E402

NOTEBOOK = REPO / "notebooks" / "lottery_tpu.ipynb"


def test_notebook_is_generated_from_its_source():
  assert json.loads(NOTEBOOK.read_text()) == make_notebook.notebook(), (
      "run `python notebooks/make_notebook.py` after editing it")


def _code_cells():
  return [c for c in nbformat.reads(NOTEBOOK.read_text(), as_version=4).cells if c.cell_type == "code"]


def test_the_notebook_names_no_repository_to_install_from():
  """ltjax has no public repository or package: the notebook installs what the user points
  `LTJAX_SOURCE` at (their clone, a wheel built from it, or a git URL they supply), and no code cell
  names a URL of its own (a made-up one fails only on Colab, with a git error)."""
  for cell in _code_cells():
    assert not re.search(r"(?:https?|git|ssh|file)://\w|github\.com", cell.source), cell.source
  params, install = _code_cells()[:2]
  assert "parameters" in params.metadata.get("tags", [])
  assert re.search(r"^LTJAX_SOURCE = ", params.source, re.MULTILINE), params.source
  assert "pip" in install.source and "LTJAX_SOURCE" in install.source
  intro = nbformat.reads(NOTEBOOK.read_text(), as_version=4).cells[0].source
  assert "LTJAX_SOURCE" in intro and ".whl" in intro and "setup.py" in intro


def _install(monkeypatch, source):
  """Runs the install cell with `LTJAX_SOURCE = source`; returns the pip command lines it ran
  (recorded, never run: tests never touch the network)."""
  ran = []
  monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: ran.append(cmd))
  exec(_code_cells()[1].source, {"LTJAX_SOURCE": source})  # noqa: S102  (the notebook's own cell)
  return ran


def test_the_install_cell_takes_a_clone_a_wheel_or_a_git_url(tmp_path, monkeypatch):
  pip = [sys.executable, "-m", "pip", "install", "-q"]
  assert _install(monkeypatch, "") == []                      # already installed
  assert _install(monkeypatch, str(REPO)) == [pip + [str(REPO)]]  # the cloned repository
  wheel = tmp_path / "dist" / "ltjax-0.1.0-py3-none-any.whl"
  wheel.parent.mkdir()
  wheel.write_bytes(b"")
  assert _install(monkeypatch, str(tmp_path / "dist" / "ltjax-*.whl")) == [pip + [str(wheel)]]
  url = "git+https://example.invalid/you/ltjax@main"
  assert _install(monkeypatch, url) == [pip + [url]]
  with pytest.raises(FileNotFoundError, match="upload your clone"):
    _install(monkeypatch, str(tmp_path / "missing"))          # e.g. the default, not uploaded
  (tmp_path / "dist" / "ltjax-0.2.0-py3-none-any.whl").write_bytes(b"")
  with pytest.raises(FileNotFoundError, match="matches"):
    _install(monkeypatch, str(tmp_path / "dist" / "ltjax-*.whl"))  # two wheels: which one?
  with pytest.raises(FileNotFoundError, match="neither a .whl nor a folder holding setup.py"):
    _install(monkeypatch, str(tmp_path))


@pytest.mark.skipif(shared_data_dir() is None, reason="prepared MNIST not found")
@pytest.mark.heavy  # 8 devices on the cores: after the everyday suite (pytest -m heavy)
def test_notebook_runs_the_experiment_over_8_devices(tmp_path, monkeypatch):
  nb = nbformat.reads(NOTEBOOK.read_text(), as_version=4)
  index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
  overrides = {"trials": 3, "prune.rounds": 1, "train.steps": 100, "train.eval_every": 50,
               "execution.compilation_cache": False}
  # As papermill does: a cell after the parameters cell overrides them.
  nb.cells.insert(index + 1, nbformat.v4.new_code_cell(
      f"LTJAX_SOURCE = ''\nDATA_DIR = {str(shared_data_dir())!r}\nWORKDIR = {str(tmp_path / 'w')!r}\n"
      f"PRESET = 'lenet_quick'\nOVERRIDES = {overrides!r}\nCPU_DEVICES = 8"))
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")  # the kernel inherits the environment
  NotebookClient(nb, timeout=300, kernel_name="python3",
                 resources={"metadata": {"path": str(REPO)}}).execute()
  text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
  assert "cpu 8 devices" in text, text
  assert "8x1 mesh (tickets x batch) over 8 cpu devices" in text, text
  assert "round 1:" in text and "random_mask" in text, text
  images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if "image/png" in o.get("data", {})]
  assert len(images) >= 3
  assert (tmp_path / "w" / "report" / "accuracy.png").exists()
