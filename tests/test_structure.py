"""Sparsity types: single weights, N:M, whole units and blocks, each with exact counts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ltjax.core import pruning, structure


def _scores(shape, seed=0):
  return jax.random.normal(jax.random.key(seed), shape)


def test_spellings_parse_and_print_back():
  for spec in ("unstructured", "units", "2:4", "1:4", "block:4x4", "block:1x8"):
    assert str(structure.parse(spec)) == spec


@pytest.mark.parametrize("spec", ["4:4", "0:4", "5:4", "block:1x1", "block:0x4", "channels", "2-4", None])
def test_bad_spellings_are_one_line(spec):
  with pytest.raises(pruning.PruningError) as e:
    structure.parse(spec)
  assert "\n" not in str(e.value)


def test_unstructured_keeps_exactly_the_best_live_weights():
  s, alive = _scores((30, 20)), jnp.ones((30, 20), bool).at[0, :5].set(False)
  got = structure.parse("unstructured").select(s, alive, 100)
  assert int(got.sum()) == 100 and not bool(got[0, :5].any())
  assert float(jnp.min(jnp.where(got, s, jnp.inf))) >= float(jnp.max(jnp.where(alive & ~got, s, -jnp.inf)))


@pytest.mark.parametrize("shape", [(16, 6), (3, 3, 8, 5)])
@pytest.mark.parametrize("n, m", [(2, 4), (1, 4), (3, 8)])
def test_n_of_m_keeps_the_n_best_of_every_group_of_m_inputs(shape, n, m):
  s = _scores(shape)
  got = np.asarray(structure.parse(f"{n}:{m}").select(s, jnp.ones(shape, bool), None))
  groups = lambda x: np.moveaxis(np.asarray(x).reshape(shape[:-2] + (shape[-2] // m, m, shape[-1])), -2, -1)  # noqa: E731
  g, gs = groups(got), groups(s)
  assert np.all(g.sum(-1) == n)
  want = np.argsort(-gs, axis=-1, kind="stable")[..., :n]
  assert np.all(np.take_along_axis(g, want, axis=-1))
  assert structure.parse(f"{n}:{m}").density(shape, 0) == n / m


def test_n_of_m_respects_dead_weights_and_breaks_ties_to_the_lower_index():
  s = jnp.zeros((4, 1))  # all tied
  assert structure.parse("2:4").select(s, jnp.ones((4, 1), bool), None)[:, 0].tolist() == [True, True, False, False]
  alive = jnp.array([[False], [True], [False], [True]])
  got = structure.parse("2:4").select(jnp.arange(4.0)[:, None], alive, None)
  assert got[:, 0].tolist() == [False, True, False, True]  # dead weights stay dead, however they score
  one = structure.parse("1:4").select(jnp.arange(4.0)[:, None], alive, None)
  assert one[:, 0].tolist() == [False, False, False, True]


def test_units_prune_whole_output_columns_by_their_mean_score():
  s = jnp.tile(jnp.array([3.0, 1.0, 2.0, 0.5, 4.0]), (6, 1))
  got = structure.parse("units").select(s, jnp.ones((6, 5), bool), 3)
  assert got.all(axis=0).tolist() == [True, False, True, False, True] and not got[:, [1, 3]].any()
  again = structure.parse("units").select(-s, got, 2)  # pruned units stay pruned, whatever they score now
  assert again.all(axis=0).tolist() == [True, False, True, False, False]
  conv = structure.parse("units").select(_scores((3, 3, 4, 8)), jnp.ones((3, 3, 4, 8), bool), 5)
  assert int(conv.all(axis=(0, 1, 2)).sum()) == 5 and bool(jnp.all(conv == conv.all(axis=(0, 1, 2))))


def test_blocks_live_or_die_whole_with_smaller_edge_blocks():
  b = structure.parse("block:4x4")
  assert b.num_groups((10, 10)) == 9
  got = np.asarray(b.select(_scores((10, 10)), jnp.ones((10, 10), bool), 4))
  ids = b.group_ids((10, 10))
  per_block = [np.unique(got[ids == i]) for i in range(9)]
  assert all(len(u) == 1 for u in per_block) and sum(bool(u[0]) for u in per_block) == 4


def test_selection_maps_over_tickets():
  s = jnp.stack([_scores((8, 4), i) for i in range(3)])
  got = jax.vmap(lambda x: structure.parse("units").select(x, jnp.ones((8, 4), bool), 2))(s)
  assert got.shape == (3, 8, 4) and np.all(np.asarray(got).all(axis=1).sum(-1) == 2)


def test_shapes_a_type_cannot_prune_are_one_line():
  with pytest.raises(pruning.PruningError, match="300 inputs .not a multiple of 8"):
    structure.parse("1:8").check((300, 100), "fc2/kernel")
  with pytest.raises(pruning.PruningError, match="input and output axes"):
    structure.parse("units").check((300,), "bias")
  with pytest.raises(pruning.PruningError, match=r"block:8x8 blocks do not fit out, a \[16, 4\] kernel"):
    structure.parse("block:8x8").check((16, 4), "out")
