"""Statistics of the records (ltjax.reports.stats) and results/STATS.md generated from them."""

import math
import pathlib

import numpy as np
import pytest

from ltjax.reports import stats, tables

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_interval_is_the_student_t_interval_of_the_mean():
  x = [1.0, 2.0, 3.0, 4.0]
  iv = stats.interval(x)
  half = 3.182446305284263 * np.std(x, ddof=1) / 2  # t(0.975, 3) * s / sqrt(4)
  assert (iv.mean, iv.n) == (2.5, 4)
  assert iv.lo == pytest.approx(2.5 - half) and iv.hi == pytest.approx(2.5 + half)
  assert iv.real and not stats.interval([-1.0, 1.0, 0.5]).real
  one = stats.interval([0.3, math.nan])
  assert one.n == 1 and math.isnan(one.lo) and not one.real


def _recs():
  """2 trials; dense at 0.97/0.98; round 1: ticket +1 pt, reinit (2 draws) -1 pt per trial."""
  recs = []
  for t, dense in enumerate((0.97, 0.98)):
    recs.append({"round": 0, "trial": t, "kind": "ticket", "draw": 0, "density": 1.0,
                 "test_accuracy": dense, "early_stop_step": 900, "steps_trained": 1000})
    recs.append({"round": 1, "trial": t, "kind": "ticket", "draw": 0, "density": 0.8,
                 "test_accuracy": dense + 0.01 + 0.001 * t, "early_stop_step": 500, "steps_trained": 1000})
    for d, delta in enumerate((-0.005, -0.015)):  # averaged per trial: -0.01
      recs.append({"round": 1, "trial": t, "kind": "reinit", "draw": d, "density": 0.8,
                   "test_accuracy": dense + delta, "early_stop_step": 990, "steps_trained": 1000})
  return recs


def test_differences_pair_by_trial_and_average_draws_first():
  [row] = stats.differences(_recs())
  assert row["round"] == 1 and row["density"] == pytest.approx(0.8)
  assert row["ticket-dense"].mean == pytest.approx(0.0105) and row["ticket-dense"].n == 2
  assert row["reinit-dense"].mean == pytest.approx(-0.01) and row["reinit-dense"].n == 2
  assert row["ticket-reinit"].mean == pytest.approx(0.0205)
  assert "random_mask-dense" not in row


def test_truncation_counts_early_stops_in_the_last_five_percent():
  tails = stats.truncation(_recs())
  assert tails == {(0, "ticket"): 0.0, (1, "reinit"): 1.0, (1, "ticket"): 0.0}
  assert stats.early_stop_valid(_recs(), "ticket") and not stats.early_stop_valid(_recs(), "reinit")
  rewound = [dict(r, steps_trained=800) if r["round"] else r for r in _recs()]  # rounds start at 200
  assert stats.truncation(rewound)[(1, "reinit")] == 1.0  # 990 >= 1000 - 40
  # Scratch-B trains 2,000 steps from step 0 beside them: its stop at 1,950 is in its last 5%.
  scratch = {"round": 1, "kind": "scratch", "trial": 0, "draw": 0, "early_stop_step": 1950, "steps_trained": 2000}
  assert stats.truncation(rewound + [scratch])[(1, "scratch")] == 1.0
  assert stats.truncation(rewound + [dict(scratch, early_stop_step=1890)])[(1, "scratch")] == 0.0


def test_instability_per_kind_averages_twins_and_pairs_the_ticket_with_its_controls():
  def rec(kind, trial, barrier, draw=0):
    return {"round": 1, "kind": kind, "trial": trial, "draw": draw, "density": 0.8, "diverged": False,
            "path_error": [0.1, 0.1 + barrier, 0.1], "instability": barrier, "test_accuracy": 0.9,
            "early_stop_step": 50, "steps_trained": 100}
  recs = [rec("ticket", t, 0.01 * t) for t in range(3)]  # the first twin's path, on the partner
  recs += [rec("twin", t, b) for t in range(3) for b in (0.01 * t, 0.01 * t + 0.02)]
  recs += [rec("reinit", t, 0.05) for t in range(3)] + [rec("twin_reinit", t, 0.04 + 0.01 * t) for t in range(3)]
  assert {r["kind"] for r in stats.path_records(recs, "ticket")} == {"twin"}
  (row,) = stats.instability(recs)
  assert row["ticket"].mean == pytest.approx(0.02) and row["reinit"].mean == pytest.approx(0.05)
  assert row["ticket-reinit"].mean == pytest.approx(-0.03) and row["ticket-reinit"].real  # 3 equal differences
  assert "random_mask" not in row and "ticket-random_mask" not in row
  text = tables.section("lmc", [dict(r, round=0) for r in recs[:3]] + recs)
  assert "| round | density | ticket | reinit | ticket-reinit |" in text


