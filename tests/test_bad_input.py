"""Every binary, every field or flag: bad input is exit 1, one `error:` line naming it, no
traceback, nothing written. Values are drawn by hypothesis from each field's own rule
(ltjax.runs.validation.SCHEMA for the lottery config), so a field added without a rule, or a rule that
lets a bad value through, fails here. Binaries run in forked children of a warm server (conftest)."""

import math
import os
import re

import pytest
from conftest import shared_data_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ltjax import configs
from ltjax.runs import validation

pytestmark = pytest.mark.skipif(shared_data_dir() is None, reason="needs prepared MNIST")
_SETTINGS = settings(max_examples=3, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.too_slow])
_BAD_TEXT = st.sampled_from(["nope", "1.5.2", "", "  ", "x y", "__", "None"])


def invalid(rule):
  """A strategy of values that `rule` must refuse (as they would come from a command line)."""
  if isinstance(rule, validation.Int):
    parts = [st.sampled_from(["1.5", "abc", "1e3", "True"])]
    if rule.lo is not None:
      parts.append(st.integers(max_value=rule.lo - 1).filter(lambda v: v not in rule.also))
    if rule.hi is not None:
      parts.append(st.integers(min_value=rule.hi + 1))
    return st.one_of(parts)
  if isinstance(rule, validation.Float):
    parts = [st.sampled_from([math.nan, math.inf, -math.inf, "abc"])]
    if rule.lo is not None:
      parts.append(st.floats(max_value=rule.lo, exclude_max=not rule.lo_open, allow_nan=False,
                             allow_infinity=False))
    if rule.hi is not None:
      parts.append(st.floats(min_value=rule.hi, exclude_min=not rule.hi_open, allow_nan=False,
                             allow_infinity=False))
    return st.one_of(parts)
  if isinstance(rule, validation.Bool):
    return st.sampled_from(["maybe", "2", "yess"])
  if isinstance(rule, validation.Str):
    return st.sampled_from(["", "   "]) if rule.nonempty else st.nothing()
  if isinstance(rule, validation.Choice):
    values = rule.values()
    if all(isinstance(v, int) for v in values):
      return st.integers().filter(lambda v: v not in values)
    return st.text(st.characters(min_codepoint=97, max_codepoint=122), min_size=1, max_size=8).map(
        lambda t: "z_" + t).filter(lambda v: v not in values)
  if isinstance(rule, validation.Seq):
    bad = invalid(rule.item).map(lambda v: (v,))
    if rule.distinct and isinstance(rule.item, validation.Choice):  # a good item twice
      return st.one_of(bad, st.sampled_from(rule.item.values()).map(lambda v: (v, v)))
    return bad
  if isinstance(rule, validation.Mesh):
    return st.sampled_from(["x", "0", "-1", "2x", "ax2", "1x1x1", "0x2"])
  if isinstance(rule, validation.Model):
    return st.sampled_from(["", "nope", "nowhere.models:Net", "examples.networks:Nope", ":Net", "a:"])
  if isinstance(rule, validation.RoleOverrides):
    return st.sampled_from([("fc1",), ("=fc",), ("fc1/kernel=big",), ("out/*=",)])
  if isinstance(rule, validation.SparsityType):
    return st.sampled_from(["dense", "4:4", "0:2", "block:1x1", "2-4", "units2", "block:4"])
  raise AssertionError(f"no strategy for {rule!r}")


