"""The public API end to end: your network, your arrays and your score through `ltjax.run`, with
the binary's workdir (records, curves, masks, TensorBoard, checkpoints, resume) and the report."""

import json
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ltjax
from examples import data as example_data
from ltjax.core import tickets
from ltjax.methods import modes


class _MLP(nn.Module):
  num_classes: int

  @nn.compact
  def __call__(self, x):
    return nn.Dense(self.num_classes)(nn.relu(nn.Dense(16)(x.reshape((x.shape[0], -1)))))


@ltjax.register_score("api_test_large_and_moved")
def _large_and_moved(params, mask, key, context):
  del mask, key
  return jax.tree.map(lambda w, w0: jnp.abs(w) * jnp.abs(w - w0), params, context.init)


def _cfg(**overrides):
  base = {"trials": 2, "prune.rounds": 2, "train.steps": 40, "train.eval_every": 20,
          "train.batch_size": 32, "validation_size": 200, "execution.mesh": "single"}
  return ltjax.config("lenet_quick", {**base, **overrides})


@pytest.fixture(scope="module")
def own_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("own")
  cfg = _cfg(**{"prune.score": "api_test_large_and_moved"})
  records = ltjax.run(cfg, workdir, model=_MLP(num_classes=4), dataset=example_data.blobs(600, 200),
                      log=lambda _: None)
  return workdir, cfg, records


def test_own_network_arrays_and_score_write_the_binarys_workdir(own_run):
  workdir, _, records = own_run
  kinds = {(r["round"], r["kind"]) for r in records}
  assert kinds == {(0, "ticket"), (1, "ticket"), (1, "reinit"), (1, "random_mask"),
                   (2, "ticket"), (2, "reinit"), (2, "random_mask")}
  density = {r["round"]: r["density"] for r in records if r["kind"] == "ticket"}
  assert density[0] == 1.0 and density[1] < 0.9 and density[2] < density[1]
  for sub in ("curves/round_02.npz", "masks/round_02.npz", "results.jsonl", "config.json"):
    assert (workdir / sub).exists(), sub
  assert any((workdir / "tensorboard").rglob("events.out.tfevents.*"))
  assert any((workdir / "checkpoints").iterdir())
  saved = json.loads((workdir / "config.json").read_text())["config"]
  assert saved["model"].endswith("_MLP") and saved["dataset"] == "arrays"
  assert saved["prune"]["scope"] == "layerwise"  # what 'auto' meant for this score


def test_each_method_defaults_to_its_papers_scope():
  from ltjax import wiring  # noqa: PLC0415
  for score, scope in (("magnitude", "layerwise"), ("snip", "global"), ("grasp", "global"),
                       ("synflow", "global"), ("api_test_large_and_moved", "layerwise")):
    assert wiring.with_method_defaults(_cfg(**{"prune.score": score})).prune.scope == scope
  chosen = _cfg(**{"prune.score": "snip", "prune.scope": "layerwise"})
  assert wiring.with_method_defaults(chosen) is chosen


def test_rerunning_resumes_with_the_same_records(own_run):
  workdir, cfg, records = own_run
  lines = []
  again = ltjax.run(cfg, workdir, model=_MLP(num_classes=4), dataset=example_data.blobs(600, 200),
                    log=lines.append)
  assert again == records
  assert not any("round 0 done" in line for line in lines)  # nothing was trained again


def test_the_report_reads_the_workdir(own_run, tmp_path):
  workdir, _, _ = own_run
  summary = pathlib.Path(ltjax.report([workdir], tmp_path / "report"))
  assert summary.exists() and "accuracy" in summary.read_text()
  assert list((tmp_path / "report").glob("*.png"))
  # One path is one workdir, not a list of its characters; no workdir at all is one line.
  assert pathlib.Path(ltjax.report(str(workdir), tmp_path / "one")).read_text() == summary.read_text()
  with pytest.raises(ltjax.UsageError, match="^no workdirs"):  # caught as a run's bad input is
    ltjax.report([], tmp_path / "none")
  assert not (tmp_path / "none").exists()


