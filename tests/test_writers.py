"""The workdir's writers behind the sink protocol, fed by hand (no training): what each writes,
and the order the workdir sink calls them in, which is what makes a kill at any moment safe."""

import json
import types

import numpy as np
import pytest

from ltjax import (
  configs,
  lineup,
  lottery,  # noqa: F401 -- registers the prune modes that `lineup` looks up
)
from ltjax.core import tickets
from ltjax.engine import early_stop
from ltjax.runs import results, writers
from tests.conftest import FakeClock
from tests.test_tensorboard import run_scalars


def _cfg(**overrides):
  cfg = configs.get("lenet_quick")
  cfg.trials, cfg.prune.rounds, cfg.train.steps = 2, 1, 200
  cfg.controls = ("reinit",)
  for key, value in overrides.items():
    node, *path = (cfg, *key.split("."))
    for p in path[:-1]:
      node = node[p]
    node[path[-1]] = value
  return cfg


def _setup(cfg, skips_idle=True):
  """What the writers read of a `lottery.Setup`: the config, points side by side (none), and
  whether idle tickets skip their steps (one at a time) or are stepped and discarded (vmapped)."""
  return types.SimpleNamespace(cfg=cfg, points=None, trainer=types.SimpleNamespace(skips_idle=skips_idle))


def _curves(steps, k):
  step = np.repeat(np.asarray(steps, np.int32)[:, None], k, axis=1)
  loss = (1.0 / step).astype(np.float32)
  return early_stop.Curves(step=step, train_loss=loss, val_loss=loss, val_accuracy=1 - loss)


def _result(cfg, r):
  """A round's result as `lottery.train_round` hands it over: host numpy, one row per ticket."""
  ids = lineup.lineup(cfg, r)
  k = len(ids)
  mask = {"fc": {"kernel": np.arange(k * 6 * 10).reshape(k, 6, 10) % 3 > 0}}
  return types.SimpleNamespace(
      round=r, ids=ids, curves=_curves([100, 200], k), early_stop_step=np.full(k, 100),
      val_loss=np.full(k, 0.5), val_accuracy=np.full(k, 0.9), test_accuracy=np.full(k, 0.8),
      final_test_accuracy=np.full(k, 0.85), diverged=np.zeros(k, bool), density=np.full(k, 0.8),
      finding_steps=np.zeros(k, int), layer_density={"fc/kernel": np.full(k, 0.8)},
      final_params={"fc": {"kernel": np.ones((k, 6, 10), np.float32)}}, masks=mask,
      steps_trained=np.full(k, 200), path_error=np.full((k, 3), np.nan), seconds=1.25)


class _Checkpoints:
  """Stands in for `checkpoint.Checkpoints`: records each save and the workdir as it stood then."""

  def __init__(self, workdir=None):
    self.workdir, self.saves = workdir, []

  def _files(self):
    return sorted(str(p.relative_to(self.workdir)) for p in self.workdir.rglob("*")
                  if p.is_file() and "tensorboard" not in p.parts) if self.workdir else []

  def save_midround(self, step, tree, meta):
    self.saves.append(("midround", step, meta["round"], self._files()))

  def save_round(self, next_round, tree, meta, trained):
    self.saves.append(("round", next_round, meta, self._files()))


class _Recorder(writers.Sink):
  def __init__(self, name, calls):
    self.name, self.calls = name, calls

  def progress(self, round_index, step, snapshot, curves):
    self.calls.append((self.name, "progress", step))

  def round_done(self, result, lineage):
    self.calls.append((self.name, "round_done", result))


def test_fan_out_calls_every_sink_in_order_and_closes_those_that_can():
  calls = []

  class Bare:  # the protocol alone, no close
    def progress(self, *args):
      calls.append(("bare", "progress", args[1]))

    def round_done(self, result, lineage):
      calls.append(("bare", "round_done", result))

  sink = writers.FanOut(_Recorder("a", calls), Bare(), _Recorder("b", calls))
  sink.progress(0, 10, None, None)
  sink.round_done("r", None)
  sink.close()
  assert calls == [("a", "progress", 10), ("bare", "progress", 10), ("b", "progress", 10),
                   ("a", "round_done", "r"), ("bare", "round_done", "r"), ("b", "round_done", "r")]


