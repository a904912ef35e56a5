"""The cost figure of a criteria comparison (ltjax.reports.cost_figures): a log cost axis, criteria
of about one cost set side by side, unmeasured costs named."""

import numpy as np
import pytest

from ltjax.reports import cost_figures


def test_cost_figure_puts_each_criterion_on_a_log_cost_axis():
  points = [{"criterion": "imp", "round": r, "density": 0.8 ** r, "finding_model_steps": 100.0 * r,
             "test_accuracy": [0.95, 0.96]} for r in (1, 2)]
  points.append({"criterion": "snip", "round": 1, "density": 0.8, "finding_model_steps": 0.0,
                 "test_accuracy": [0.93, 0.94]})
  points.append({"criterion": "synflow", "round": 1, "density": 0.8, "finding_model_steps": 0.0,
                 "scoring_steps": 350.0, "test_accuracy": [0.92, 0.94]})
  ax = cost_figures.cost_figure(points).axes[0]
  assert ax.get_xscale() == "log" and "model-steps" in ax.get_xlabel() and "scoring" in ax.get_xlabel()
  assert ax.get_legend_handles_labels()[1] == ["imp", "snip (cost not measured: at 1)", "synflow"]
  snip = ax.containers[1].lines[0]  # no cost measured: plotted at 1, not at 0 (off a log axis)
  assert snip.get_xdata()[0] == 1 and snip.get_ydata()[0] == pytest.approx(93.5)
  assert ax.containers[2].lines[0].get_xdata()[0] == 350.0  # its scoring, in training steps


def test_criteria_of_about_one_cost_are_set_side_by_side_in_order_of_cost():
  # The at-init criteria of the 20K comparison: 5.0-6.9 training-step equivalents each.
  cost = {"magnitude_init": 5.03, "snip": 5.07, "grasp": 5.66, "random_init": 6.94, "synflow": 303.66}
  points = [{"criterion": name, "round": r, "density": 0.8 ** r, "finding_model_steps": 0.0,
             "scoring_steps": c, "test_accuracy": [0.95, 0.96]} for name, c in cost.items() for r in (1, 2)]
  ax = cost_figures.cost_figure(points).axes[0]
  x = {c.get_label(): c.lines[0].get_xdata() for c in ax.containers}
  assert all(len(set(v)) == 1 for v in x.values())  # one cost per criterion, moved as a whole
  order = sorted(cost, key=cost.get)
  placed = [x[name][0] for name in order]
  assert np.all(np.diff(placed) > 0) and np.min(np.asarray(placed[1:]) / placed[:-1]) > 1.1
  assert x["synflow"][0] == cost["synflow"]  # far from the others: where it is
  assert 4.0 < placed[0] < cost["magnitude_init"] and cost["random_init"] <= x["random_init"][0] < 8.0  # moved little
  assert "side by side" in ax.get_title()
  alone = [p for p in points if p["criterion"] in ("snip", "synflow")]
  assert "side by side" not in cost_figures.cost_figure(alone).axes[0].get_title()
