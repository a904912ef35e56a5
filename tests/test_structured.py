"""IMP by structure: units (with their outgoing weights), N:M walked down round by round, random-mask
controls shuffled within the structure, conv channels chained, and what cannot work refused first."""

import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ltjax.core import structure, tickets
from ltjax.core.pruning import PruningError
from ltjax.methods import structured
from ltjax.models import conv
from ltjax.runs import experiment, results
from tests.conftest import shared_data_dir, tiny_lottery_config

QUIET = lambda _: None  # noqa: E731
needs_mnist = pytest.mark.skipif(shared_data_dir() is None, reason="needs the shared MNIST")


def _masks(workdir, r):
  with np.load(workdir / "masks" / f"round_{r:02d}.npz") as blob:
    return results.unpack_masks({k: blob[k] for k in blob.files})


# ---------------------------------------------------------------- shuffles within a structure
@pytest.mark.parametrize("spec", ["unstructured", "2:4", "units", "block:2x3"])
def test_shuffles_keep_the_live_count_of_their_structure(spec):
  kind = structure.parse(spec)
  scores = jax.random.uniform(jax.random.key(1), (8, 12))
  alive = kind.select(scores, jnp.ones((8, 12), bool), 2 if spec in ("units", "block:2x3") else 40)
  drawn = kind.shuffle(alive, jax.random.key(2))
  assert int(drawn.sum()) == int(alive.sum())
  assert not np.array_equal(drawn, alive)
  if spec == "2:4":
    assert (np.asarray(drawn).reshape(2, 4, 12).sum(1) == 2).all()
  if spec == "units":
    assert set(np.asarray(drawn).sum(0)) == {0, 8}  # whole columns


def test_a_conv_nets_channels_chain_into_its_dense_layers():
  shapes = jax.eval_shape(conv.conv2().init, jax.random.key(0), jnp.zeros((1, 8, 8, 3)))["params"]
  chain = structure.unit_chain(shapes)
  names = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(shapes)[0]]
  assert [names[i] for i in chain] == [f"['{n}']['kernel']" for n in ("conv1", "conv2", "fc1", "fc2", "out")]
  conv2 = jnp.ones((3, 3, 64, 64), bool).at[..., 5].set(False)
  fc1 = structure.couple(conv2, jnp.ones((4 * 4 * 64, 256), bool))  # 8x8 pooled to 4x4, NHWC flattened
  assert not fc1[5::64].any() and fc1.sum() == (4 * 4 * 63) * 256
  conv1 = jnp.ones((3, 3, 3, 64), bool).at[..., 7].set(False)
  assert not structure.couple(conv1, jnp.ones((3, 3, 64, 64), bool))[:, :, 7].any()


def test_shuffled_units_take_their_outgoing_weights_along():
  mask = {"fc1": {"kernel": jnp.ones((6, 4), bool).at[:, 1].set(False)},
          "out": {"kernel": jnp.ones((4, 3), bool).at[1].set(False)}}
  roles = {"fc1": {"kernel": "fc"}, "out": {"kernel": "output"}}
  kind = structure.parse("units")
  chain = structure.unit_chain(mask)
  for seed in range(4):
    m = tickets.shuffle_mask(mask, roles, jax.random.key(seed), kind, chain)
    dead = ~np.asarray(m["fc1"]["kernel"]).any(0)
    assert dead.sum() == 1 and not np.asarray(m["out"]["kernel"])[dead].any()
    assert np.asarray(m["out"]["kernel"]).any(0).all()  # the classes stay


