"""Gradual and dynamic sparse training as lottery modes: 'gmp', 'set', 'rigl' and their static start,
one pruned round per density beside the dense round 0, checked before anything is written."""

import json

import numpy as np
import pytest

from ltjax.runs import experiment, results
from tests.conftest import shared_data_dir, tiny_lottery_config

pytestmark = pytest.mark.skipif(shared_data_dir() is None, reason="needs the shared MNIST")
QUIET = lambda _: None  # noqa: E731


def _cfg(mode, **overrides):
  return tiny_lottery_config(**{"prune.mode": mode, "prune.densities": (0.2,), "trials": 1, "controls": (),
                                "train.steps": 200, "train.eval_every": 50, "prune.update_every": 50,
                                **overrides})


def test_gmp_reaches_its_density_and_early_stops_only_once_there(tmp_path):
  recs = experiment.train_and_evaluate(_cfg("gmp", **{"prune.update_end": 150}), tmp_path, log=QUIET)
  pruned = [r for r in recs if r["round"] == 1]
  assert [r["density"] for r in pruned] == pytest.approx([0.2], abs=1e-6)
  assert all(r["early_stop_step"] >= 150 for r in pruned)  # not a denser network from before the end
  saved = json.loads((tmp_path / "config.json").read_text())["config"]["prune"]
  assert saved["distribution"] == "uniform"  # Zhu & Gupta's, recorded as what 'auto' meant


def test_gmp_by_units_keeps_a_fraction_of_each_hidden_layers_units_and_every_class(tmp_path):
  cfg = _cfg("gmp", **{"prune.sparsity_type": "units", "prune.densities": (0.5,), "prune.update_end": 150,
                       "model_kwargs.width": 0.4})  # 120-40 units: half of each is whole
  experiment.train_and_evaluate(cfg, tmp_path, log=QUIET)
  with np.load(tmp_path / "masks" / "round_01.npz") as blob:
    m = results.unpack_masks({k: blob[k] for k in blob.files})
  fc1, fc2, out = (m[f"{n}/kernel"][0] for n in ("fc1", "fc2", "out"))
  assert fc1.any(0).sum() == 60 and fc2.any(0).sum() == 20 and out.any(0).all()
  assert not fc2[~fc1.any(0)].any() and not out[~fc2.any(0)].any()  # outgoing weights went too


@pytest.mark.parametrize("mode", ["rigl", "static"])
def test_rigl_and_its_static_start_keep_the_erk_counts(tmp_path, mode):
  recs = experiment.train_and_evaluate(_cfg(mode), tmp_path, log=QUIET)
  pruned = [r for r in recs if r["round"] == 1]
  assert pruned[0]["density"] == pytest.approx(0.2, abs=1e-4)
  dens = pruned[0]["layer_density"]
  assert dens["out/kernel"] == 1.0 and dens["fc2/kernel"] > dens["fc1/kernel"]  # ERK keeps small layers denser
  saved = json.loads((tmp_path / "config.json").read_text())["config"]["prune"]
  assert saved["distribution"] == "erk" and (mode == "static" or saved["update_end"] == 150)
  assert (tmp_path / "masks" / "round_01.npz").exists()  # the round's final masks, as any round's


@pytest.mark.parametrize("fields, message", [
    ({"prune.mode": "iterative", "prune.densities": (0.5, 0.2, 0.1), "prune.distribution": "erk"},
     "^prune.distribution: spreads the density of"),
    ({"prune.sparsity_type": "units"},
     "^prune.sparsity_type: units sparsity is pruned by prune.mode 'gmp', 'iterative', 'ste', not by 'rigl'"),
    ({"prune.sparsity_type": "3:3"}, "^prune.sparsity_type: N:M sparsity needs 0 < N < M"),
    ({"prune.mode": "gmp", "prune.sparsity_type": "2:4"}, "^prune.sparsity_type: 2:4 sparsity has one density"),
    ({"prune.update_end": 500}, r"^prune.update_end: \(500\) is beyond the run"),
    ({"prune.update_begin": 150}, r"^prune.update_begin: \(150\) must come before the last update \(3/4 of"),
    ({"prune.update_every": 400}, r"^prune.update_every: \(ΔT=400\) is longer than the updates' span"),
    ({"prune.drop_fraction": 1.0}, r"^prune.drop_fraction: must be in \(0.0, 1.0\)"),
    ({"prune.distribution": "gaussian"}, "^prune.distribution: must be one of"),
])
def test_bad_sparse_training_fields_are_one_line(fields, message):
  with pytest.raises(experiment.UsageError, match=message) as e:
    experiment.validate(_cfg("rigl", **fields))
  assert "\n" not in str(e.value)


def test_what_only_the_network_can_refuse_is_refused_before_writing(tmp_path):
  # Only the network's shapes tell that a block does not fit a layer.
  with pytest.raises(experiment.UsageError, match=r"^prune: block:512x64 blocks do not fit fc2/kernel") as e:
    experiment.train_and_evaluate(_cfg("gmp", **{"prune.sparsity_type": "block:512x64"}), tmp_path / "w", log=QUIET)
  assert "\n" not in str(e.value) and not (tmp_path / "w" / "results.jsonl").exists()
