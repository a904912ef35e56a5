"""Straight-through pruning: dense weights, a masked forward pass, the gradient through the mask,
masks chosen again among all weights; and the lottery mode 'ste' on it."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ltjax.core import masks
from ltjax.engine import train
from ltjax.methods import gradual, straight_through
from ltjax.runs import experiment
from tests.conftest import shared_data_dir, tiny_lottery_config

QUIET = lambda _: None  # noqa: E731


def _setup(small_mlp, update, k=2, lr=1e-2):
  _, module, init, _ = small_mlp
  trainer = train.Trainer(module, optax.sgd(lr), batch_size=30, mask_updates=update)
  keys = jax.random.split(jax.random.key(3), k)
  params = jax.vmap(init)(keys)
  return trainer, trainer.init_states(params, jax.vmap(masks.ones)(params), jax.vmap(lambda _: {})(keys), keys)


def test_the_gradient_of_the_masked_network_reaches_every_weight(small_mlp, tiny_data):
  _, module, init, roles = small_mlp
  update = straight_through.straight_through(jax.eval_shape(init, jax.random.key(0)), roles, 0.3, 0, 40, 20, 60)
  trainer, states = _setup(small_mlp, update, k=1)
  one = jax.tree.map(lambda x: x[0], states)
  # A sparse mask, the weights still dense (jitted: eagerly, every op compiles on its own).
  one = one.replace(mask=jax.jit(update.masks_of, static_argnums=2)(one.params, one.mask, 1))
  images, labels = tiny_data.train.images[:30], tiny_data.train.labels[:30]
  new, _ = jax.jit(trainer.train_step)(one, images, labels, 0)

  def loss(net):  # the masked network's loss, differentiated in its own (masked) weights
    return train.cross_entropy(module.apply({"params": net}, images), labels)
  grads = jax.jit(jax.grad(loss))(masks.apply(one.params, one.mask))
  for before, after, g, m in zip(*(jax.tree.leaves(t) for t in (one.params, new.params, grads, one.mask))):
    np.testing.assert_allclose(after, before - 1e-2 * g, rtol=1e-5, atol=1e-7)  # pruned ones too
  pruned = [np.asarray(p)[~np.asarray(m)] for p, m in zip(jax.tree.leaves(new.params), jax.tree.leaves(one.mask))]
  assert any(np.count_nonzero(p) for p in pruned)  # the stored weights stay dense...
  network = trainer.network(new)
  assert all(not np.asarray(p)[~np.asarray(m)].any()  # ...the network runs them masked
             for p, m in zip(jax.tree.leaves(network), jax.tree.leaves(new.mask)))


@pytest.mark.parametrize("sparsity_type", ["unstructured", "2:4", "units"])
def test_masks_follow_the_weights_with_exact_counts(small_mlp, tiny_data, sparsity_type):
  _, _, init, roles = small_mlp
  update = straight_through.straight_through(jax.eval_shape(init, jax.random.key(0)), roles, 0.3, 0, 40, 20, 100,
                                             sparsity_type=sparsity_type)
  assert update.steps == ((1, 20, 40, 60, 80, 100) if sparsity_type == "2:4" else (20, 40, 60, 80, 100))
  trainer, states = _setup(small_mlp, update, lr=0.1)
  history = []
  for stop in (20, 40, 60, 80, 100):
    states, _, _ = trainer.train(states, tiny_data, 100, 20, start_step=stop - 20, stop_step=stop)
    one = jax.tree.map(lambda x: np.asarray(x[0]), states)
    history.append(jax.tree.leaves(one.mask))
    if sparsity_type == "2:4":  # every group of 4 inputs keeps its 2 largest weights in every column
      for p, m in zip(jax.tree.leaves(one.params), jax.tree.leaves(one.mask)):
        if p.ndim == 2 and m.shape[-1] != 10:
          assert (m.reshape(-1, 4, m.shape[-1]).sum(1) == 2).all()
          top = np.sort(np.abs(p).reshape(-1, 4, p.shape[-1]), axis=1)[:, 2:, :].min(1)
          assert (np.abs(p).reshape(-1, 4, p.shape[-1])[m.reshape(-1, 4, m.shape[-1])].size > 0 and
                  np.all(np.where(m.reshape(-1, 4, m.shape[-1]), np.abs(p).reshape(-1, 4, p.shape[-1]),
                                  np.inf) >= top[:, None, :]))
    else:
      row = update.keep[update.steps.index(stop)]
      np.testing.assert_array_equal(gradual.kept(update, one.mask), np.array(row))
  if sparsity_type == "unstructured":  # at a held density, weights leave the mask and others come back
    changed = [np.any(a & ~b) for a, b in zip(history[-1], history[-2])]
    assert any(changed)


def test_bad_straight_through_schedules_are_one_line(small_mlp):
  _, _, init, roles = small_mlp
  shapes = jax.eval_shape(init, jax.random.key(0))
  with pytest.raises(Exception, match="^polynomial schedule: end=120 is after the run's last step"):
    straight_through.straight_through(shapes, roles, 0.3, 0, 120, 20, 100)
  with pytest.raises(Exception, match="^3:8 sparsity groups 8 inputs, but fc1/kernel has 36"):
    straight_through.straight_through(shapes, roles, 0.3, 0, 40, 20, 100, sparsity_type="3:8")


# ---------------------------------------------------------------- the lottery mode
needs_mnist = pytest.mark.skipif(shared_data_dir() is None, reason="needs the shared MNIST")


def _cfg(**overrides):
  return tiny_lottery_config(**{"prune.mode": "ste", "prune.densities": (0.2,), "trials": 1, "controls": (),
                                "train.steps": 200, "train.eval_every": 50, "prune.update_every": 50,
                                "prune.update_end": 100, **overrides})


@needs_mnist
def test_ste_reaches_its_density_and_records_the_masked_network(tmp_path):
  recs = experiment.train_and_evaluate(_cfg(), tmp_path, log=QUIET)
  pruned = [r for r in recs if r["round"] == 1]
  assert pruned[0]["density"] == pytest.approx(0.2, abs=1e-3)
  assert pruned[0]["early_stop_step"] >= 100 and pruned[0]["test_accuracy"] > 0.5


@needs_mnist
@pytest.mark.parametrize("fields, message", [
    ({"prune.sparsity_type": "2:4"}, r"^prune: 2:4 sparsity keeps 0.5 of the weights; prune.densities \(0.2,\)"),
    ({"prune.sparsity_type": "3:7", "prune.densities": (3 / 7,)},
     r"^prune: 3:7 sparsity groups 7 inputs, but fc2/kernel has 75 inputs"),
    ({"prune.update_end": 300}, r"^prune.update_end: \(300\) is beyond the run"),
])
def test_what_cannot_work_is_refused_before_writing(tmp_path, fields, message):
  with pytest.raises(experiment.UsageError, match=message) as e:
    experiment.train_and_evaluate(_cfg(**fields), tmp_path / "w", log=QUIET)
  assert "\n" not in str(e.value) and not (tmp_path / "w" / "results.jsonl").exists()


# ---------------------------------------------------------------- the best step's own network
@dataclasses.dataclass(frozen=True)
class _Blackout:
  """Prunes every kernel weight after step `at` (the mask moves after the best step)."""
  at: int

  def __call__(self, trainer, state, images, labels, step):
    dark = jax.tree.map(lambda m: m & (step + 1 < self.at) | (m.ndim < 2), state.mask)
    return state.replace(mask=dark, params=masks.apply(state.params, dark))


@needs_mnist
def test_the_test_accuracy_is_the_best_steps_network_under_its_own_mask(tmp_path):
  from ltjax.methods import modes
  modes.register("_blackout", lambda req: modes.Found(jax.vmap(masks.ones)(req.lineage.init_params),
                                                      jnp.zeros(req.setup.cfg.trials, jnp.int32)),
                 trains=lambda setup, r: _Blackout(150))
  try:
    recs = experiment.train_and_evaluate(tiny_lottery_config(**{
        "prune.mode": "_blackout", "prune.densities": (0.5,), "trials": 1, "controls": ()}), tmp_path, log=QUIET)
  finally:
    modes._MODES.pop("_blackout")
  last = [r for r in recs if r["round"] == 1][0]
  assert last["early_stop_step"] <= 150 and last["test_accuracy"] > 0.5  # the network it validated
  assert last["final_test_accuracy"] < 0.3  # the final mask's: no kernel weight left
