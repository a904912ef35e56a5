import jax
import jax.numpy as jnp
import numpy as np

from ltjax.core import masks, pruning, tickets


def _setup(small_mlp):
  spec, module, init, kinds = small_mlp
  params0 = init(jax.random.key(0))
  trained = jax.tree.map(lambda p: p + 0.3, params0)
  mask = pruning.prune_round(trained, params0, masks.ones(params0), kinds,
                             pruning.rates_tree(kinds, {"fc": 0.5, "output": 0.25}))
  return init, kinds, params0, trained, mask


def test_reset_gives_survivors_their_exact_init_values(small_mlp):
  init, kinds, params0, trained, mask = _setup(small_mlp)
  ticket = tickets.reset(params0, mask)
  for p, p0, m in zip(jax.tree.leaves(ticket), jax.tree.leaves(params0), jax.tree.leaves(mask)):
    np.testing.assert_array_equal(np.asarray(p)[np.asarray(m)], np.asarray(p0)[np.asarray(m)])
    assert np.all(np.asarray(p)[~np.asarray(m)] == 0.0)


def test_rewind_uses_saved_step_k_values(small_mlp):
  init, kinds, params0, trained, mask = _setup(small_mlp)
  rewound = tickets.reset(trained, mask)
  np.testing.assert_array_equal(rewound["fc1"]["kernel"],
                                jnp.where(mask["fc1"]["kernel"], trained["fc1"]["kernel"], 0.0))


def test_reinit_same_mask_different_values(small_mlp):
  init, kinds, params0, trained, mask = _setup(small_mlp)
  re = tickets.reinit(init, jax.random.key(99), mask)
  k = mask["fc1"]["kernel"]
  assert np.all(np.asarray(re["fc1"]["kernel"])[~np.asarray(k)] == 0)
  assert not np.allclose(np.asarray(re["fc1"]["kernel"])[np.asarray(k)],
                         np.asarray(params0["fc1"]["kernel"])[np.asarray(k)])
  # Same distribution family: the fresh init's scale is the model initializer's.
  np.testing.assert_allclose(float(jnp.std(init(jax.random.key(99))["fc1"]["kernel"])),
                             float(jnp.std(params0["fc1"]["kernel"])), rtol=0.3)


def test_shuffled_mask_keeps_per_layer_counts_not_positions(small_mlp):
  init, kinds, params0, trained, mask = _setup(small_mlp)
  shuffled = tickets.shuffle_mask(mask, kinds, jax.random.key(3))
  assert {k: int(v) for k, v in masks.layer_counts(shuffled, kinds).items()} == \
         {k: int(v) for k, v in masks.layer_counts(mask, kinds).items()}
  assert not bool(jnp.all(shuffled["fc1"]["kernel"] == mask["fc1"]["kernel"]))
  assert bool(jnp.all(shuffled["fc1"]["bias"]))  # fixed leaves untouched
  masks.check(params0, shuffled, kinds)


def test_sign_preserving_reinit(small_mlp):
  init, kinds, params0, trained, mask = _setup(small_mlp)
  out = tickets.sign_preserving_reinit(init, jax.random.key(4), params0, mask)
  k = np.asarray(mask["fc1"]["kernel"])
  np.testing.assert_array_equal(np.sign(np.asarray(out["fc1"]["kernel"]))[k],
                                np.sign(np.asarray(params0["fc1"]["kernel"]))[k])
