"""The Colab TPU notebook runs: executed on CPU at a tiny size with 8 forced host devices and the
offline data, so it cannot rot (the TPU run itself is the same code on 8 TPU cores)."""

import json
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


@pytest.mark.skipif(shared_data_dir() is None, reason="prepared MNIST not found")
@pytest.mark.heavy  # 8 devices on the cores: after the everyday suite (pytest -m heavy)
def test_notebook_runs_the_experiment_over_8_devices(tmp_path, monkeypatch):
  nb = nbformat.reads(NOTEBOOK.read_text(), as_version=4)
  index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
  overrides = {"trials": 3, "prune.rounds": 1, "train.steps": 100, "train.eval_every": 50,
               "execution.compilation_cache": False}
  # As papermill does: a cell after the parameters cell overrides them.
  nb.cells.insert(index + 1, nbformat.v4.new_code_cell(
      f"INSTALL = ''\nDATA_DIR = {str(shared_data_dir())!r}\nWORKDIR = {str(tmp_path / 'w')!r}\n"
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