def _lineage(round_index, trials=2):
  params = {"fc": {"kernel": np.ones((trials, 3, 2), np.float32)}}
  mask = {"fc": {"kernel": np.ones((trials, 3, 2), bool)}}
  return lineup.Lineage(round=round_index, init_params=params, init_model_state={}, start_params=params,
                        start_model_state={}, mask=mask, inverted_mask=mask,
                        found_after=np.zeros(trials, np.int32), dense_params=params)


def test_each_rounds_files_are_on_disk_before_its_checkpoint(tmp_path):
  cfg = _cfg()
  ckpt, logs = _Checkpoints(tmp_path), []
  sink = writers.WorkdirSink(tmp_path, _setup(cfg), ckpt, logs.append)
  for r in range(lineup.num_rounds(cfg)):
    result = _result(cfg, r)
    sink.progress(r, 200, None, result.curves)
    sink.round_done(result, _lineage(r + 1))
  sink.close()
  assert [s[:3] for s in ckpt.saves] == [("round", 1, {"round": 1}), ("round", 2, {"round": 2})]
  assert ckpt.saves[0][3] == ["curves/round_00.npz", "lineage.npz", "masks/round_00.npz", "results.csv",
                              "results.jsonl"]
  assert ckpt.saves[1][3] == ["curves/round_00.npz", "curves/round_01.npz", "lineage.npz",
                              "lineage.previous.npz", "masks/round_00.npz", "masks/round_01.npz",
                              "results.csv", "results.jsonl"]
  recs = results.read(tmp_path)
  assert [(x["round"], x["kind"]) for x in recs] == [(0, "ticket")] * 2 + [
      (1, t.kind) for t in lineup.lineup(cfg, 1)]
  assert "round 1 done in 1.2s" in logs[-1] and "reinit" in logs[-1]
  assert sorted(p.name for p in (tmp_path / "tensorboard").iterdir()) == [
      "reinit_trial0_draw0", "reinit_trial1_draw0", "ticket_trial0", "ticket_trial1"]
  assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_curves_and_masks_files_hold_the_round(tmp_path):
  cfg = _cfg()
  result = _result(cfg, 1)
  writers.CurvesWriter(tmp_path).round_done(result, None)
  curves = np.load(tmp_path / "curves" / "round_01.npz")
  kinds = list(curves["kinds"])
  assert kinds == list(tickets.KINDS)
  assert [(t, kinds[k], d) for t, k, d in curves["ids"].tolist()] == [
      (t.trial, t.kind, t.draw) for t in result.ids]
  np.testing.assert_array_equal(curves["val_loss"], result.curves.val_loss)
  np.testing.assert_array_equal(curves["step"], result.curves.step)
  rows = [i for i, t in enumerate(result.ids) if t.kind == tickets.TICKET]
  masks = results.unpack_masks(dict(np.load(tmp_path / "masks" / "round_01.npz")))
  np.testing.assert_array_equal(masks["fc/kernel"], result.masks["fc"]["kernel"][rows])


def test_records_of_a_rerun_round_replace_the_earlier_copy(tmp_path):
  cfg = _cfg()
  w = writers.RecordsWriter(tmp_path, seed=7)
  for r in (0, 1, 1):
    w.round_done(_result(cfg, r), None)
  recs = [json.loads(line) for line in (tmp_path / results.RESULTS).read_text().splitlines()]
  assert [x["round"] for x in recs] == [0, 0] + [1] * len(lineup.lineup(cfg, 1))
  assert {x["seed"] for x in recs} == {7}
  assert (tmp_path / results.RESULTS_CSV).read_bytes() == results.to_csv(recs).encode()


