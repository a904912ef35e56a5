"""Figures on a small hand-made workdir (no training): labels, axes, legends, files, skips."""

import json

import matplotlib.image
import numpy as np
import pytest

from ltjax.report import analysis, figures

SHAPES = {"fc1/kernel": (12, 6), "fc1/bias": (6,), "fc2/kernel": (6, 4), "fc2/bias": (4,),
          "out/kernel": (4, 3), "out/bias": (3,)}
RATES = {"fc1/kernel": 0.2, "fc2/kernel": 0.2, "out/kernel": 0.1}
TRIALS, ROUNDS, EVALS = 3, 4, 12


def write_workdir(path, trials=TRIALS, shapes=SHAPES, rates=RATES):
  """A workdir as experiment.train_and_evaluate lays it out, with nested IMP-like masks."""
  rng = np.random.default_rng(0)
  masks = {k: np.ones((trials,) + s, bool) for k, s in shapes.items()}
  recs = []
  for r in range(ROUNDS):
    if r:
      for k, rate in rates.items():  # prune a share of each trial's survivors at random
        for t in range(trials):
          alive = np.flatnonzero(masks[k][t])
          drop = rng.choice(alive, int(round(rate * alive.size)), replace=False)
          masks[k][t].flat[drop] = False
    layer_density = {k: masks[k].mean(axis=tuple(range(1, masks[k].ndim))) for k in rates}
    density = sum(masks[k].sum(axis=(1, 2)) for k in rates) / sum(np.prod(shapes[k]) for k in rates)
    kinds = ("ticket",) if r == 0 else ("ticket", "reinit", "random_mask")
    ids = [(t, i, 0) for i, _ in enumerate(kinds) for t in range(trials)]
    for t, i, _ in ids:
      recs.append({"round": r, "trial": t, "kind": kinds[i], "draw": 0, "seed": 0,
                   "density": float(density[t]),
                   "layer_density": {k: float(v[t]) for k, v in layer_density.items()},
                   "early_stop_step": int(100 * rng.integers(2, EVALS + 1)), "val_loss": 0.1,
                   "val_accuracy": 0.9, "test_accuracy": float(0.9 + 0.01 * rng.random()),
                   "final_test_accuracy": 0.9, "diverged": False, "steps_trained": 100 * EVALS,
                   "wall_seconds": 1.0})
    k = len(ids)
    step = np.repeat(100 * np.arange(1, EVALS + 1)[:, None], k, axis=1)
    acc = 1 - 0.5 * np.exp(-step / 300) - 0.01 * rng.random((EVALS, k))
    (path / "curves").mkdir(parents=True, exist_ok=True)
    np.savez(path / "curves" / f"round_{r:02d}.npz", ids=np.array(ids), step=step,
             kinds=np.array(["ticket", "reinit", "random_mask"]), train_loss=1 - acc,
             val_loss=1 - acc, val_accuracy=acc)
    (path / "masks").mkdir(exist_ok=True)
    np.savez(path / "masks" / f"round_{r:02d}.npz",
             **{k: np.packbits(m, axis=-1) for k, m in masks.items()},
             **{f"shape:{k}": np.asarray(s) for k, s in shapes.items()})
  (path / "results.jsonl").write_text("".join(json.dumps(x) + "\n" for x in recs))
  # A dataset whose initial weights cannot be rebuilt: the init figure is skipped, not faked.
  (path / "config.json").write_text(json.dumps({"config": {
      "model": "lenet_300_100", "dataset": "handmade", "name": "handmade", "trials": trials,
      "seed": 0, "controls": ["reinit", "random_mask"], "reinit_draws": 1,
      "train": {"optimizer": "adam", "lr": 1e-3, "batch_size": 60, "steps": 100 * EVALS,
                "eval_every": 100},
      "prune": {"mode": "iterative", "rounds": ROUNDS - 1, "fc_rate": 0.2, "output_rate": 0.1,
                "conv_rate": 0.0, "scope": "layerwise", "score": "magnitude", "rewind_step": 0}}}))
  return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  return analysis.load_run(write_workdir(tmp_path_factory.mktemp("handmade")), label="handmade")


