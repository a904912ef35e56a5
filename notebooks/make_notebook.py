"""Writes lottery_tpu.ipynb from the cells below (edit here, then `python notebooks/make_notebook.py`).

Kept as code so the notebook's source is reviewable and a test can check it is up to date.
"""

import json
import pathlib

CELLS = [
    ("markdown", """# ltjax on a Colab TPU: the lottery ticket experiment on LeNet-300-100 / MNIST

Frankle & Carbin (ICLR 2019): iterative magnitude pruning finds subnetworks ("winning tickets")
that, reset to their original initialization, train to the dense network's accuracy or better.
This notebook installs ltjax, prepares MNIST, and runs the paper's LeNet experiment with every
trial's ticket and its controls (random reinitialization, random mask) spread over **all TPU
cores** as one compiled program per round.

Runtime → Change runtime type → TPU. The parameters cell below is the only thing to edit; the
paper's full schedule (16 rounds x 50,000 iterations, 5 trials, 3 reinit draws) is the default."""),
    ("code", """# parameters
# Where ltjax comes from: this repository's URL (edit it for a fork), or '' if already installed.
INSTALL = "pip install -q 'ltjax[tf] @ git+https://github.com/ltjax/ltjax'"
DATA_DIR = "/content/tensorflow_datasets"   # MNIST is prepared here if it is missing
WORKDIR = "/content/workdirs/lenet_mnist"   # results, checkpoints; rerun this notebook to resume
PRESET = "lenet_mnist"                      # the paper's schedule
OVERRIDES = {}                              # e.g. {"train.steps": 20000, "prune.rounds": 8}
CPU_DEVICES = -1                            # CPU only: cores (or forced host devices) as devices""", ["parameters"]),
    ("code", """import subprocess, sys
if INSTALL:
    subprocess.run(INSTALL, shell=True, check=True)"""),
    ("markdown", """## Devices
ltjax lays the stacked tickets over a `jax.sharding.Mesh` of every device (`execution.mesh='auto'`):
15 tickets on 8 TPU cores become 16 slots (one padding copy that never reaches the results),
two tickets per core, each core running its tickets vmapped."""),
    ("code", """from ltjax import runtime
runtime.start(cpu_devices=CPU_DEVICES)   # before any JAX computation
import jax
print(jax.default_backend(), jax.device_count(), "devices:", jax.devices())"""),
    ("markdown", "## Data\nMNIST through TFDS, prepared once into `DATA_DIR` (this needs TensorFlow, which Colab has)."),
    ("code", """import pathlib
import tensorflow_datasets as tfds
if not (pathlib.Path(DATA_DIR) / "mnist").is_dir():
    tfds.builder("mnist", data_dir=DATA_DIR, file_format="array_record").download_and_prepare()
print(sorted(p.name for p in pathlib.Path(DATA_DIR).iterdir()))"""),
    ("markdown", "## The experiment\nEvery round trains all tickets at once, prunes each trial's ticket (fc 20%, output 10%), and resets the survivors to their initialization."),
    ("code", """import time
from ltjax import configs, experiment

cfg = configs.get(PRESET)
cfg.data_dir = DATA_DIR
for key, value in OVERRIDES.items():
    node, *path = cfg, *key.split(".")
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value

t0 = time.perf_counter()
records = experiment.train_and_evaluate(cfg, WORKDIR, log=print)
print(f"whole run: {time.perf_counter() - t0:.1f} s")"""),
    ("markdown", "## Per round"),
    ("code", """from ltjax import results
for r in sorted({rec["round"] for rec in records}):
    recs = [rec for rec in records if rec["round"] == r]
    print(f"round {r}: {recs[0]['wall_seconds']:.1f} s for {len(recs)} tickets")
print(results.format_table(results.summarize(records)))"""),
    ("markdown", "## Figures\nThe report reads the workdir (it never trains): accuracy and early-stop iteration against weights remaining, validation curves, surviving initial values, mask overlap."),
    ("code", """from IPython.display import Image, display
from ltjax import analysis, plots
report = plots.write_report([analysis.load_run(WORKDIR)], pathlib.Path(WORKDIR) / "report")
for png in sorted(report.parent.glob("*.png")):
    print(png.name)
    display(Image(filename=str(png)))"""),
]


def notebook() -> dict:
  cells = []
  for i, (kind, source, *tags) in enumerate(CELLS):
    cell = {"cell_type": kind, "id": f"cell-{i:02d}", "metadata": {"tags": tags[0]} if tags else {},
            "source": source.splitlines(keepends=True)}
    if kind == "code":
      cell.update(execution_count=None, outputs=[])
    cells.append(cell)
  return {"cells": cells, "nbformat": 4, "nbformat_minor": 5,
          "metadata": {"accelerator": "TPU", "colab": {"provenance": []},
                       "kernelspec": {"display_name": "Python 3", "language": "python",
                                      "name": "python3"},
                       "language_info": {"name": "python"}}}


def main() -> None:
  path = pathlib.Path(__file__).with_name("lottery_tpu.ipynb")
  path.write_text(json.dumps(notebook(), indent=1) + "\n")
  print(path)


if __name__ == "__main__":
  main()