# Fields whose bad values are not a matter of their rule alone (paths, names only the data can
# refuse, the model's own arguments): drawn here.
SPECIAL = {
    "data_dir": st.sampled_from(["/nonexistent/ltjax-data", "relative/missing/dir"]),
    "dataset": st.text(st.characters(min_codepoint=97, max_codepoint=122), min_size=1,
                       max_size=8).map(lambda t: "nosuchdataset_" + t),
    "execution.compilation_cache_dir": st.sampled_from(["/dev/null/cache", "/proc/ltjax-cache"]),
    "prune.masks_from": st.sampled_from(["/tmp", "results/lenet"]),  # read by prune.mode='given' only
    "model_kwargs": st.text(st.characters(min_codepoint=97, max_codepoint=122), min_size=1,
                            max_size=8).map(lambda t: {"nope_" + t: 1}),
    "validation_size": st.one_of(st.integers(max_value=0), st.integers(60_000, 10**7)),
}
# Rules between fields and against the data, as (field, overrides).
CROSS = [
    ("train.eval_every", {"train.steps": 200, "train.eval_every": 300}),
    ("train.warmup_steps", {"train.steps": 200, "train.warmup_steps": 201}),
    ("train.milestones", {"train.steps": 200, "train.milestones": (150, 100)}),
    ("train.milestones", {"train.steps": 200, "train.milestones": (200,)}),
    ("prune.rewind_step", {"train.steps": 200, "prune.rewind_step": 200}),
    ("prune.rewind_step", {"train.steps": 200, "prune.rewind_step": 30}),
    ("prune.densities", {"prune.mode": "oneshot", "prune.densities": ()}),
    ("prune.densities", {"prune.mode": "at_init", "prune.densities": (1e-6,)}),
    ("controls", {"prune.mode": "iterative", "controls": ("inverted",)}),
    ("controls", {"controls": ("reinit", "random_mask", "reinit")}),  # trained twice under one id: n doubled
    ("prune.reset", {"prune.reset": "none", "train.steps": 200, "prune.rewind_step": 100,
                     "train.eval_every": 100}),
    ("prune.reset", {"prune.reset": "none", "prune.mode": "oneshot"}),
    ("prune.score", {"prune.mode": "early_bird", "prune.score": "movement"}),
    ("scratch.steps_scale", {"controls": ("scratch",), "train.steps": 200, "scratch.steps_scale": 1.001}),
    ("prune.distribution", {"prune.mode": "iterative", "prune.distribution": "erk"}),
    ("prune.update_every", {"prune.mode": "rigl", "prune.densities": (0.2,), "prune.update_every": 190}),
    ("prune.sparsity_type", {"prune.mode": "gmp", "prune.densities": (0.2,), "prune.sparsity_type": "2:4"}),
    ("prune.masks_from", {"prune.mode": "given", "prune.densities": (0.5,)}),  # whose masks?
    ("prune.masks_from", {"prune.mode": "given", "prune.densities": (0.5,), "prune.masks_from": "/nonexistent"}),
    ("train.batch_size", {"train.batch_size": 55_001}),
    ("validation_size", {"validation_size": 60_000}),
]
_BASE = ["--config=lenet_quick", "--config.train.steps=200", "--config.prune.rounds=0",
         "--config.trials=1"]


def _arg(field, value):
  if field == "model_kwargs":
    (key, v), = value.items()
    return f"--config.model_kwargs.{key}={v}"
  if isinstance(value, tuple):
    return f"--config.{field}=({','.join(map(repr, value))}{',' if len(value) == 1 else ''})"
  return f"--config.{field}={value}"


def assert_refused(ran, name, written=()):
  """exit 1, exactly one line on stderr, `error:` naming `name`, no traceback, nothing written."""
  lines = [x for x in ran.stderr.splitlines() if x.strip()]
  assert ran.rc == 1, (ran.rc, ran.stderr[-2000:], ran.stdout[-500:])
  assert len(lines) == 1 and lines[0].startswith("error: "), ran.stderr[-2000:]
  assert re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", lines[0]), lines[0]
  assert "Traceback" not in ran.stderr + ran.stdout
  for path in written:
    assert not os.path.exists(path), f"{path} was written"


def _lottery(binaries, tmp_path_factory, overrides):
  workdir = tmp_path_factory.mktemp("bad") / "workdir"
  ran = binaries("experiments.lottery", [*_BASE, *(_arg(f, v) for f, v in overrides.items()),
                                         f"--workdir={workdir}"],
                 env={"LTJAX_DATA_DIR": str(shared_data_dir())})
  return ran, workdir