def test_a_mode_of_your_own_drops_in(tmp_path):
  @ltjax.register_mode("api_test_random_at_init")
  def random_at_init(request):
    """Static random masks at each density: the sparse-training baseline."""
    from ltjax.core import masks, pruning  # noqa: PLC0415
    from ltjax.methods import oneshot  # noqa: PLC0415
    cfg = request.setup.cfg
    rates = oneshot.one_shot_rates(request.setup, request.lineage, cfg.prune.densities[request.round_index])
    ones = jax.vmap(masks.ones)(request.lineage.init_params)
    mask = pruning.prune_round(request.lineage.init_params, request.lineage.init_params, ones,
                               request.setup.roles, rates, score="random", key=request.key,
                               ticket_axes=1)
    return ltjax.Found(mask, jnp.zeros(cfg.trials, jnp.int32))

  assert "api_test_random_at_init" in modes.names()
  cfg = _cfg(**{"prune.mode": "api_test_random_at_init", "prune.densities": (0.3,),
                "controls": (tickets.REINIT,)})
  records = ltjax.run(cfg, tmp_path, model=_MLP(num_classes=4), dataset=example_data.blobs(600, 200),
                      log=lambda _: None)
  pruned = [r for r in records if r["round"] == 1]
  assert {r["kind"] for r in pruned} == {"ticket", "reinit"}
  assert all(abs(r["density"] - 0.3) < 0.01 and r["finding_steps"] == 0 for r in pruned)
  with pytest.raises(ltjax.UsageError, match="controls: the 'inverted' control"):
    ltjax.run(_cfg(**{"prune.mode": "api_test_random_at_init", "prune.densities": (0.3,),
                      "controls": ("inverted",)}), tmp_path / "x", model=_MLP(num_classes=4),
              dataset=example_data.blobs(600, 200))


@pytest.mark.parametrize("kwargs, message", [
    ({"model": 3}, "model: expected a flax.linen.Module"),
    ({"model": _MLP(num_classes=3)}, "model: outputs \\(2, 3\\) for a batch of 2, but the data has 4 classes"),
    ({"roles": {"nothing/*": "fixed"}}, "roles: pattern 'nothing/\\*' matches no parameter"),
    ({"dataset": ((np.zeros((10, 4)), np.zeros(10)), (np.zeros((5, 4)), np.zeros(5, int)))},
     "dataset: train labels must be integers"),
    ({"dataset": "nowhere.module:fn"}, "dataset: cannot import 'nowhere.module'"),
])
def test_bad_input_through_the_api_is_one_line_and_writes_nothing(tmp_path, kwargs, message):
  args = {"model": _MLP(num_classes=4), "dataset": example_data.blobs(600, 200), **kwargs}
  with pytest.raises(ltjax.UsageError, match=message) as e:
    ltjax.run(_cfg(), tmp_path / "w", log=lambda _: None, **args)
  assert "\n" not in str(e.value)
  assert not (tmp_path / "w").exists()


def test_a_workdir_that_is_not_a_path_is_one_line():
  with pytest.raises(ltjax.UsageError, match="^workdir: expected a path, got int$"):
    ltjax.run(_cfg(), 5, log=lambda _: None, model=_MLP(num_classes=4), dataset=example_data.blobs(600, 200))


def test_config_refuses_unknown_presets_and_fields():
  with pytest.raises(ltjax.UsageError, match="unknown preset 'nope'"):
    ltjax.config("nope")
  with pytest.raises(ltjax.UsageError, match="train.stepz: no such config field"):
    ltjax.config("lenet_quick", {"train.stepz": 3})
  with pytest.raises(ltjax.UsageError, match="^overrides: expected a mapping .*got list"):
    ltjax.config("lenet_quick", [("train.steps", 3)])