def test_mid_round_checkpoints_every_n_steps_but_not_where_they_cannot_resume():
  cfg = _cfg(**{"execution.checkpoint_every": 50, "prune.rewind_step": 20})
  ckpt = _Checkpoints()
  w = writers.CheckpointWriter(ckpt, cfg)
  snap = lambda: ({"w": np.zeros(2)}, {"best": np.ones(2)})  # noqa: E731
  curves = _curves([50], 2)
  for step in (40, 80, 120, 200):  # round 0 of a rewinding run restarts: never saved mid-round
    w.progress(0, step, snap, curves)
  w.round_done(_result(cfg, 0), types.SimpleNamespace(round=1))
  for step in (40, 80, 120, 160, 200):  # the last step is the round's own checkpoint
    w.progress(1, step, snap, curves)
  assert [s[:3] for s in ckpt.saves] == [("round", 1, {"round": 1}), ("midround", 80, 1),
                                         ("midround", 160, 1)]


def test_mid_round_checkpoints_after_so_many_minutes_whatever_the_step():
  # The default: a killed run loses at most `checkpoint_minutes` of training, not a round.
  cfg = _cfg(**{"execution.checkpoint_minutes": 10.0})
  ckpt, clock, asked = _Checkpoints(), FakeClock(), []
  w = writers.CheckpointWriter(ckpt, cfg, clock=clock, agree=lambda due: asked.append(due) or due)
  snap = lambda: ({"w": np.zeros(2)}, {"best": np.ones(2)})  # noqa: E731
  for step, minutes in ((20, 4), (40, 7), (60, 4), (80, 6)):
    clock.now += 60.0 * minutes
    w.progress(0, step, snap, _curves([step], 2))
  clock.now += 60.0 * 30
  w.round_done(_result(cfg, 0), types.SimpleNamespace(round=1))  # restarts the count
  clock.now += 60.0 * 9
  w.progress(1, 20, snap, _curves([20], 2))
  assert [s[:3] for s in ckpt.saves] == [("midround", 40, 0), ("midround", 80, 0), ("round", 1, {"round": 1})]
  assert asked == [False, True, False, True, False]


def test_processes_save_together_when_process_zero_says_so():
  # Each process asks with its own clock; the answer (process 0's) decides, so no process waits in
  # a save that another skipped.
  cfg = _cfg(**{"execution.checkpoint_minutes": 1.0})
  snap = lambda: ({"w": np.zeros(2)}, {"best": np.ones(2)})  # noqa: E731
  for answer, saved in ((True, [("midround", 20)]), (False, [])):
    ckpt, clock = _Checkpoints(), FakeClock()
    w = writers.CheckpointWriter(ckpt, cfg, clock=clock, agree=lambda due: answer)
    w.progress(0, 20, snap, _curves([20], 2))  # not due on this process's clock
    assert [s[:2] for s in ckpt.saves] == saved
  assert writers.CheckpointWriter(_Checkpoints(), cfg).agree(True) is True  # one process: its own


def test_another_process_only_takes_part_in_checkpoints(tmp_path):
  cfg = _cfg(**{"execution.checkpoint_every": 100})
  ckpt, logs = _Checkpoints(tmp_path), []
  sink = writers.WorkdirSink(tmp_path, _setup(cfg), ckpt, logs.append,
                             writer=False)
  result = _result(cfg, 0)
  sink.progress(0, 100, lambda: ({}, {}), result.curves)
  sink.round_done(result, types.SimpleNamespace(round=1))
  sink.close()
  assert [s[:2] for s in ckpt.saves] == [("midround", 100), ("round", 1)]
  assert logs == [] and list(tmp_path.iterdir()) == []


