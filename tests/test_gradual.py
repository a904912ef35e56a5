"""Gradual magnitude pruning inside the compiled loop: exact counts at every update, on the ticket axis."""

import jax
import numpy as np
import optax
import pytest

from ltjax.core import masks, pruning, schedules
from ltjax.engine import train
from ltjax.methods import gradual


def _states(small_mlp, trainer, k):
  _, _, init, _ = small_mlp
  keys = jax.random.split(jax.random.key(3), k)
  params = jax.vmap(init)(keys)
  return params, trainer.init_states(params, jax.vmap(masks.ones)(params), jax.vmap(lambda _: {})(keys), keys)


@pytest.mark.parametrize("sparsity_type, distribution", [("unstructured", "uniform"), ("unstructured", "erk"),
                                                         ("units", "uniform"), ("block:2x2", "uniform")])
def test_every_update_keeps_its_table_entry_and_pruned_weights_stay_zero(small_mlp, tiny_data, sparsity_type,
                                                                           distribution):
  _, module, init, roles = small_mlp
  shapes = jax.eval_shape(init, jax.random.key(0))
  sched = schedules.Polynomial(initial=0.0, final=0.8, begin=20, end=80, every=20)
  update = gradual.gradual_pruning(shapes, roles, sched, steps=100, distribution=distribution,
                                   sparsity_type=sparsity_type)
  assert update.steps == (20, 40, 60, 80)
  trainer = train.Trainer(module, optax.adam(1e-2), batch_size=30, mask_updates=update)
  params, states = _states(small_mlp, trainer, k=2)
  previous = None
  for u, stop in enumerate((20, 40, 60, 80, 100)):  # each call ends on an update step (or the end)
    states, _, _ = trainer.train(states, tiny_data, 100, 20, start_step=stop - 20, stop_step=stop)
    for t in range(2):
      one = jax.tree.map(lambda x: x[t], states)
      np.testing.assert_array_equal(gradual.kept(update, one.mask), np.array(update.keep[min(u, 3)]))
      assert all(bool(np.all(np.where(m, True, p == 0.0)))
                 for p, m in zip(jax.tree.leaves(one.params), jax.tree.leaves(one.mask)))
    if previous is not None:  # pruned weights stay pruned
      assert all(bool(np.all(np.asarray(n) <= o)) for n, o in zip(jax.tree.leaves(states.mask), previous))
    previous = [np.asarray(m) for m in jax.tree.leaves(states.mask)]  # (the next call donates the states)
  one = jax.tree.map(lambda x: np.asarray(x[0]), states.mask)
  if sparsity_type != "units":
    assert float(masks.density(one, roles)) == pytest.approx(0.2, abs=0.06)  # blocks round per layer
    return
  # Units: 20% of each hidden layer's units live, the output layer's (the classes) all; a pruned
  # unit's outgoing weights go with it, so its constant output reaches nothing.
  fc1, fc2 = one["fc1"]["kernel"].any(0), one["fc2"]["kernel"].any(0)
  assert (fc1.sum(), fc2.sum()) == (round(0.2 * 16), round(0.2 * 8)) and one["out"]["kernel"].any(0).all()
  assert not one["fc2"]["kernel"][~fc1].any() and not one["out"]["kernel"][~fc2].any()


def test_tickets_side_by_side_prune_as_each_would_alone(small_mlp, tiny_data):
  _, module, init, roles = small_mlp
  sched = schedules.Polynomial(0.0, 0.7, begin=10, end=50, every=10)
  update = gradual.gradual_pruning(jax.eval_shape(init, jax.random.key(0)), roles, sched, steps=60)
  trainer = train.Trainer(module, optax.adam(1e-2), batch_size=30, mask_updates=update)
  _, states = _states(small_mlp, trainer, k=3)
  alone = jax.tree.map(lambda x: x[1:2].copy(), states)
  both, _, _ = trainer.train(states, tiny_data, 60, 20)
  one, _, _ = trainer.train(alone, tiny_data, 60, 20)
  for a, b in zip(jax.tree.leaves(both.mask), jax.tree.leaves(one.mask)):
    np.testing.assert_array_equal(np.asarray(a)[1], np.asarray(b)[0])
  for a, b in zip(jax.tree.leaves(both.params), jax.tree.leaves(one.params)):
    np.testing.assert_allclose(np.asarray(a)[1], np.asarray(b)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    ({"sparsity_type": "2:4"}, "has one density"),
    ({"sparsity_type": "3:7"}, "has one density"),
    ({"schedule": schedules.Polynomial(0.0, 0.8, 0, 500, 100)}, "after the run's last step"),
    ({"schedule": schedules.Polynomial(0.0, 0.8, 0, 50, 100)}, "ΔT=100 must be in"),
    ({"distribution": "erk", "roles": "fixed"}, "no prunable layer"),
    ({"schedule": schedules.Polynomial(0.5, 0.8, 0, 50, 10)}, "must start dense"),
    ({"sparsity_type": "units", "distribution": "erk"}, "keeps the same fraction of every hidden layer"),
    ({"sparsity_type": "units", "rename": True}, "needs to know which layer feeds which"),
])
def test_combinations_that_cannot_work_are_one_line(small_mlp, kwargs, message):
  _, _, init, roles = small_mlp
  shapes = jax.eval_shape(init, jax.random.key(0))
  if kwargs.pop("roles", None) == "fixed":
    roles = jax.tree.map(lambda _: "fixed", roles)
  if kwargs.pop("rename", False):  # a network whose layer order ltjax does not know
    shapes, roles = ({f"layer_{k}": v for k, v in tree.items()} for tree in (shapes, roles))
  args = {"schedule": schedules.Polynomial(0.0, 0.8, 0, 50, 10), "steps": 100, **kwargs}
  with pytest.raises(pruning.PruningError, match=message) as e:
    gradual.gradual_pruning(shapes, roles, **args)
  assert "\n" not in str(e.value)
