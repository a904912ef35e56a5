"""The report binary on a small real LeNet/MNIST workdir: figures, summary numbers, bad input."""

import os
import pathlib
import re
import subprocess
import sys

import jax
import matplotlib.image
import numpy as np
import pytest

from ltjax.core import masks
from ltjax.reports import analysis, figures
from ltjax.runs import checkpoint, experiment, results
from tests.conftest import REPO, shared_data_dir, tiny_lottery_config

DATA_DIR = shared_data_dir()
needs_mnist = pytest.mark.skipif(DATA_DIR is None, reason="prepared MNIST not found "
                                 "($LTJAX_DATA_DIR or ../shared/datasets/tfds)")
FIGURES = ("accuracy", "final_accuracy", "early_stop", "curves", "init_values", "mask_overlap", "connectivity",
           "input_connectivity")


def report(*args):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "experiments.report", *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """A finished 2-trial, 3-round LeNet run (100 steps a round) and its report (default --out)."""
  if DATA_DIR is None:
    pytest.skip("prepared MNIST not found")
  path = tmp_path_factory.mktemp("lenet")
  cfg = tiny_lottery_config(**{"prune.rounds": 2, "train.steps": 100})
  experiment.train_and_evaluate(cfg, path, log=lambda _: None)
  done = report(f"--workdir={path}")
  assert done.returncode == 0, done.stderr
  return path


@needs_mnist
def test_every_figure_is_a_real_image(workdir):
  out = workdir / "report"
  for name in FIGURES:
    image = matplotlib.image.imread(out / f"{name}.png")
    assert image.shape[0] > 300 and image.shape[1] > 300, name
    assert image[..., :3].std() > 0.05, f"{name} looks blank"


@needs_mnist
def test_summary_links_every_figure_and_the_config(workdir):
  text = (workdir / "report" / "summary.md").read_text()
  linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
  assert sorted(linked) == sorted(f"{name}.png" for name in FIGURES)
  assert all((workdir / "report" / name).exists() for name in linked)
  for essential in ("`lenet_300_100` on `mnist`", "100 iterations per round", "trials: 2",
                    "rounds finished: 3 of 3"):
    assert essential in text


@needs_mnist
def test_summary_table_matches_results(workdir):
  """Parse the per-round table back and compare it with results.jsonl."""
  text = (workdir / "report" / "summary.md").read_text()
  table = text.split("### Results per round")[1].split("Cells:")[0].strip().splitlines()
  head = [c.strip() for c in table[0].strip("|").split("|")]
  recs = results.read(workdir)
  cell = re.compile(r"([\d.]+) \(([\d.]+)–([\d.]+)\)")
  rounds_seen = set()
  for line in table[2:]:
    cells = dict(zip(head, (c.strip() for c in line.strip("|").split("|"))))
    r = int(cells["round"])
    rounds_seen.add(r)
    mine = [x for x in recs if x["round"] == r]
    assert float(cells["% remaining"]) == pytest.approx(
        100 * np.mean([x["density"] for x in mine if x["kind"] == "ticket"]), abs=0.005)
    for kind, name in analysis.KIND_LABELS.items():
      of_kind = [x for x in mine if x["kind"] == kind]
      if not of_kind:
        assert cells.get(f"{name}: test acc. %", "") == ""  # no column, or an empty cell
        continue
      es = [x["early_stop_step"] for x in of_kind]
      acc = [100 * x["test_accuracy"] for x in of_kind]
      got_es = [float(v) for v in cell.match(cells[f"{name}: early-stop it."]).groups()]
      got_acc = [float(v) for v in cell.match(cells[f"{name}: test acc. %"]).groups()]
      np.testing.assert_allclose(got_es, [np.mean(es), min(es), max(es)], atol=0.5)
      np.testing.assert_allclose(got_acc, [np.mean(acc), min(acc), max(acc)], atol=0.005)
  assert rounds_seen == {0, 1, 2}


@needs_mnist
def test_initial_weights_are_the_lineage_the_run_resumes_from(workdir):
  """The report's theta_0 is the init_params of the lineage checkpoint the run itself restores."""
  run = analysis.load_run(workdir)
  ckpt = checkpoint.Checkpoints(workdir)
  try:
    _, state, _ = ckpt.latest_round(None)
  finally:
    ckpt.close()
  saved = {masks.path_str(p): np.asarray(x)
           for p, x in jax.tree_util.tree_flatten_with_path(state["init_params"])[0]}
  assert set(saved) == set(run.init_params) and len(saved["fc1/kernel"]) == 2  # both trials
  for key, value in saved.items():
    np.testing.assert_array_equal(run.init_params[key], value, err_msg=key)
  assert not np.array_equal(*run.init_params["fc1/kernel"])  # each trial its own theta_0


@needs_mnist
def test_masks_on_disk_match_the_recorded_densities(workdir):
  run = analysis.load_run(workdir)
  for r in run.rounds:
    m = run.masks(r)
    for layer, d in run.layer_density(r).items():
      assert m[layer].mean() == pytest.approx(d, abs=1e-6)


@needs_mnist
def test_overlaid_runs_are_labelled(workdir):
  a, b = analysis.load_run(workdir, "a"), analysis.load_run(workdir, "b")
  labels = figures.accuracy_figure([a, b]).axes[0].get_legend_handles_labels()[1]
  assert "a: winning ticket" in labels and "b: random reinit" in labels


@pytest.mark.parametrize("args, message", [
    (["--workdir=/nonexistent/ltjax"], "does not exist"),
    ([], "--workdir or --sweep is required"),
    (["--workdir=EMPTY"], "no results.jsonl"),
    (["--workdir=EMPTY", "--label=a", "--label=b"], "one per workdir"),
    (["--workdir=EMPTY", "--bogus"], "bogus"),
])
def test_bad_input_is_one_line_without_traceback(tmp_path, args, message, binaries):
  done = binaries("experiments.report", [a.replace("EMPTY", str(tmp_path)) for a in args])
  assert done.rc != 0
  lines = done.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], done.stderr
  assert not (pathlib.Path(tmp_path) / "report").exists()
