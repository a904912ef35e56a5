"""SET and RigL in the compiled loop: exact live counts, regrowth from 0 with fresh optimizer state,
RigL's regrowth by the dense gradient, tickets side by side as alone, one-line refusals."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ltjax.core import distributions, masks, pruning, schedules
from ltjax.engine import train
from ltjax.methods import dynamic


def _setup(small_mlp, method, k=2, every=10, end=60, steps=80):
  _, module, init, roles = small_mlp
  shapes = jax.eval_shape(init, jax.random.key(0))
  update = dynamic.dynamic_sparse(shapes, roles, 0.3, method, schedules.CosineDrop(0.3, end, every), steps)
  trainer = train.Trainer(module, optax.adam(1e-2), batch_size=30, mask_updates=update)
  keys = jax.random.split(jax.random.key(5), k)
  params = jax.vmap(init)(keys)
  mask = dynamic.random_masks(jax.random.key(9), shapes, roles, 0.3, "erk", tickets=k)
  states = trainer.init_states(params, mask, jax.vmap(lambda _: {})(keys), keys)
  counts = jax.tree.leaves(distributions.keep_counts(shapes, distributions.layer_densities(shapes, roles, 0.3, "erk")))
  return trainer, update, states, counts


def _live(mask):
  return [np.asarray(m).reshape(m.shape[0], -1).sum(1) for m in jax.tree.leaves(mask)]


@pytest.mark.parametrize("method", ["set", "rigl"])
def test_every_update_swaps_weights_and_keeps_each_layers_exact_count(small_mlp, tiny_data, method):
  trainer, update, states, counts = _setup(small_mlp, method)
  assert update.steps == (10, 20, 30, 40, 50) and update.swap[0][1] > update.swap[-1][1] > 0
  start = [np.asarray(m) for m in jax.tree.leaves(states.mask)]
  assert [int(x[0]) for x in _live(states.mask)] == counts
  for a, b in ((0, 10), (10, 20), (20, 80)):  # calls that end on an update step, then past the last
    states, _, _ = trainer.train(states, tiny_data, 80, 10, start_step=a, stop_step=b)
    assert all(np.all(x == c) for x, c in zip(_live(states.mask), counts))
    assert all(bool(np.all(np.where(m, True, p == 0.0)))
               for p, m in zip(jax.tree.leaves(states.params), jax.tree.leaves(states.mask)))
  moved = sum(int((np.asarray(m) != s).sum()) for m, s in zip(jax.tree.leaves(states.mask), start))
  assert moved > 0


def test_regrown_weights_start_at_zero_with_fresh_adam_moments_and_rigl_grows_by_the_dense_gradient(
    small_mlp, tiny_data):
  trainer, update, states, _ = _setup(small_mlp, "rigl", k=1)
  one = jax.tree.map(lambda x: x[0], states)
  one, _ = jax.jit(trainer.train_step)(one, tiny_data.normalize(tiny_data.train.images[:30]),
                                       tiny_data.train.labels[:30], 0)  # moments become non-zero
  x, y = tiny_data.normalize(tiny_data.train.images[30:60]), tiny_data.train.labels[30:60]
  after = jax.jit(lambda st: update.update(trainer, st, x, y, 0, 9))(one)
  grads = jax.jit(lambda st: dynamic.dense_gradient(trainer, st, x, y, 9))(one)
  mu = optax.tree_utils.tree_get(after.opt_state, "mu")
  for m0, m1, p0, p, g, w, k in zip(
      jax.tree.leaves(one.mask), jax.tree.leaves(after.mask), jax.tree.leaves(one.params),
      jax.tree.leaves(after.params), jax.tree.leaves(grads), jax.tree.leaves(mu), update.swap[0]):
    if k < 0:
      assert bool(m1.all())
      continue
    # RigL by hand: drop the k smallest live magnitudes, grow the k largest |dense gradient| of the rest.
    kept = pruning.drop_lowest(jnp.abs(p0).ravel(), m0.ravel(), k)
    free = ~kept
    grown = free & ~pruning.drop_lowest(-jnp.abs(g).ravel(), free, k)
    np.testing.assert_array_equal(np.asarray(m1).ravel(), np.asarray(kept | grown))
    new = np.asarray(m1 & ~m0)
    assert int(np.asarray(m1).sum()) == int(np.asarray(m0).sum()) and new.any()
    assert np.all(np.asarray(p)[new] == 0.0) and np.all(np.asarray(w)[new] == 0.0)  # from 0, fresh moments
    assert np.any(np.asarray(w)[np.asarray(m1 & m0)] != 0.0)  # the others keep theirs


def test_tickets_side_by_side_swap_as_each_would_alone(small_mlp, tiny_data):
  trainer, _, states, _ = _setup(small_mlp, "set", k=3, steps=40, end=30)
  alone = jax.tree.map(lambda x: x[2:3].copy(), states)
  both, _, _ = trainer.train(states, tiny_data, 40, 20)
  one, _, _ = trainer.train(alone, tiny_data, 40, 20)
  for a, b in zip(jax.tree.leaves(both.mask), jax.tree.leaves(one.mask)):
    np.testing.assert_array_equal(np.asarray(a)[2], np.asarray(b)[0])


def test_random_masks_keep_the_distributions_exact_counts(small_mlp):
  _, _, init, roles = small_mlp
  shapes = jax.eval_shape(init, jax.random.key(0))
  m = dynamic.random_masks(jax.random.key(1), shapes, roles, 0.2, "uniform", tickets=4)
  dens = distributions.layer_densities(shapes, roles, 0.2, "uniform")
  counts = jax.tree.leaves(distributions.keep_counts(shapes, dens))
  assert all(np.all(x == c) for x, c in zip(_live(m), counts))
  assert not np.array_equal(np.asarray(jax.tree.leaves(m)[1][0]), np.asarray(jax.tree.leaves(m)[1][1]))
  assert float(masks.density(jax.tree.map(lambda x: x[0], m), roles)) == pytest.approx(0.2, abs=0.01)


@pytest.mark.parametrize("args, message", [
    ({"method": "snfs"}, "must be one of set, rigl"),
    ({"schedule": schedules.CosineDrop(1.2, 60, 10)}, r"drop fraction must be in \(0, 1\)"),
    ({"schedule": schedules.CosineDrop(0.3, 60, 100)}, "ΔT=100 must be in"),
    ({"schedule": schedules.CosineDrop(0.3, 500, 10)}, "after the run's last step"),
    ({"density": 1.0}, "nothing to drop and regrow"),
    ({"roles": "fixed"}, "no prunable layer"),
])
def test_bad_requests_are_one_line(small_mlp, args, message):
  _, _, init, roles = small_mlp
  if args.pop("roles", None) == "fixed":
    roles = jax.tree.map(lambda _: "fixed", roles)
  full = {"density": 0.3, "method": "rigl", "schedule": schedules.CosineDrop(0.3, 60, 10), "steps": 80, **args}
  with pytest.raises(pruning.PruningError, match=message) as e:
    dynamic.dynamic_sparse(jax.eval_shape(init, jax.random.key(0)), roles, **full)
  assert "\n" not in str(e.value)