def test_progress_line_goes_to_status_every_time_or_to_the_log_now_and_then():
  cfg = _cfg()
  clock, logs = FakeClock(), []
  w = writers.ProgressWriter(_setup(cfg), logs.append, log_every_s=5.0, clock=clock)
  for now, step in ((0.0, 50), (1.0, 100), (5.5, 150), (6.0, 200)):
    clock.now = now
    w.progress(0, step, None, _curves([step], 2))
  # The first report (whatever the clock), then one per 5 s, and the round's last step.
  assert [line.split(" | ")[0] for line in logs] == [
      "round 0/1 step 50/200", "round 0/1 step 150/200", "round 0/1 step 200/200"]
  assert logs[-1].endswith(f"best val loss {1 / 200:.4f}")
  status = []
  w = writers.ProgressWriter(_setup(cfg), logs.append, status=status.append, first_round=1, clock=clock)
  w.progress(1, 50, None, _curves([50], 3))
  w.progress(1, 100, None, _curves([50, 100], 3))
  assert len(status) == 2 and status[1].startswith("round 1/1 step 100/200")
  w.round_done(_result(cfg, 1), None)
  assert logs[-1].startswith("round 1 done in 1.2s\n") and "ticket" in logs[-1]


def test_progress_counts_scratch_b_steps_past_the_run_s_budget():
  # Scratch-B trains twice the steps: the round is 400 steps long and, past 200, only the two
  # scratch networks of the six tickets train; the time left follows the steps still to train.
  cfg = _cfg(**{"controls": ("reinit", "scratch"), "scratch.steps_scale": 2.0})
  clock, logs = FakeClock(), []
  w = writers.ProgressWriter(_setup(cfg), logs.append, log_every_s=0.0, clock=clock)
  for now, step in ((0.0, 100), (10.0, 200), (20.0, 300)):
    clock.now = now
    w.progress(1, step, None, _curves([step], 6))
  first, second, third = (line.split(" | ") for line in logs)
  assert first[:2] == ["round 1/1 step 100/400", "6 tickets"]
  assert second[2] == "60 model-steps/s"  # 6 x 100 steps in 10 s; then 2 x 100: 0.7 x 60 + 0.3 x 20
  assert third[:4] == ["round 1/1 step 300/400", "2 of 6 tickets training", "48 model-steps/s", "round left 4s"]
  assert w.run.total == 2 * 200 + 4 * 200 + 2 * 400 and logs[-1].count("run ") == 1
  # Vmapped, the idle tickets are stepped and discarded: every one costs the whole round.
  stepped = writers.ProgressWriter(_setup(cfg, skips_idle=False), logs.append)
  assert stepped.run.total == 2 * 200 + 6 * 400


def test_live_tensorboard_curves_come_from_the_reports(tmp_path):
  cfg = _cfg()
  sink = writers.WorkdirSink(tmp_path, _setup(cfg), _Checkpoints(),
                             lambda _: None)
  sink.progress(0, 100, None, _curves([100], 2))
  sink.progress(0, 200, None, _curves([100, 200], 2))
  sink.close()
  scalars = run_scalars(tmp_path / "tensorboard" / "ticket_trial1")
  assert [(s, v) for s, t, v in scalars if t == "round_00/val_loss"] == [
      (100, pytest.approx(0.01)), (200, pytest.approx(0.005))]


def test_a_records_file_of_something_else_is_one_error_and_a_torn_last_line_is_skipped(tmp_path):
  good = {"round": 0, "trial": 1, "kind": "ticket", "draw": 0, "density": 1.0, "early_stop_step": 90,
          "steps_trained": 100, "test_accuracy": 0.9}
  path = tmp_path / results.RESULTS
  path.write_text(json.dumps(good) + "\n" + json.dumps(good)[:-9])  # a torn last line
  assert results.read_file(path) == [good]
  for line, named in ((json.dumps({**good, "round": "0"}), "round"), (json.dumps({**good, "trial": True}), "trial"),
                      ('{"round": 0, "trial": 0}', "kind, draw, density"), ("[1, 2]", "round, trial")):
    path.write_text(json.dumps(good) + "\n" + line + "\n")
    with pytest.raises(results.RecordsError, match=rf"line 2 is not an ltjax record \(no valid {named}"):
      results.read_file(path)
  path.write_bytes(b"\xff\xfe\x00binary")
  with pytest.raises(results.RecordsError, match="cannot read it as records"):
    results.read_file(path)
