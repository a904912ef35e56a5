import jax
import jax.numpy as jnp
import numpy as np
from conftest import layer_counts

from ltjax.core import masks, pruning, tickets


def _setup(small_mlp):
  spec, module, init, roles = small_mlp
  params0 = init(jax.random.key(0))
  trained = jax.tree.map(lambda p: p + 0.3, params0)
  mask = pruning.prune_round(trained, params0, masks.ones(params0), roles,
                             pruning.rates_tree(roles, {"fc": 0.5, "output": 0.25}))
  return init, roles, params0, trained, mask


def test_reset_gives_survivors_their_exact_init_values(small_mlp):
  init, roles, params0, trained, mask = _setup(small_mlp)
  ticket = tickets.reset(params0, mask)
  for p, p0, m in zip(jax.tree.leaves(ticket), jax.tree.leaves(params0), jax.tree.leaves(mask)):
    np.testing.assert_array_equal(np.asarray(p)[np.asarray(m)], np.asarray(p0)[np.asarray(m)])
    assert np.all(np.asarray(p)[~np.asarray(m)] == 0.0)


def test_rewind_uses_saved_step_k_values(small_mlp):
  init, roles, params0, trained, mask = _setup(small_mlp)
  rewound = tickets.reset(trained, mask)
  np.testing.assert_array_equal(rewound["fc1"]["kernel"],
                                jnp.where(mask["fc1"]["kernel"], trained["fc1"]["kernel"], 0.0))


def test_shuffled_mask_keeps_per_layer_counts_not_positions(small_mlp):
  init, roles, params0, trained, mask = _setup(small_mlp)
  shuffled = tickets.shuffle_mask(mask, roles, jax.random.key(3))
  assert {k: int(v) for k, v in layer_counts(shuffled, roles).items()} == \
         {k: int(v) for k, v in layer_counts(mask, roles).items()}
  assert not bool(jnp.all(shuffled["fc1"]["kernel"] == mask["fc1"]["kernel"]))
  assert bool(jnp.all(shuffled["fc1"]["bias"]))  # fixed leaves untouched
  masks.check(params0, shuffled, roles)