@pytest.mark.parametrize("field", list(validation.SCHEMA))
@_SETTINGS
@given(data=st.data())
def test_lottery_refuses_a_bad_value_of_every_field(field, data, binaries, tmp_path_factory):
  value = data.draw(SPECIAL[field] if field in SPECIAL else invalid(validation.SCHEMA[field]), label=field)
  ran, workdir = _lottery(binaries, tmp_path_factory, {field: value})
  assert_refused(ran, field, [workdir])


@pytest.mark.parametrize("field, overrides", CROSS)
def test_lottery_refuses_fields_that_do_not_fit_together(field, overrides, binaries, tmp_path_factory):
  ran, workdir = _lottery(binaries, tmp_path_factory, overrides)
  assert_refused(ran, field, [workdir])


@pytest.mark.parametrize("args, name", [
    (["--config.nope=1"], "--config.nope"),
    (["--config.train.nope=1"], "--config.train.nope"),
    (["--config.train.lr.sub=1"], "--config.train.lr.sub"),
    (["--config=/nonexistent/config.py"], "--config"),
    (["--config=nosuchpreset"], "--config"),
    (["--config=xor"], "--config"),
    (["--config.train.steps=1.5"], "--config.train.steps"),
    (["--unknown_flag=1"], "unknown_flag"),
    (["--workdir="], "workdir"),
    (["--num_processes=2"], "--coordinator_address"),
    (["stray_argument"], "stray_argument"),
])
def test_lottery_refuses_bad_flags(args, name, binaries, tmp_path_factory):
  cwd = tmp_path_factory.mktemp("cwd")
  ran = binaries("experiments.lottery", [*_BASE, *args], cwd=cwd,
                 env={"LTJAX_DATA_DIR": str(shared_data_dir())})
  assert_refused(ran, name)
  assert not os.listdir(cwd), "something was written in the current directory"


@pytest.mark.parametrize("source, name", [("x = (", "SyntaxError"), ("raise RuntimeError('boom')", "boom"),
                                          ("def get_config():\n  return 3\n", "ConfigDict"),
                                          ("import ml_collections\nfrom ltjax.configs import base\n"
                                           "def get_config():\n  c = base.get_config()\n"
                                           "  c.extra = 1\n  return c\n", "extra")])
def test_lottery_refuses_a_broken_config_file(source, name, binaries, tmp_path_factory):
  d = tmp_path_factory.mktemp("cfg")
  (d / "my_config.py").write_text(source)
  ran = binaries("experiments.lottery", [f"--config={d / 'my_config.py'}", f"--workdir={d / 'w'}"],
                 env={"LTJAX_DATA_DIR": str(shared_data_dir())})
  assert_refused(ran, name, [d / "w"])


def test_every_preset_passes_validation():
  for name in configs.available():
    validation.check(configs.get(name))


