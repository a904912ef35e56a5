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
paper's full schedule (16 rounds x 50,000 iterations, 5 trials, 3 reinit draws) is the default.

**Install: point `LTJAX_SOURCE` at the ltjax you have.** ltjax is not on PyPI and has no public
repository to fetch it from, so the notebook installs it from your copy:
* the repository you cloned, uploaded to Colab (Files pane, or `!unzip` an archive) or on a mounted
  Drive: the folder holding `setup.py`, e.g. `/content/ltjax` (the default) or
  `/content/drive/MyDrive/ltjax`;
* a wheel built from it (`python -m build`, or `pip wheel --no-deps . -w dist`, in the clone gives
  `dist/ltjax-<version>-py3-none-any.whl`), uploaded, e.g. `/content/ltjax-*.whl` (a pattern
  matching exactly one file is fine);
* a git URL of a repository you can clone (yours, or a fork you pushed), as pip spells it:
  `git+https://github.com/<you>/<repo>` (optionally `@<branch or commit>`);
* `""` if ltjax is already installed in this runtime."""),
    ("code", """# parameters
LTJAX_SOURCE = "/content/ltjax"             # your clone, a built wheel, or a git URL: see above
DATA_DIR = "/content/tensorflow_datasets"   # MNIST is prepared here if it is missing
WORKDIR = "/content/workdirs/lenet_mnist"   # results, checkpoints; rerun this notebook to resume
PRESET = "lenet_mnist"                      # the paper's schedule
OVERRIDES = {}                              # e.g. {"train.steps": 20000, "prune.rounds": 8}
CPU_DEVICES = -1                            # CPU only: cores (or forced host devices) as devices""", ["parameters"]),
    ("code", """import glob, os, re, subprocess, sys
if LTJAX_SOURCE:
    if re.match(r"[a-z][a-z0-9+.-]*://", LTJAX_SOURCE):   # a URL: pip clones it (git+https://...)
        source = LTJAX_SOURCE
    else:                                                 # a folder or a wheel here, or a pattern
        found = sorted(glob.glob(os.path.expanduser(LTJAX_SOURCE)))
        if len(found) != 1:
            raise FileNotFoundError(
                f"LTJAX_SOURCE={LTJAX_SOURCE!r} matches {found or 'nothing'}: upload your clone of "
                "the ltjax repository (the folder with setup.py) or a wheel built from it, and point "
                "LTJAX_SOURCE at it (one folder or one .whl)")
        source = found[0]
        if not (source.endswith(".whl") or os.path.isfile(os.path.join(source, "setup.py"))):
            raise FileNotFoundError(f"{source} is neither a .whl nor a folder holding setup.py")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", source], check=True)"""),
    ("markdown", """## Devices
ltjax lays the stacked tickets over a `jax.sharding.Mesh` of every device (`execution.mesh='auto'`):
15 tickets on 8 TPU cores become 16 slots (one padding copy that never reaches the results),
two tickets per core, each core running its tickets vmapped."""),
    ("code", """from ltjax.engine import runtime
runtime.start(cpu_devices=CPU_DEVICES)   # before any JAX computation
import jax
print(jax.default_backend(), jax.device_count(), "devices:", jax.devices())"""),
    ("markdown", "## Data\nMNIST through TFDS, downloaded and prepared once into `DATA_DIR` by ltjax (no TensorFlow needed)."),
    ("code", """import pathlib
from ltjax.data import prepare
if not (pathlib.Path(DATA_DIR) / "mnist").is_dir():
    prepare.prepare("mnist", DATA_DIR)
print(sorted(p.name for p in pathlib.Path(DATA_DIR).iterdir()))"""),
    ("markdown", "## The experiment\nEvery round trains all tickets at once, prunes each trial's ticket (fc 20%, output 10%), and resets the survivors to their initialization."),
    ("code", """import time
from ltjax import configs
from ltjax.runs import experiment

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
    ("code", """from ltjax.runs import results
for r in sorted({rec["round"] for rec in records}):
    recs = [rec for rec in records if rec["round"] == r]
    print(f"round {r}: {recs[0]['wall_seconds']:.1f} s for {len(recs)} tickets")
print(results.format_table(results.summarize(records)))"""),
    ("markdown", "## Figures\nThe report reads the workdir (it never trains): accuracy and early-stop iteration against weights remaining, validation curves, surviving initial values, mask overlap."),
    ("code", """from IPython.display import Image, display
from ltjax.reports import summary
report = summary.report([WORKDIR], pathlib.Path(WORKDIR) / "report")   # the figures and summary.md
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
