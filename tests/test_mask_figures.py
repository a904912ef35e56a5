"""The masks' figures (ltjax.reports.mask_figures) on hand-made workdirs: survivors' initial values
read from a real round checkpoint, mask overlap, per-unit and input connectivity, and the skips."""

import json

import numpy as np
import pytest

from ltjax.reports import analysis, mask_figures
from tests.report_workdirs import (
  ROUNDS,
  TRIALS,
  checkpointed_run,
  handmade_run,
  write_checkpoint,
  write_workdir,
)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  return handmade_run(tmp_path_factory.mktemp("handmade"))


@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory):
  return checkpointed_run(tmp_path_factory.mktemp("checkpointed"))


def _labels(ax):
  return ax.get_legend_handles_labels()[1]


def test_init_values_figure_is_skipped_without_checkpoints(run):
  assert run.init_params is None and mask_figures.init_values_figure(run, [1, 3]) is None


def test_init_values_figure_draws_the_checkpointed_theta_0(checkpointed):
  run, init = checkpointed
  fig = mask_figures.init_values_figure(run, [1, 3])
  assert len(fig.axes) == 3  # one panel per prunable layer
  assert all("θ₀" in ax.get_xlabel() for ax in fig.axes)
  assert any("all weights" in x for x in _labels(fig.axes[0]))
  # The gray histogram, drawn first, spans every weight's theta_0 (not the start weights saved
  # beside it in the lineage, which are theta_0 + 1 here).
  assert fig.axes[0].patches[0].get_x() == pytest.approx(init["fc1/kernel"].min())


def test_overlap_rows_and_figure(run):
  rows, _ = mask_figures.mask_rows(run)
  assert {x["round"] for x in rows} == set(range(ROUNDS))
  first = [x for x in rows if x["round"] == 0]
  assert all(x["mean"] == 1.0 and x["chance"] == 1.0 for x in first)  # dense masks are identical
  assert all(x["pairs"] == TRIALS * (TRIALS - 1) // 2 for x in rows)
  fig = mask_figures.overlap_figure(run, rows)
  assert "Jaccard" in fig.axes[0].get_ylabel()
  assert any("chance" in x for x in _labels(fig.axes[0]))
  assert mask_figures.overlap_figure(run, first) is None  # dense masks only: nothing to show


def test_connectivity_figure_pairs_dense_layers(run):
  fig = mask_figures.connectivity_figure(run, ROUNDS - 1)
  assert len(fig.axes) == 4  # fc1 and fc2 units, incoming and outgoing
  assert "incoming" in fig.axes[0].get_xlabel() and "outgoing" in fig.axes[1].get_xlabel()
  _, rows = mask_figures.mask_rows(run)
  assert {x["layer"] for x in rows} == {"fc1/kernel", "fc2/kernel"}
  assert all(x["dead"] <= x["units"] for x in rows)


def test_count_bins_are_whole_numbers():
  bins = mask_figures._count_bins(np.array([0, 3]), np.array([7]))
  np.testing.assert_array_equal(bins, np.arange(-0.5, 8.5))


def test_input_connectivity_needs_a_dense_first_layer_on_known_images(run, tmp_path):
  assert mask_figures.input_connectivity_figure(run, [1, 3]) is None  # dataset 'handmade'
  shapes = {"fc1/kernel": (64, 6), "fc2/kernel": (6, 4), "out/kernel": (4, 3)}
  path = write_workdir(tmp_path, shapes=shapes, rates=dict.fromkeys(shapes, 0.2))
  config = json.loads((path / "config.json").read_text())
  config["config"]["dataset"] = "synthetic"  # 8x8x1 images: fc1 reads 64 pixels
  (path / "config.json").write_text(json.dumps(config))
  fig = mask_figures.input_connectivity_figure(analysis.load_run(path), [1, 3])
  images = [ax for ax in fig.axes if ax.get_images()]
  assert len(images) == 2 and images[0].get_images()[0].get_array().shape == (8, 8)


def test_deep_nets_wrap_and_keep_every_layer(tmp_path):
  names = [f"fc{i}" for i in range(1, 11)] + ["out"]
  shapes = {f"{n}/kernel": (5, 5) for n in names}
  path = write_workdir(tmp_path, shapes=shapes, rates=dict.fromkeys(shapes, 0.2))
  rng = np.random.default_rng(0)
  write_checkpoint(path, {k: rng.normal(size=(TRIALS,) + s).astype(np.float32)
                          for k, s in shapes.items()})
  deep = analysis.load_run(path)
  assert deep.layers[1] == "fc2/kernel" and deep.layers[-1] == "out/kernel"
  fig = mask_figures.init_values_figure(deep, [1, 3])
  assert sum(ax.get_visible() for ax in fig.axes) == 11  # 3 rows of 4, one left empty
  width, height = fig.get_size_inches()
  assert width <= 20 and height > 10
  overlap = mask_figures.overlap_figure(deep, mask_figures.mask_rows(deep)[0])
  assert len([x for x in _labels(overlap.axes[0]) if "chance" not in x]) == 11
  assert len(mask_figures.connectivity_figure(deep, 3).axes) == 2 * 10