def test_committed_stats_are_generated_from_the_committed_records():
  committed = (REPO / "results" / tables.OUT).read_text()
  assert tables.generate(REPO / "results") == committed, (
      "results/STATS.md is stale: python -m experiments.report --results=results")


def test_the_binary_writes_stats_or_refuses_in_one_line(binaries, tmp_path):
  (tmp_path / "run").mkdir()
  (tmp_path / "run" / "results.jsonl").write_text(
      "\n".join(__import__("json").dumps(r) for r in _recs()) + "\n")
  (tmp_path / tables.UNFINISHED / "later").mkdir(parents=True)  # a run in progress: not a result yet
  later = tmp_path / tables.UNFINISHED / "later" / "results.jsonl"
  later.write_text((tmp_path / "run" / "results.jsonl").read_text())
  ran = binaries("experiments.report", [f"--results={tmp_path}"])
  assert ran.rc == 0, ran.stderr
  text = (tmp_path / tables.OUT).read_text()
  assert "## run" in text and "reinit 100% (fails" in text and "later" not in text
  empty = tmp_path / "empty"
  empty.mkdir()
  ran = binaries("experiments.report", [f"--results={empty}"])
  assert ran.rc == 1 and ran.stderr.startswith("error: results: no records")
  ran = binaries("experiments.report", [f"--results={tmp_path / 'nope'}"])
  assert ran.rc != 0 and ran.stderr.count("\n") == 1


def test_one_criterion_against_another_pairs_trials_at_the_nearest_density():
  def recs(acc, density):
    return [{"round": rnd, "trial": t, "kind": "ticket", "draw": 0, "density": d,
             "test_accuracy": a + 0.001 * t} for t in range(3) for rnd, d, a in ((0, 1.0, 0.97), (1, density, acc))]
  table = tables.against_reference([("imp", recs(0.98, 0.50)), ("snip", recs(0.97, 0.51)),
                                    ("far", recs(0.90, 0.30))])
  assert "| snip | 51.0% (vs 50.0%): -1.00 [-1.00, -1.00] * |" in table
  assert "far" not in table  # no IMP round within 5% of 30%
  assert tables.against_reference([("snip", recs(0.97, 0.5))]) == ""
  # Against Frankle et al. 2021's baselines too: the criterion must beat random pruning at init.
  table = tables.against_reference([("random_init", recs(0.95, 0.50)), ("snip", recs(0.97, 0.51))], "random_init")
  assert "random_init's" in table and "| snip | 51.0% (vs 50.0%): +2.00 [+2.00, +2.00] * |" in table


def test_a_comparison_that_links_a_runs_records_compares_against_them_and_lists_them_once(tmp_path):
  def recs(acc, density):
    return [{"round": rnd, "trial": t, "kind": "ticket", "draw": 0, "density": d, "early_stop_step": 100,
             "steps_trained": 1000, "test_accuracy": a + 0.001 * t}
            for t in range(3) for rnd, d, a in ((0, 1.0, 0.97), (1, density, acc))]
  write = lambda path, rs: path.write_text("".join(__import__("json").dumps(r) + "\n" for r in rs))  # noqa: E731
  (tmp_path / "imp_run").mkdir()
  write(tmp_path / "imp_run" / "results.jsonl", recs(0.98, 0.50))
  (tmp_path / "comp").mkdir()
  write(tmp_path / "comp" / "snip.results.jsonl", recs(0.97, 0.51))
  (tmp_path / "comp" / "imp.results.jsonl").symlink_to("../imp_run/results.jsonl")
  assert tables.borrowed(tmp_path) == {"comp/imp": "imp_run"}
  text = tables.generate(tmp_path)
  assert "## comp/imp\n\nThe records of `imp_run` (a link to its file): see its section.\n" in text
  assert text.count("| round | density |") == 2  # imp_run's and snip's tables, not the link's
  assert "| snip | 51.0% (vs 50.0%): -1.00 [-1.00, -1.00] * |" in text
