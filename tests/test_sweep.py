"""Sweeps: studies as data, the sweep binary's grid, resume and report, and its bad input."""

import json

import pytest

from ltjax import configs
from ltjax.run import studies, validation
from tests.conftest import shared_data_dir
from tests.test_bad_input import assert_refused


def test_every_study_expands_to_valid_distinct_points():
  for name in studies.names():
    points = studies.expand(studies.get(name))
    assert len(points) >= 2, name
    assert len({n for n, _, _ in points}) == len(points)


def test_a_grid_crosses_fields_and_points_move_together():
  study = studies.get("pruning_rate")
  points = studies.expand(study, grid={"seed": (1, 2)})
  assert len(points) == 8
  name, cfg, point = points[0]
  assert cfg.prune.fc_rate == 0.2 and cfg.prune.rounds == 12 and cfg.seed == 1
  assert name == "fc_rate=0.2,output_rate=0.1,rounds=12,seed=1"
  grid = studies.expand(studies.Study("s"), grid={"prune.fc_rate": (0.2, 0.4), "model_kwargs.width": (1.0, 2.0)})
  assert [p for _, _, p in grid][-1] == {"prune.fc_rate": 0.4, "model_kwargs.width": 2.0}
  assert grid[-1][1].model_kwargs.width == 2.0 and not dict(configs.get("lenet_quick").model_kwargs)


@pytest.mark.parametrize("grid, message", [
    ({}, "nothing to sweep"),
    ({"prune.fc_rate": ()}, "^prune.fc_rate: the sweep gives no values"),
    ({"prune.nope": (1, 2)}, "^prune.nope: no such config field"),
    ({"stability.points": (1, 3)}, "^point points=1: stability.points: must be in \\[2, 1001\\]"),
    ({"prune.rewind_step": (100, 5000)}, r"^point rewind_step=5000: prune.rewind_step: \(5000\) is beyond"),
    ({"prune.fc_rate": (0.2, 0.2)}, "both 'fc_rate=0.2'"),
])
def test_bad_sweeps_are_one_line_errors(grid, message):
  with pytest.raises(validation.UsageError, match=message):
    studies.expand(studies.Study("s"), fixed={"train.steps": 2000}, grid=grid)


needs_mnist = pytest.mark.skipif(shared_data_dir() is None, reason="prepared MNIST not found")
_TINY = ["--set.train.steps=200", "--set.train.eval_every=100", "--set.trials=1", "--set.prune.rounds=1",
         "--set.validation_size=1000"]


@needs_mnist
@pytest.mark.parametrize("args, name", [
    ([], "nothing to sweep"),
    (["--sweep.prune.fc_rate="], "--sweep.prune.fc_rate"),
    (["--sweep.prune.nope=1,2"], "prune.nope"),
    (["--sweep.stability.points=1,5"], "stability.points"),
    (["--sweep.prune.rewind_step=100,200"], "prune.rewind_step"),
    (["--set.prune.fc_rate=x", "--sweep.seed=1,2"], "prune.fc_rate"),
    (["--sweep.seed=1,2", "--config=nosuchpreset"], "--config"),
])
def test_the_sweep_binary_refuses_bad_sweeps(args, name, binaries, tmp_path):
  ran = binaries("experiments.sweep", [f"--workdir={tmp_path / 'w'}", *_TINY, *args],
                 env={"LTJAX_DATA_DIR": str(shared_data_dir())})
  assert_refused(ran, name, [tmp_path / "w"])


@needs_mnist
def test_a_sweep_runs_every_point_resumes_and_overlays_them(binaries, tmp_path):
  args = [f"--workdir={tmp_path}", *_TINY, "--sweep.prune.rewind_step=0,100", "--set.controls=(twin,)",
          "--set.stability.points=3"]
  env = {"LTJAX_DATA_DIR": str(shared_data_dir())}
  ran = binaries("experiments.sweep", args, env=env, timeout=300)
  assert ran.rc == 0, ran.stderr[-2000:]
  manifest = json.loads((tmp_path / "sweep.json").read_text())
  assert [p["name"] for p in manifest["points"]] == ["rewind_step=0", "rewind_step=100"]
  for point in ("rewind_step=0", "rewind_step=100"):
    recs = [json.loads(x) for x in (tmp_path / point / "results.jsonl").read_text().splitlines()]
    assert {r["round"] for r in recs} == {0, 1}
    assert all(len(r["path_error"]) == 3 for r in recs if r["kind"] == "ticket")
  for figure in ("accuracy.png", "stability_path.png", "instability.png"):
    assert (tmp_path / "report" / figure).stat().st_size > 10_000
  before = (tmp_path / "rewind_step=0" / "results.jsonl").read_text()
  again = binaries("experiments.sweep", args, env=env, timeout=300)  # finished: nothing reruns
  assert again.rc == 0 and (tmp_path / "rewind_step=0" / "results.jsonl").read_text() == before
  other = binaries("experiments.sweep", [*args, "--sweep.seed=3,4"], env=env)
  assert_refused(other, "--workdir")
