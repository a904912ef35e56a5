"""Masks found by another run (prune.mode='given'): trained at the source's densities they are the
source's tickets; another network, a missing round or too few trials are refused before writing."""

import json

import numpy as np
import pytest

from ltjax.runs import experiment, validation
from tests.conftest import assert_same_run, read_workdir, shared_data_dir, tiny_lottery_config

QUIET = lambda _: None  # noqa: E731
needs_mnist = pytest.mark.skipif(shared_data_dir() is None, reason="needs the shared MNIST")


def _source(run_once):
  """A finished two-round IMP run (2 trials, no controls), made once per pytest run."""
  cfg = tiny_lottery_config(**{"prune.rounds": 2, "train.steps": 100, "controls": ()})
  return cfg, run_once("given_source", lambda w: experiment.train_and_evaluate(cfg, w, log=QUIET))


def _densities(workdir):
  recs = [json.loads(x) for x in (workdir / "results.jsonl").read_text().splitlines()]
  return {r["round"]: r["density"] for r in recs if r["kind"] == "ticket"}


def _given(cfg, source, densities, **fields):
  """`cfg` training `source`'s masks at `densities`; `fields` are dotted overrides."""
  out = cfg.copy_and_resolve_references()
  out.prune.mode, out.prune.masks_from, out.prune.densities = "given", str(source), tuple(densities)
  for key, value in fields.items():
    node, last = validation.field_parent(out, key)
    node[last] = value
  return out


@needs_mnist
def test_the_sources_masks_at_its_densities_train_into_its_tickets(run_once, tmp_path):
  # Same network, seed and round numbers: each round's ticket is the source's, bit for bit (theta_0,
  # mask, data order), records (the mask's finding cost included), curves and masks.
  cfg, source = _source(run_once)
  d = _densities(source)
  experiment.train_and_evaluate(_given(cfg, source, (d[1], d[2])), tmp_path / "given", log=QUIET)
  assert_same_run(tmp_path / "given", source)


@needs_mnist
def test_a_density_picks_the_nearest_round_and_controls_train_beside_it(run_once, tmp_path):
  cfg, source = _source(run_once)
  d = _densities(source)
  got = experiment.train_and_evaluate(_given(cfg, source, (d[2] * 1.01,), **{"trials": 1, "controls": ("reinit",),
                                                                            "reinit_draws": 1}),
                                      tmp_path, log=QUIET)
  assert sorted((r["round"], r["kind"]) for r in got) == [(0, "ticket"), (1, "reinit"), (1, "ticket")]
  assert all(r["density"] == pytest.approx(d[2]) for r in got if r["round"] == 1)
  _, _, mine = read_workdir(tmp_path)
  _, _, theirs = read_workdir(source)
  for key, m in mine["round_01.npz"].items():  # trial 0's mask (bit-packed rows, then each leaf's shape)
    np.testing.assert_array_equal(m, theirs["round_02.npz"][key] if key.startswith("shape:")
                                  else theirs["round_02.npz"][key][:1], err_msg=key)


@needs_mnist
@pytest.mark.parametrize("fields, message", [
    ({"prune.masks_from": lambda source, d: str(source / "nowhere")}, "is not a directory"),
    ({"prune.masks_from": lambda source, d: str(source / "masks")}, "holds no results.jsonl"),
    ({"prune.densities": lambda source, d: (d[1] / 2,)}, "has no round at density"),
    ({"trials": 3}, "has 2 trial"),
    ({"model_kwargs.width": 0.5}, "this network's is"),
])
def test_masks_that_cannot_be_trained_here_are_one_line_before_writing(run_once, tmp_path, fields, message):
  cfg, source = _source(run_once)
  d = _densities(source)
  given = _given(cfg, source, (d[1],), **{k: v(source, d) if callable(v) else v for k, v in fields.items()})
  with pytest.raises(experiment.UsageError, match=message) as e:
    experiment.train_and_evaluate(given, tmp_path / "w", log=QUIET)
  assert "\n" not in str(e.value) and "prune.masks_from" in str(e.value)
  assert not (tmp_path / "w" / "results.jsonl").exists()
