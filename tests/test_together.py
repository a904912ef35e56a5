"""Sweep points side by side (ltjax.runs.together): one program for every point, each point in its
own workdir with the records, curves and masks of its own run; points that cannot share a
program are refused or run alone."""

import json

import pytest

from ltjax.runs import experiment, together, validation
from tests.conftest import assert_same_run, shared_data_dir, tiny_lottery_config

needs_mnist = pytest.mark.skipif(shared_data_dir() is None, reason="needs the shared MNIST")
QUIET = lambda _: None  # noqa: E731


def _cfg(**overrides):
  return tiny_lottery_config(**{"prune.rounds": 1, "train.steps": 100, "execution.ticket_batch": 1,
                                "controls": ("reinit", "scratch"), **overrides})


@needs_mnist
def test_points_side_by_side_write_what_their_own_runs_write(tmp_path):
  # Point b differs in initializer, scratch rate and seed: another theta_0, data order, reinit
  # draw, shuffle and scoring key (random pruning, scored by the mode's keys split over the trials).
  common = {"prune.score": "random", "controls": ("reinit", "random_mask", "scratch")}
  points = [("a", _cfg(**{"model_kwargs.init": "glorot_normal", "scratch.lr_scale": 1.0, **common})),
            ("b", _cfg(**{"model_kwargs.init": "he_normal", "scratch.lr_scale": 2.0, "seed": 7, **common}))]
  got = together.train_together(points, tmp_path / "together", log=QUIET)
  assert sorted(got) == ["a", "b"] and got["a"] != got["b"]
  # Point b (the second lineages) is its own run, bit for bit.
  experiment.train_and_evaluate(points[1][1], tmp_path / "alone", log=QUIET)
  assert_same_run(tmp_path / "together" / "b", tmp_path / "alone")
  again = together.train_together(points, tmp_path / "together", log=QUIET)  # finished: read back
  assert again == got
  # A point's workdir is a finished run of its own: the lottery path resumes it without training.
  assert experiment.train_and_evaluate(points[1][1], tmp_path / "together" / "b", log=QUIET) == got["b"]


@needs_mnist
def test_scratch_budgets_side_by_side_each_stop_where_their_own_run_does(tmp_path, monkeypatch):
  # Scratch-B (2x) and Scratch-E (1x): the pruned round runs 200 steps; the 1x point's scratch
  # tickets stop at 100, and its workdir is its own run's, records, curves and masks bit for bit,
  # although the run was killed inside the pruned round, just after its mid-round checkpoint, and
  # resumed from it (every point's states in one checkpoint), not from the round's start.
  mid = {"execution.checkpoint_every": 50, "execution.intervals_per_call": 1}
  points = [(f"x{s:g}", _cfg(**{"scratch.steps_scale": s, "trials": 1, **mid})) for s in (2.0, 1.0)]
  assert together.why_not([c for _, c in points]) is None
  save = together.SideBySideMidround._save_midround

  def save_then_die(self, round_index, step, *args):
    save(self, round_index, step, *args)
    if round_index == 1:
      raise KeyboardInterrupt
  monkeypatch.setattr(together.SideBySideMidround, "_save_midround", save_then_die)
  with pytest.raises(KeyboardInterrupt):
    together.train_together(points, tmp_path / "together", log=QUIET)
  monkeypatch.undo()
  logs = []
  got = together.train_together(points, tmp_path / "together", log=logs.append)
  assert "resuming round 1 at step 50" in logs, logs
  assert not list((tmp_path / "together" / "x2" / together.MIDROUND_DIR / "midround").iterdir())
  scratch = {n: [r for r in got[n] if r["kind"] == "scratch"] for n in got}
  assert [r["steps_trained"] for r in scratch["x2"]] == [200] and [r["steps_trained"] for r in scratch["x1"]] == [100]
  experiment.train_and_evaluate(points[1][1], tmp_path / "alone", log=QUIET)
  assert_same_run(tmp_path / "together" / "x1", tmp_path / "alone")


@needs_mnist
def test_rewind_steps_side_by_side_each_start_where_their_own_run_does(tmp_path):
  # The stability study's axis: round 0 saves theta_k at 20 and at 50 (forking each point's twins
  # there); the pruned round runs from step 20, the k = 50 tickets standing still until 50. Each
  # point's workdir is its own run's, records, curves and masks bit for bit.
  points = [(f"k{k}", _cfg(**{"prune.rewind_step": k, "trials": 1, "train.eval_every": 10,
                              "controls": ("reinit", "twin")})) for k in (50, 20)]
  assert together.why_not([c for _, c in points]) is None
  got = together.train_together(points, tmp_path / "together", log=QUIET)
  trained = {n: {r["round"]: r["steps_trained"] for r in got[n] if r["kind"] == "ticket"} for n in got}
  assert trained == {"k50": {0: 100, 1: 50}, "k20": {0: 100, 1: 80}}
  for name, cfg in points:
    experiment.train_and_evaluate(cfg, tmp_path / f"alone_{name}", log=QUIET)
    assert_same_run(tmp_path / "together" / name, tmp_path / f"alone_{name}")