# ---------------------------------------------------------------- the other binaries
FLAGS = {
    "experiments.xor": {
        "inits": st.integers(max_value=0), "steps": st.integers(max_value=0),
        "seed": st.one_of(st.integers(max_value=-1), st.integers(min_value=2**32)),
        "learning_rate": st.sampled_from(["0", "-1", "nan", "inf", "abc"]),
        "optimizer": _BAD_TEXT, "activation": _BAD_TEXT, "inputs": _BAD_TEXT,
        "zl_threshold": st.sampled_from(["0", "-0.1", "0.7", "nan"]),
        "out": st.sampled_from(["", "/etc/hostname", "/dev/null"]),
    },
    "benchmarks.throughput": {
        "models": _BAD_TEXT, "tickets": st.sampled_from(["0", "-1", "x", "1,x", ""]),
        "layouts": st.sampled_from(["x:1", "single:-1", "auto:x", "2x:0"]),
        "cpu_devices": st.sampled_from(["0", "-2"]), "steps": st.integers(max_value=0),
        "repeats": st.integers(max_value=0), "batch_size": st.integers(max_value=0),
        "unroll": st.sampled_from(["2", "-2"]), "density": st.sampled_from(["0", "1.5", "-0.1"]),
    },
    "benchmarks.own_schedules": {
        "models": _BAD_TEXT, "tickets": st.integers(max_value=1), "steps": st.integers(max_value=1),
        "eval_every": st.integers(max_value=0), "batch_size": st.integers(max_value=0),
        "shape": st.integers(max_value=-1), "layouts": st.sampled_from(["x:1", "single:-1", "auto:x"]),
        "repeats": st.integers(max_value=0), "cpu_devices": st.sampled_from(["0", "-2"]),
    },
    "benchmarks.round": {
        "preset": _BAD_TEXT, "steps": st.integers(max_value=0), "eval_every": st.integers(max_value=0),
        "trials": st.integers(max_value=0), "rounds": st.integers(max_value=-1),
        "layouts": st.sampled_from(["x", "2x", ""]), "cpu_devices": st.sampled_from(["0", "-2"]),
        "data_dir": st.sampled_from(["/nonexistent"]),
    },
    "benchmarks.bounds": {"tickets": st.integers(max_value=0), "steps": st.integers(max_value=0),
                          "repeats": st.integers(max_value=0)},
    "benchmarks.startup": {"preset": _BAD_TEXT},
    "benchmarks.compiles": {"preset": _BAD_TEXT, "trials": st.integers(max_value=0),
                            "rounds": st.integers(max_value=-1), "steps": st.integers(max_value=0),
                            "eval_every": st.integers(max_value=0),
                            "validation_size": st.integers(max_value=0), "top": st.integers(max_value=-1),
                            "data_dir": st.sampled_from(["/nonexistent"])},
    "experiments.criteria": {"workdir": st.sampled_from(["", "  "]), "preset": _BAD_TEXT,
                             "criteria": _BAD_TEXT, "densities": st.sampled_from(["0", "0.2,0.5", "x", "1.5"]),
                             "steps": st.integers(max_value=-1), "trials": st.integers(max_value=-1),
                             "reinit_draws": st.integers(max_value=-1), "scope": _BAD_TEXT,
                             "cpu_devices": st.sampled_from(["0", "-2", "x"]),
                             "report": st.sampled_from(["maybe", "2"])},
    "experiments.sweep": {"study": st.sampled_from(["nope", "x y", "None", "  ", "1.5.2"]),
                          "config": st.sampled_from(["nosuchpreset", "/nonexistent.py"]),
                          "workdir": st.sampled_from(["", "  "])},
    "experiments.supermask": {"model": _BAD_TEXT, "dataset": st.sampled_from(["", "nosuchdataset_x"]),
                              "steps": st.integers(max_value=0), "lr": st.sampled_from(["0", "-1", "inf"]),
                              "batch_size": st.integers(max_value=0), "seed": st.integers(max_value=-1)},
    "benchmarks.criteria": {"model": _BAD_TEXT, "density": st.sampled_from(["0", "1.5", "nan"]),
                            "scope": _BAD_TEXT, "repeats": st.integers(max_value=0),
                            "criteria": _BAD_TEXT},
    "benchmarks.one_ticket": {"steps": st.integers(max_value=99), "repeats": st.integers(max_value=0),
                              "data_dir": st.sampled_from(["/nonexistent"])},
    "benchmarks.handwritten": {"steps": st.integers(max_value=0), "eval_every": st.integers(max_value=0),
                               "seed": st.integers(max_value=-1), "data_dir": st.sampled_from(["/nonexistent"])},
    "benchmarks.sparse_step": {"tickets": st.sampled_from(["0", "x", ""]), "steps": st.integers(max_value=1),
                               "every": st.sampled_from(["0", "x", "", "100000"]),
                               "repeats": st.integers(max_value=0), "density": st.sampled_from(["0", "1", "nan"])},
    "benchmarks.inference": {"workdir": st.sampled_from(["/nonexistent", "/etc"]),
                             "model": st.sampled_from(["lenet", "resnet20", ""]),
                             "sparsity_type": st.sampled_from(["2:4", "block:2x2", ""]),
                             "rounds": st.sampled_from(["-1", "x", ""]), "batches": st.sampled_from(["0", "x", ""]),
                             "repeats": st.integers(max_value=0)},
    "benchmarks.pool_blocking": {"devices": st.sampled_from(["0", "x", "-1", ""]),
                                 "nprocs": st.sampled_from(["x", "0", "-2"])},
    "experiments.report": {"workdir": st.sampled_from(["/nonexistent", "", "/etc"]),
                           "sweep": st.sampled_from(["/nonexistent", "", "/etc"]),
                           "out": st.sampled_from(["/etc/hostname", "/dev/null"])},
}
_CASES = [(module, flag) for module, flags in FLAGS.items() for flag in flags]


