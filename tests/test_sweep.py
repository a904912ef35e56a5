"""Sweeps: studies as data, the manifest (ltjax.runs.sweeps) both binaries share, the sweep binary's
grid, resume and report, the report binary on a sweep, and their bad input."""

import json

import pytest

from ltjax import configs
from ltjax.runs import studies, sweeps, validation
from tests.conftest import shared_data_dir
from tests.report_workdirs import write_workdir
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


def test_densities_held_fixed_beside_a_mode_sweep_go_to_the_modes_that_read_them():
  # IMP refuses densities (it would ignore them); beside oneshot in one sweep they are oneshot's.
  fixed = {"prune.densities": (0.3, 0.1)}
  points = studies.expand(studies.Study("s"), fixed=fixed, grid={"prune.mode": ("iterative", "oneshot")})
  by_mode = {cfg.prune.mode: cfg.prune.densities for _, cfg, _ in points}
  assert by_mode == {"iterative": configs.get("lenet_quick").prune.densities, "oneshot": (0.3, 0.1)}
  with pytest.raises(validation.UsageError, match="^point seed=1: prune.densities: prune.mode='iterative'"):
    studies.expand(studies.Study("s"), fixed=fixed, grid={"seed": (1, 2)})  # IMP alone: refused


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


@pytest.mark.parametrize("study, fixed, grid, message", [
    ("resetting", {"prune.reset": "none"}, {}, r"^--set.prune.reset: the study sets it per point \(start, none\)"),
    ("initialization", {"model_kwargs.init": "zeros"}, {}, "^--set.model_kwargs.init: the study sets it per point"),
    ("pruning_rate", {"prune.rounds": 2}, {}, r"^--set.prune.rounds: the study sets it per point \(12, 6, 4, 2\)"),
    ("learning_rate", {}, {"train.lr": (0.1, 0.2)}, "^--sweep.train.lr: the study sets it per point"),
])
def test_a_value_the_study_sets_per_point_is_refused_not_overridden(study, fixed, grid, message):
  # before, the point's value won silently: --set.model_kwargs.init=zeros trained Glorot networks
  with pytest.raises(validation.UsageError, match=message):
    studies.expand(studies.get(study), fixed=fixed, grid=grid)
  studies.expand(studies.get("normalization"), fixed={"train.steps": 20000})  # the study's fixed: the user's wins


def _manifest(config="lenet_quick", names=("seed=1", "seed=2")):
  return sweeps.manifest(None, config, {"controls": ("reinit",)},
                         [(n, None, {"seed": int(n[-1])}) for n in names])


def test_a_manifest_reads_back_as_written_and_names_the_finished_points(tmp_path):
  points = studies.expand(studies.get("scratch"))
  wanted = sweeps.manifest("scratch", "lenet_quick", {"controls": ("reinit", "scratch")}, points)
  assert wanted["set"] == {"controls": ["reinit", "scratch"]}  # as JSON gives it back
  sweeps.claim(tmp_path / "root", wanted)
  assert sweeps.read(tmp_path / "root") == wanted
  assert sweeps.point_names(wanted) == ["lr_scale=1", "lr_scale=2"]
  assert sweeps.finished(tmp_path / "root") == []
  (tmp_path / "root" / "lr_scale=2").mkdir()
  (tmp_path / "root" / "lr_scale=2" / "results.jsonl").write_text("")
  assert sweeps.finished(tmp_path / "root") == [("lr_scale=2", tmp_path / "root" / "lr_scale=2")]
  sweeps.claim(tmp_path / "root", wanted)  # the same sweep again: it resumes


def test_a_sweep_given_more_rounds_is_the_same_sweep_continued(tmp_path):
  base = sweeps.manifest("learning_rate", "lenet_quick", {"trials": 5}, studies.expand(studies.get("learning_rate")))
  sweeps.claim(tmp_path, base)
  deeper = sweeps.manifest("learning_rate", "lenet_quick", {"trials": 5, "prune.rounds": 13},
                           studies.expand(studies.get("learning_rate")))
  sweeps.claim(tmp_path, deeper)  # each point's workdir decides whether its run can go on
  assert sweeps.read(tmp_path)["set"] == {"trials": 5, "prune.rounds": 13}
  with pytest.raises(sweeps.SweepError, match=r"differs in set"):
    sweeps.claim(tmp_path, sweeps.manifest("learning_rate", "lenet_quick", {"trials": 3, "prune.rounds": 13},
                                           studies.expand(studies.get("learning_rate"))))
  # a started point that ran 13 rounds: fewer, or the study's own again, would mix the round counts
  (tmp_path / "lr=0.0006").mkdir()
  (tmp_path / "lr=0.0006" / "config.json").write_text(json.dumps({"config": {"prune": {"rounds": 13}}}))
  for fewer in ({"trials": 5, "prune.rounds": 9}, {"trials": 5}):
    with pytest.raises(sweeps.SweepError, match=r"point lr=0.0006 ran 13 rounds; give --set.prune.rounds=13"):
      sweeps.claim(tmp_path, sweeps.manifest("learning_rate", "lenet_quick", fewer,
                                             studies.expand(studies.get("learning_rate"))))
  sweeps.claim(tmp_path, deeper)  # the same again resumes