def _labels(ax):
  return ax.get_legend_handles_labels()[1]


def test_accuracy_figure_follows_the_paper(run):
  fig = figures.accuracy_figure([run])
  ax = fig.axes[0]
  assert ax.get_xscale() == "log"
  left, right = ax.get_xlim()
  assert left > 100 > right > 0  # reversed: 100% on the left
  assert "percent" in ax.get_xlabel() and "%" in ax.get_ylabel() and ax.get_title()
  labels = _labels(ax)
  assert {"winning ticket", "random reinit", "random mask"} <= set(labels)
  assert any("dense" in x for x in labels)
  dense = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
  expected = 100 * np.mean([x["test_accuracy"] for x in run.records if x["round"] == 0])
  assert dense and dense[0].get_ydata()[0] == pytest.approx(expected)


def test_overlay_labels_each_run(run):
  other = analysis.Run(run.workdir, "other", run.config, run.records)
  labels = _labels(figures.early_stop_figure([run, other]).axes[0])
  assert "handmade: winning ticket" in labels and "other: random mask" in labels
  assert sum("dense" in x for x in labels) == 2


def test_curves_figure_has_a_panel_per_kind(run):
  fig = figures.curves_figure(run, [0, 3])
  assert [ax.get_title() for ax in fig.axes] == ["winning ticket", "random reinit", "random mask"]
  for ax in fig.axes:
    assert "iteration" in ax.get_xlabel()
    assert any("round 0" in x for x in _labels(ax)) and any("round 3" in x for x in _labels(ax))


def test_init_values_figure_needs_rebuildable_weights(run):
  assert run.init_params is None and figures.init_values_figure(run, [1, 3]) is None
  rng = np.random.default_rng(0)
  with_init = analysis.Run(run.workdir, run.label, run.config, run.records)
  with_init.__dict__["init_params"] = {k: rng.normal(size=(TRIALS,) + s) for k, s in SHAPES.items()}
  fig = figures.init_values_figure(with_init, [1, 3])
  assert len(fig.axes) == 3  # one panel per prunable layer
  assert all("θ₀" in ax.get_xlabel() for ax in fig.axes)
  assert any("all weights" in x for x in _labels(fig.axes[0]))