# ---------------------------------------------------------------- the lottery binary
@needs_mnist
def test_units_imp_prunes_whole_units_and_its_controls_keep_their_counts(tmp_path):
  cfg = tiny_lottery_config(**{"prune.sparsity_type": "units", "prune.rounds": 2, "train.steps": 100,
                               "controls": ("reinit", "random_mask"), "trials": 1})
  recs = experiment.train_and_evaluate(cfg, tmp_path, log=QUIET)
  for r, units in ((1, (60, 20)), (2, (48, 16))):  # fc 20% per round of the 75 and 25 units (quarter width)
    m = _masks(tmp_path, r)
    fc1, fc2, out = (np.asarray(m[f"{n}/kernel"][0]) for n in ("fc1", "fc2", "out"))
    assert (fc1.any(0).sum(), fc2.any(0).sum()) == units and out.any(0).all()
    assert not fc2[~fc1.any(0)].any() and not out[~fc2.any(0)].any()  # outgoing weights went along
    assert fc1[:, fc1.any(0)].all()  # a live unit keeps every input
    kinds = {rec["kind"]: rec["density"] for rec in recs if rec["round"] == r}
    assert kinds["random_mask"] == pytest.approx(kinds["ticket"]) == kinds["reinit"]


@needs_mnist
def test_n_of_m_imp_walks_down_to_its_pattern(tmp_path):
  cfg = tiny_lottery_config(**{"prune.sparsity_type": "2:4", "prune.rounds": 2, "train.steps": 100,
                               "controls": ("random_mask",), "trials": 1,
                               "model_kwargs.width": 0.4})  # 120-40 units: every layer's inputs in 4s
  recs = experiment.train_and_evaluate(cfg, tmp_path, log=QUIET)
  for r, n in ((1, 3), (2, 2)):
    m = _masks(tmp_path, r)
    for name in ("fc1", "fc2", "out"):
      k = np.asarray(m[f"{name}/kernel"][0])
      assert (k.reshape(k.shape[0] // 4, 4, k.shape[1]).sum(1) == n).all(), (r, name)
  last = {rec["kind"]: rec["density"] for rec in recs if rec["round"] == 2}
  assert last["ticket"] == pytest.approx(0.5) and last["random_mask"] == pytest.approx(0.5)


@needs_mnist
@pytest.mark.parametrize("fields, message", [
    ({"prune.sparsity_type": "2:4", "prune.rounds": 3}, "2:4 IMP keeps one weight fewer per group of 4 each round"),
    ({"prune.sparsity_type": "units", "prune.scope": "global"}, "use prune.scope='layerwise'"),
    ({"prune.sparsity_type": "units", "prune.score": "snip"}, "'snip' needs the network"),
    ({"prune.sparsity_type": "units", "prune.fc_rate": 0.9}, "fc1/kernel by units at rate 0.9 leaves none after"),
    ({"prune.sparsity_type": "block:500x4"}, "block:500x4 blocks do not fit fc2/kernel"),
    ({"prune.sparsity_type": "3:7", "prune.rounds": 4}, "3:7 sparsity groups 7 inputs"),
])
def test_structured_imp_that_cannot_work_is_one_line_before_writing(tmp_path, fields, message):
  with pytest.raises(experiment.UsageError, match=message) as e:
    experiment.train_and_evaluate(tiny_lottery_config(**fields), tmp_path, log=QUIET)
  assert "\n" not in str(e.value) and not (tmp_path / "results.jsonl").exists()


def test_a_mode_without_a_structure_refuses_it():
  with pytest.raises(experiment.UsageError, match="units sparsity is pruned by prune.mode 'gmp', 'iterative', "
                                                  "'ste', not by 'oneshot'"):
    experiment.validate(tiny_lottery_config(**{"prune.mode": "oneshot", "prune.sparsity_type": "units"}))


def test_groups_rank_by_their_live_weights_only():
  # Column 0's dead weights carry a large score (a movement score's |0 - w_init|): it must not count.
  scores = jnp.array([[9.0, 1.0], [0.1, 1.0]])
  alive = jnp.array([[False, True], [True, True]])
  kept = structure.parse("units").select(scores, alive, 1)
  assert np.array_equal(kept, [[False, True], [False, True]])
  with pytest.raises(PruningError):
    structure.unit_chain({"head": {"kernel": jnp.ones((2, 2))}})


def test_units_imp_prunes_a_conv_nets_channels_and_what_they_feed():
  module = conv.ConvNet(filters=(8, 8), hidden=(10,), num_classes=3)
  params = module.init(jax.random.key(0), jnp.zeros((1, 4, 4, 3)))["params"]
  stack = lambda tree: jax.tree.map(lambda x: jnp.stack([x, 2 * x]), tree)  # noqa: E731 -- two trials
  roles = {n: {"kernel": "conv" if n.startswith("conv") else "output" if n == "out" else "fc", "bias": "fixed"}
           for n in params}
  rates = {n: {"kernel": {"conv": 0.25, "fc": 0.2, "output": 0.1}[roles[n]["kernel"]], "bias": 0.0} for n in params}
  cfg = ml_collections.ConfigDict({"prune": {"sparsity_type": "units", "score": "magnitude"}})
  ones = jax.tree.map(lambda p: jnp.ones(p.shape, bool), stack(params))
  request = types.SimpleNamespace(
      setup=types.SimpleNamespace(cfg=cfg, rates=rates, roles=roles, points=None), round_index=0,
      key=jax.random.key(1),
      trained=stack(params), lineage=types.SimpleNamespace(mask=ones, init_params=stack(params)))
  m = structured.prune_trials(request)
  c1, c2, fc1, out = (np.asarray(m[n]["kernel"]) for n in ("conv1", "conv2", "fc1", "out"))
  assert (c1.any((1, 2, 3)).sum(-1) == 6).all() and (c2.any((1, 2, 3)).sum(-1) == 6).all()  # 8 - 25%
  assert (fc1.any(1).sum(-1) == 8).all() and out.any(1).all()  # 10 - 20% units; the classes stay
  for t in range(2):
    assert not c2[t][:, :, ~c1[t].any((0, 1, 2))].any()  # conv1's pruned channels feed nothing
    dead = ~c2[t].any((0, 1, 2))
    assert not fc1[t].reshape(-1, 8, 10)[:, dead].any()  # nor do conv2's, through the flatten
  assert np.array_equal(c1[0], c1[1])  # the same ranking at twice the weights


def test_rounds_of_units_imp_on_one_network_export_to_a_narrower_conv_net():
  # benchmarks.inference's path: next_masks round after round on one network (stacked as one
  # trial), then export; the exported widths are the live channel and unit counts.
  from ltjax.core import pruning
  from ltjax.models import export
  module = conv.ConvNet(filters=(8, 8), hidden=(10,), num_classes=3)
  params = module.init(jax.random.key(0), jnp.zeros((1, 4, 4, 3)))["params"]
  roles = {n: {"kernel": "conv" if n.startswith("conv") else "output" if n == "out" else "fc", "bias": "fixed"}
           for n in params}
  rates = pruning.rates_tree(roles, {"conv": 0.25, "fc": 0.2, "output": 0.1})
  kind = structure.parse("units")
  chain = structure.unit_chain(params)
  one = lambda tree: jax.tree.map(lambda x: x[None], tree)  # noqa: E731
  mask = one(jax.tree.map(lambda p: jnp.ones(p.shape, bool), params))
  for r in range(2):
    mask = structured.next_masks(kind, chain, one(jax.tree.map(jnp.abs, params)), mask, rates, roles, r)
  mask = jax.tree.map(lambda x: x[0], mask)
  widths = [int(np.asarray(mask[n]["kernel"]).any(axis=tuple(range(mask[n]["kernel"].ndim - 1))).sum())
            for n in ("conv1", "conv2", "fc1")]
  assert widths == [4, 4, 6]  # 8 -> 6 -> 4 channels (25% of each round's live ones), 10 -> 8 -> 6 units
  small = export.export(module, params, mask)
  assert (small.module.filters, small.module.hidden) == ((4, 4), (6,))
  x = jax.random.normal(jax.random.key(2), (5, 4, 4, 3))
  masked = module.apply({"params": jax.tree.map(lambda p, m: p * m, params, mask)}, x)
  np.testing.assert_allclose(small.apply(x), masked, atol=1e-5)