@pytest.mark.parametrize("module, flag", _CASES)
@_SETTINGS
@given(data=st.data())
def test_every_flag_of_every_binary_refuses_bad_values(module, flag, data, binaries, tmp_path_factory):
  value = data.draw(FLAGS[module][flag], label=flag)
  cwd = tmp_path_factory.mktemp("cwd")
  args = [f"--{flag}={value}"]
  if module == "experiments.report" and flag != "workdir":
    args.append(f"--workdir={shared_report_workdir()}")
  ran = binaries(module, args, cwd=cwd, env={"LTJAX_DATA_DIR": str(shared_data_dir())})
  assert_refused(ran, flag)
  assert not ran.stdout.strip(), ran.stdout[-500:]  # no figures, no JSON lines, no tables
  assert not os.listdir(cwd)


def shared_report_workdir():
  """A finished workdir checked into the repository, for the report's flags."""
  return os.path.join(os.path.dirname(__file__), os.pardir, "results", "lenet")


_SWEEP = ["--config=lenet_quick", "--workdir=w"]


@pytest.mark.parametrize("module, args, name", [
    ("experiments.sweep", [*_SWEEP, "--sweep.train.lr=0.1", "--sweep.train.lr=0.2"], "train.lr"),  # the later won
    ("experiments.sweep", [*_SWEEP, "--sweep.train.lr=0.1,0.2", "--set.train.lr=0.2"], "train.lr"),
    ("experiments.sweep", ["--study=initialization", "--workdir=w", "--set.model_kwargs.init=he_normal"],
     "model_kwargs.init"),  # the study sets it per point
    ("experiments.criteria", ["--workdir=w", "--criteria=imp,oneshot,imp"], "criteria"),  # a workdir run twice
    ("experiments.criteria", ["--workdir=w", "--set.trials=2", "--set.trials=3"], "trials"),
    ("experiments.criteria", ["--workdir=w", "--trials=2", "--set.trials=3"], "trials")])
def test_a_value_given_twice_is_refused(module, args, name, binaries, tmp_path_factory):
  cwd = tmp_path_factory.mktemp("cwd")
  ran = binaries(module, args, cwd=cwd, env={"LTJAX_DATA_DIR": str(shared_data_dir())})
  assert_refused(ran, name)
  assert not os.listdir(cwd)


@pytest.mark.parametrize("args, name", [
    ([f"--workdir={shared_report_workdir()}", "--sparsity_type=units"], "sparsity_type"),  # masks from two places
    (["--rounds=3,58", "--batches=1", "--repeats=1"], "rounds"),  # round 58 leaves no path to export
])
def test_the_inference_benchmark_refuses_before_timing_anything(args, name, binaries, tmp_path_factory):
  cwd = tmp_path_factory.mktemp("cwd")
  ran = binaries("benchmarks.inference", args, cwd=cwd)
  assert_refused(ran, name)
  assert not ran.stdout.strip(), ran.stdout[-500:]  # round 3 exported fine, yet nothing was printed