def test_overlap_rows_and_figure(run):
  rows, _ = figures.mask_rows(run)
  assert {x["round"] for x in rows} == set(range(ROUNDS))
  first = [x for x in rows if x["round"] == 0]
  assert all(x["mean"] == 1.0 and x["chance"] == 1.0 for x in first)  # dense masks are identical
  assert all(x["pairs"] == TRIALS * (TRIALS - 1) // 2 for x in rows)
  fig = figures.overlap_figure(run, rows)
  assert "Jaccard" in fig.axes[0].get_ylabel()
  assert any("chance" in x for x in _labels(fig.axes[0]))


def test_connectivity_figure_pairs_dense_layers(run):
  fig = figures.connectivity_figure(run, ROUNDS - 1)
  assert len(fig.axes) == 4  # fc1 and fc2 units, incoming and outgoing
  assert "incoming" in fig.axes[0].get_xlabel() and "outgoing" in fig.axes[1].get_xlabel()
  _, rows = figures.mask_rows(run)
  assert {x["layer"] for x in rows} == {"fc1/kernel", "fc2/kernel"}
  assert all(x["dead"] <= x["units"] for x in rows)


def test_percent_ticks_never_crowd():
  levels = [100 * 0.8 ** k for k in range(20)]
  kept = figures._thin(levels)
  assert len(kept) <= 10 and kept[0] == 100


def test_count_bins_are_whole_numbers():
  bins = figures._count_bins(np.array([0, 3]), np.array([7]))
  np.testing.assert_array_equal(bins, np.arange(-0.5, 8.5))


def test_write_report_renders_and_notes_skips(run, tmp_path):
  summary = figures.write_report([run], tmp_path)
  text = summary.read_text()
  for name in ("accuracy", "early_stop", "curves", "mask_overlap", "connectivity"):
    assert f"]({name}.png)" in text
    image = matplotlib.image.imread(tmp_path / f"{name}.png")
    assert image.shape[0] > 200 and image.shape[1] > 200
  assert not (tmp_path / "init_values.png").exists()
  assert "initial-value histograms skipped" in text


def test_criteria_report_draws_the_cost_and_overlays_the_runs_on_request(run, tmp_path):
  points = [{"criterion": "imp", "round": 1, "density": 0.8, "finding_model_steps": 100.0,
             "test_accuracy": [0.95, 0.96]},
            {"criterion": "snip", "round": 1, "density": 0.8, "finding_model_steps": 0.0,
             "test_accuracy": [0.93, 0.94]}]
  cost = figures.write_criteria_report([run], points, tmp_path / "both")
  assert matplotlib.image.imread(cost).shape[0] > 200
  assert json.loads((tmp_path / "both" / "cost.json").read_text()) == points
  assert "](accuracy.png)" in (tmp_path / "both" / "summary.md").read_text()
  figures.write_criteria_report([], points, tmp_path / "cost_only", overlaid=False)
  assert sorted(p.name for p in (tmp_path / "cost_only").iterdir()) == ["cost.json", "cost.png"]


def test_deep_nets_wrap_and_keep_every_layer(tmp_path):
  names = [f"fc{i}" for i in range(1, 11)] + ["out"]
  shapes = {f"{n}/kernel": (5, 5) for n in names}
  deep = analysis.load_run(write_workdir(tmp_path, shapes=shapes, rates=dict.fromkeys(shapes, 0.2)))
  assert deep.layers[1] == "fc2/kernel" and deep.layers[-1] == "out/kernel"
  rng = np.random.default_rng(0)
  deep.__dict__["init_params"] = {k: rng.normal(size=(TRIALS,) + s) for k, s in shapes.items()}
  fig = figures.init_values_figure(deep, [1, 3])
  assert sum(ax.get_visible() for ax in fig.axes) == 11  # 3 rows of 4, one left empty
  width, height = fig.get_size_inches()
  assert width <= 20 and height > 10
  overlap = figures.overlap_figure(deep, figures.mask_rows(deep)[0])
  assert len([x for x in _labels(overlap.axes[0]) if "chance" not in x]) == 11
  assert len(figures.connectivity_figure(deep, 3).axes) == 2 * 10


def test_a_sweep_gets_a_panel_per_kind_and_a_color_per_run(run):
  runs = [analysis.Run(run.workdir, f"point {i}", run.config, run.records) for i in range(3)]
  fig = figures.accuracy_figure(runs)
  shown = [ax for ax in fig.axes if ax.get_visible()]
  assert [ax.get_title() for ax in shown] == ["winning ticket", "random reinit", "random mask"]
  assert [t.get_text() for t in fig.legends[0].get_texts()] == ["point 0", "point 1", "point 2"]


def test_config_lines_say_how_each_mode_found_its_masks(tmp_path):
  (tmp_path / "results.jsonl").write_text(json.dumps({"round": 0, "trial": 0, "kind": "ticket",
                                                      "density": 1.0, "layer_density": {}}) + "\n")
  prune = {"mode": "early_bird", "densities": [0.5, 0.2], "scope": "layerwise",
           "early_bird_threshold": 0.1, "early_bird_patience": 5}
  (tmp_path / "config.json").write_text(json.dumps({"config": {"prune": prune, "train": {"steps": 100}}}))
  lines = figures.config_lines(analysis.load_run(tmp_path))
  pruning = next(l for l in lines if l.startswith("- pruning:"))
  assert "early-bird" in pruning and "< 0.1 for 5 checks" in pruning and "0.5, 0.2" in pruning
  assert any("rounds finished: 1 of 3" in l for l in lines)