@needs_mnist
def test_the_sweep_binary_puts_learning_rates_side_by_side_on_every_core(binaries, tmp_path):
  import os
  fields = {"trials": 1, "train.steps": 100, "train.eval_every": 50, "prune.rounds": 1, "validation_size": 1000,
            "model_kwargs.width": 0.25}
  args = [f"--workdir={tmp_path}", "--config=lenet_quick", "--sweep.train.lr=1.2e-3,2.4e-3", "--noreport",
          *(f"--set.{k}={v}" for k, v in fields.items())]
  ran = binaries("experiments.sweep", args, env={"LTJAX_DATA_DIR": str(shared_data_dir())}, timeout=300)
  assert ran.rc == 0, ran.stderr[-2000:]
  out = ran.stdout + ran.stderr
  assert "2 points side by side" in out
  if (os.cpu_count() or 1) > 1:  # grouping the points must not start JAX before it picks its devices
    assert "one device" not in out, out[-2000:]
  # The point at another rate (a per-ticket update scale) is its own run up to rounding.
  got = [json.loads(x) for x in (tmp_path / "lr=0.0024" / "results.jsonl").read_text().splitlines()]
  cfg = tiny_lottery_config(**fields, **{"train.lr": 2.4e-3})
  alone = experiment.train_and_evaluate(cfg, tmp_path / "alone", log=QUIET)
  key = lambda r: (r["round"], r["kind"], r["trial"], r["draw"])  # noqa: E731
  assert [key(x) for x in sorted(got, key=key)] == [key(y) for y in sorted(alone, key=key)]
  for x, y in zip(sorted(got, key=key), sorted(alone, key=key)):
    assert x["density"] == pytest.approx(y["density"], abs=1e-3)
    assert x["test_accuracy"] == pytest.approx(y["test_accuracy"], abs=0.02)


def test_only_what_the_ticket_axis_carries_goes_side_by_side():
  a, b = _cfg(), _cfg(**{"train.lr": 2e-3})
  c = _cfg(**{"train.lr": 2e-3, "prune.reset": "none"})
  assert together.why_not([a, _cfg(**{"scratch.steps_scale": 1.0})]) is None  # Scratch-E beside Scratch-B
  assert together.why_not([a, b]) is None and together.why_not([a, _cfg(**{"prune.rewind_step": 50})]) is None
  assert "prune.reset" in together.why_not([a, c]) and together.why_not([a]) == "a single point"
  groups = together.groups([("a", a), ("b", b), ("c", c)])
  assert [[n for n, _ in g] for g in groups] == [["a", "b"], ["c"]]
  with pytest.raises(validation.UsageError, match="differ in prune.reset"):
    together.train_together([("a", a), ("c", c)], "/nonexistent/never-written", log=QUIET)



@needs_mnist
def test_points_that_normalize_their_inputs_differently_share_a_program(tmp_path):
  # The normalization study's points: standardized and [0, 1] inputs. Each ticket standardizes the
  # shared raw batch with its point's statistics; each point is its own run up to rounding.
  points = [(n, _cfg(**{"normalization": n, "controls": ("reinit",), "trials": 1})) for n in ("dataset", "none")]
  assert together.why_not([c for _, c in points]) is None
  got = together.train_together(points, tmp_path / "together", log=QUIET)
  key = lambda r: (r["round"], r["kind"], r["trial"], r["draw"])  # noqa: E731
  for name, cfg in points[1:]:  # the second point's lineages: statistics other than the first's
    alone = experiment.train_and_evaluate(cfg, tmp_path / f"alone_{name}", log=QUIET)
    mine = sorted(got[name], key=key)
    assert [key(x) for x in mine] == [key(y) for y in sorted(alone, key=key)]
    for x, y in zip(mine, sorted(alone, key=key)):
      assert x["density"] == pytest.approx(y["density"], abs=1e-3)
      assert x["val_loss"] == pytest.approx(y["val_loss"], rel=0.05), (name, key(x))
      assert x["test_accuracy"] == pytest.approx(y["test_accuracy"], abs=0.02), (name, key(x))
  # The two normalizations train differently: the statistics reached each ticket.
  assert [r["val_loss"] for r in sorted(got["dataset"], key=key)] != \
      [r["val_loss"] for r in sorted(got["none"], key=key)]
  # A point's workdir holds its own run's state (no per-ticket statistics): the lottery path
  # reads it back as finished, and the points resume side by side from it.
  assert experiment.train_and_evaluate(points[1][1], tmp_path / "together" / "none", log=QUIET) == got["none"]
  assert together.train_together(points, tmp_path / "together", log=QUIET) == got