def test_claim_refuses_another_sweep_unless_restarting(tmp_path):
  sweeps.claim(tmp_path, _manifest())
  other = _manifest(config="lenet_mnist", names=("seed=1", "seed=3"))
  with pytest.raises(sweeps.SweepError, match=r"holds another sweep \(differs in config, points\)"):
    sweeps.claim(tmp_path, other)
  sweeps.claim(tmp_path, other, restart=True)
  assert sweeps.read(tmp_path) == other
  (tmp_path / sweeps.MANIFEST).write_text("{torn")
  with pytest.raises(sweeps.SweepError, match="unreadable"):
    sweeps.claim(tmp_path, other)


@pytest.mark.parametrize("text, message", [
    (None, "cannot read"), ("{torn", "cannot read"), ("[]", "not a sweep manifest"),
    ('{"points": 3}', "not a sweep manifest"), ('{"points": [{"values": {}}]}', "not a sweep manifest"),
    ('{"points": [{"name": "../elsewhere"}]}', "not a sweep manifest"),
])
def test_read_refuses_what_is_not_a_manifest(tmp_path, text, message):
  if text is not None:
    (tmp_path / sweeps.MANIFEST).write_text(text)
  with pytest.raises(sweeps.SweepError, match=message):
    sweeps.read(tmp_path)


def test_the_report_binary_overlays_the_finished_points_of_a_sweep(binaries, tmp_path):
  sweeps.claim(tmp_path, _manifest(names=("seed=1", "seed=2", "seed=3")))
  for name in ("seed=1", "seed=3"):  # seed=2 has not finished a round yet
    write_workdir(tmp_path / name)
  ran = binaries("experiments.report", [f"--sweep={tmp_path}"])
  assert ran.rc == 0, ran.stderr[-2000:]
  text = (tmp_path / "report" / "summary.md").read_text()
  assert "## seed=1" in text and "## seed=3" in text and "## seed=2" not in text
  assert (tmp_path / "report" / "accuracy.png").stat().st_size > 10_000


@pytest.mark.parametrize("manifest, message", [
    ('{"points": "x"}', "not a sweep manifest"), ('{"points": [{"name": "a"}]}', "no point"),
])
def test_the_report_binary_refuses_a_bad_sweep_in_one_line(binaries, tmp_path, manifest, message):
  (tmp_path / sweeps.MANIFEST).write_text(manifest)
  ran = binaries("experiments.report", [f"--sweep={tmp_path}"])
  assert_refused(ran, "sweep", [tmp_path / "report"])
  assert message in ran.stderr


def test_the_sweep_binary_refuses_another_sweep_before_running_anything(binaries, tmp_path):
  (tmp_path / sweeps.MANIFEST).write_text(json.dumps(_manifest()))
  ran = binaries("experiments.sweep", [f"--workdir={tmp_path}", "--sweep.seed=1,2"],
                 env={"LTJAX_DATA_DIR": "/nonexistent"})  # refused before any data is needed
  assert_refused(ran, "--workdir")
  assert "(differs in set)" in ran.stderr and "--restart" in ran.stderr  # same points, other --set
  assert json.loads((tmp_path / sweeps.MANIFEST).read_text()) == _manifest()


needs_mnist = pytest.mark.skipif(shared_data_dir() is None, reason="prepared MNIST not found")
_TINY = ["--set.train.steps=200", "--set.train.eval_every=100", "--set.trials=1", "--set.prune.rounds=1",
         "--set.validation_size=1000", "--set.model_kwargs.width=0.25"]


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


def test_fields_are_taken_out_of_argv_whatever_their_spelling():
  from experiments import cli
  rest, taken = cli.take_fields(["prog", "--set.trials=2", "--workdir=w", "--sweep.seed", "1,2",
                                 "--set.controls=(reinit,twin)"], ("--sweep.", "--set."))
  assert rest == ["prog", "--workdir=w"]
  assert taken == {"--sweep.": {"seed": "1,2"}, "--set.": {"trials": "2", "controls": "(reinit,twin)"}}
  assert cli.field_value("(reinit,twin)") == ("reinit", "twin") and cli.field_value("2e-3") == 2e-3
  from experiments import sweep as sweep_binary
  assert sweep_binary.split_values("(a,b),(c,)") == [("a", "b"), ("c",)]
