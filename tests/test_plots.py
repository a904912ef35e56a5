"""The figures of a run's numbers (ltjax.reports.figures) on a small hand-made workdir (no
training): labels, axes, legends, the paper's percent axis, overlays and sweeps."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from ltjax.reports import analysis, cost_figures, figures
from tests.report_workdirs import write_workdir


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


def test_final_accuracy_figure_plots_the_end_of_training_without_the_rule(run):
  # Every early stop at the last step: the rule fails everywhere, which hollows the early-stop
  # accuracy's markers but not the final accuracy's, a measure the rule does not concern.
  cut = [dict(r, early_stop_step=r["steps_trained"], final_test_accuracy=0.9 + 0.01 * r["round"])
         for r in run.records]
  late = analysis.Run(run.workdir, "late", run.config, cut)

  def hollow(fig):
    return [x for x in fig.axes[0].get_lines() if x.get_markerfacecolor() == "white"]
  assert hollow(figures.accuracy_figure([late]))
  fig = figures.final_accuracy_figure([late])
  assert not hollow(fig) and "end of training" in fig.axes[0].get_ylabel()
  dense = [x for x in fig.axes[0].get_lines() if x.get_linestyle() == "--"]
  assert dense and dense[0].get_ydata()[0] == pytest.approx(90.0)
  ticket = next(c for c in fig.axes[0].containers if c.get_label() == "winning ticket")
  rounds = sorted({r["round"] for r in cut if r["kind"] == "ticket"})
  assert list(ticket.lines[0].get_ydata()) == pytest.approx([90.0 + r for r in rounds])


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


def test_percent_ticks_never_crowd():
  levels = [100 * 0.8 ** k for k in range(20)]
  kept = figures._thin(levels)
  assert len(kept) <= 10 and kept[0] == 100


def test_percent_ticks_leave_a_label_between_them_on_a_narrow_panel():
  # the pruning-rate sweep's rounds merged: 10.8% beside 7.87% collided in a third of a figure
  levels = [100, 80, 64.1, 60.1, 51.3, 41.1, 40.1, 36.1, 32.9, 26.3, 21.7, 21.1, 20.2, 16.9, 16.1,
            13.5, 13.1, 10.8, 8.7, 7.87, 7.0, 6.5, 4.75, 4.1, 2.64]
  fig = Figure(figsize=(15, 4))
  ax = fig.subplots(1, 3)[0]
  figures.percent_axis(ax, levels)
  ticks = sorted(ax.xaxis.get_major_locator().tick_values(1, 100), reverse=True)
  width = ax.get_position().width * 15
  gaps = [np.log(a / b) / np.log(100 / 2.64) * width for a, b in zip(ticks, ticks[1:])]
  assert ticks[0] == 100 and len(ticks) >= 5 and min(gaps) >= 0.3


def _point(run, label, i, config=None, records=None):
  """`run` as sweep point i: its accuracies moved by i/1000 (points of identical records are drawn once)."""
  shift = {f: lambda r, f=f: r[f] + i / 1000 for f in ("test_accuracy", "final_test_accuracy")}
  recs = [dict(r, **{f: move(r) for f, move in shift.items() if f in r}) for r in records or run.records]
  return analysis.Run(run.workdir, label, config or run.config, recs)


def test_a_sweep_gets_a_panel_per_kind_and_a_color_per_run(run):
  runs = [_point(run, f"point {i}", i) for i in range(3)]
  fig = figures.accuracy_figure(runs)
  shown = [ax for ax in fig.axes if ax.get_visible()]
  assert [ax.get_title() for ax in shown] == ["winning ticket", "random reinit", "random mask"]
  assert [t.get_text() for t in fig.legends[0].get_texts()] == ["point 0", "point 1", "point 2"]


def test_scratch_of_two_budgets_gets_a_panel_each_and_every_run_a_legend_entry(run):
  # Scratch-B runs beside a Scratch-E run with no other kind: in no panel but its own.
  def scratch(config, scale, only_scratch=False):
    kinds = {"scratch"} if only_scratch else {"ticket", "scratch", "reinit", "random_mask"}
    recs = [dict(r, kind="scratch") if r["kind"] == "reinit" else r for r in run.records]
    return dict(config, scratch={"steps_scale": scale}), [r for r in recs if r["kind"] in kinds]
  runs = [_point(run, f"B {i}", i, *scratch(run.config, 2)) for i in range(2)]
  runs.append(_point(run, "E", 2, *scratch(run.config, 1, only_scratch=True)))
  fig = figures.final_accuracy_figure(runs)
  titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
  assert titles == ["winning ticket", "random mask", "Scratch-B (2x steps)", "Scratch-E (same steps)"]
  panel = {ax.get_title(): ax for ax in fig.axes}
  assert [c.get_label() for c in panel["Scratch-B (2x steps)"].containers] == ["B 0", "B 1"]
  assert [c.get_label() for c in panel["Scratch-E (same steps)"].containers] == ["E"]
  assert [t.get_text() for t in fig.legends[0].get_texts()] == ["B 0", "B 1", "E"]


def test_identical_records_of_two_sets_are_drawn_once_and_said_so(run):
  # liu_e's tickets are liu's record for record: one line, not one hiding the other.
  runs = [_point(run, "lr=0.1", 0), _point(run, "lr=0.01", 1), _point(run, "again_lr=0.1", 0)]
  fig = figures.accuracy_figure(runs)
  ticket = next(ax for ax in fig.axes if ax.get_title() == "winning ticket")
  assert [c.get_label() for c in ticket.containers] == ["lr=0.1", "lr=0.01"]
  assert "identical records, drawn once: again_lr=0.1's winning ticket = lr=0.1's" in fig._suptitle.get_text()
  assert [t.get_text() for t in fig.legends[0].get_texts()] == ["lr=0.1", "lr=0.01"]  # drawn nowhere else
  assert "identical" not in figures.accuracy_figure(runs[:2] + [_point(run, "x", 2)])._suptitle.get_text()


def test_a_scratch_e_run_made_from_a_runs_masks_takes_that_runs_color(run):
  # liu's scratch_e_lr=0.1 trains lr=0.1's masks: its Scratch-E line reads against lr=0.1's, so one color.
  def scratch_e(i):
    recs = [dict(r, kind="scratch") if r["kind"] == "reinit" else r for r in run.records if r["kind"] != "random_mask"]
    return _point(run, f"scratch_e {i}", i, dict(run.config, scratch={"steps_scale": 1}), recs)
  runs = [_point(run, "lr=0.1", 0), _point(run, "lr=0.01", 1), scratch_e(0), scratch_e(1)]
  fig = figures.accuracy_figure(runs)
  color = {c.get_label(): c.lines[0].get_color() for ax in fig.axes for c in ax.containers}
  assert color["scratch_e 0"] == color["lr=0.1"] and color["scratch_e 1"] == color["lr=0.01"]
  assert color["lr=0.1"] != color["lr=0.01"]
  other = figures.accuracy_figure(runs[:2] + [_point(run, "x", 2)])  # no shared tickets: a color each
  assert len({c.lines[0].get_color() for ax in other.axes for c in ax.containers}) == 3


def test_a_set_of_runs_keeps_one_color_per_run_across_its_figures(run):
  names = [f"c{i}" for i in range(8)]  # a criteria set: IMP and 7 others, more than the old 6 colors
  runs = [_point(run, name, i) for i, name in enumerate(names)]
  panel = next(ax for ax in figures.accuracy_figure(runs).axes if ax.get_title() == "winning ticket")
  points = [{"criterion": name, "round": 1, "density": 0.5, "finding_model_steps": 10.0 * (i + 1),
             "test_accuracy": [0.95, 0.96]} for i, name in enumerate(names)]
  cost = cost_figures.cost_figure(points).axes[0]
  accuracy_colors = [c.lines[0].get_color() for c in panel.containers]
  cost_colors = [c.lines[0].get_color() for c in cost.containers]
  assert accuracy_colors == cost_colors and len(set(cost_colors)) == len(names)  # categorical, distinct


def test_one_collapsed_mean_does_not_flatten_the_accuracy_axis():
  fig = figures.Figure()
  ax = fig.subplots()
  x = np.array([50.0, 10.0])
  plotted = [(x, np.array([98.0, 97.5]), np.array([98.2, 97.8])),
             (x, np.array([97.9, 60.0]), np.array([98.1, 95.0]))]  # one trial collapsed at 10%
  figures.zoom(ax, plotted, 8.0)
  lo, hi = ax.get_ylim()
  assert lo == pytest.approx(90.0) and 98.2 <= hi <= 100.0
  assert [t.get_text() for t in ax.texts] == ["60.0"]  # the off-axis mean, labelled at the edge
  calm = figures.Figure().subplots()
  figures.zoom(calm, plotted[:1], 8.0)
  assert not calm.texts and calm.get_ylim() != (90.0, pytest.approx(100.0))


def test_the_early_stop_axis_never_reaches_below_step_0(run):
  # two trials far apart: the t-interval of their mean reaches far below 0; no stop can
  spread = [dict(r, early_stop_step=100 if r["trial"] == 0 else r["steps_trained"]) for r in run.records]
  fig = figures.early_stop_figure([analysis.Run(run.workdir, "spread", run.config, spread)])
  assert all(ax.get_ylim()[0] == 0 for ax in fig.axes)
