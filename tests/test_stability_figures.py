import pathlib

import numpy as np
import pytest

from ltjax.reports import stability_figures, stats
from ltjax.reports.analysis import Run


def _record(kind, trial, rnd, path=None, draw=0):
  out = {"kind": kind, "trial": trial, "round": rnd, "draw": draw, "density": 0.8 ** rnd, "diverged": False}
  if path is not None:
    out.update(path_error=list(path), instability=float(max(path) - (path[0] + path[-1]) / 2))
  return out


def _run(k, old=False, trials=3):
  """Paths as a lottery run with twins writes them: on each twin's row and, for the first twin,
  also on its partner's (`old`: the partner's row only, as records before twins carried paths)."""
  recs = []
  for rnd in (0, 1):
    for t in range(trials):
      for kind, twin, base in (("ticket", "twin", 0.02), ("reinit", "twin_reinit", 0.05)):
        paths = [np.array([base, base + 0.01 * (t + i + 1) + 0.001 * k, base]) for i in range(2)]
        recs.append(_record(kind, t, rnd, paths[0]))
        if kind == "reinit":
          recs.append(_record(kind, t, rnd, draw=1))  # a second draw: no twin, no path
        recs += [_record(twin, t, rnd, None if old else p) for p in paths]
  return Run(pathlib.Path("."), f"rewind_step={k}", {"prune": {"rewind_step": k}}, recs)


def test_each_kind_has_its_own_paths_one_per_twin():
  run = _run(500)
  tickets = stability_figures.stable_records(run, "ticket")
  assert {r["kind"] for r in tickets} == {"twin"} and len(tickets) == 2 * 3 * 2  # rounds x trials x twins
  assert {r["kind"] for r in stability_figures.stable_records(run, "reinit")} == {"twin_reinit"}
  assert stability_figures.stable_records(run, "random_mask") == []
  # Older records: the partner's row holds the path.
  assert {r["kind"] for r in stability_figures.stable_records(_run(0, old=True), "ticket")} == {"ticket"}


def test_a_trials_twins_are_averaged_and_the_band_is_the_interval_over_trials():
  run = _run(0)
  barriers = stability_figures._per_trial(run, "ticket", 1, "instability")
  # trial t's twins peak at +0.01(t+1) and +0.01(t+2): barrier mean 0.01(t+1.5)
  np.testing.assert_allclose(np.ravel(barriers), [0.015, 0.025, 0.035])
  mean, lo, hi = stability_figures._band(barriers)
  iv = stats.interval([0.015, 0.025, 0.035])
  np.testing.assert_allclose([mean[0], lo[0], hi[0]], [iv.mean, iv.lo, iv.hi])
  # One trial has no interval: its band is its mean.
  mean, lo, hi = stability_figures._band(stability_figures._per_trial(_run(0, trials=1), "ticket", 1, "path_error"))
  np.testing.assert_array_equal(lo, mean)
  np.testing.assert_array_equal(hi, mean)


@pytest.mark.parametrize("old", [False, True])
def test_figures_draw_a_row_or_panel_per_kind(old):
  runs = [_run(0, old), _run(500, old)]
  kinds = len(stability_figures._kinds(runs))
  assert kinds == 2  # ticket and reinit, from either layout (older: on the partners' rows)
  assert len(stability_figures.path_figure(runs).axes) == kinds * 2  # x 2 rounds
  assert len(stability_figures.instability_figure(runs).axes) == kinds
  assert stability_figures.instability_figure(runs[:1]) is None  # one k: the path figure says it all
