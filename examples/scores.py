"""A pruning score of your own, registered on import: the lottery binary loads it with
`--config.imports="('examples.scores',)"` and selects it with `--config.prune.score=large_and_moved`.

A score sees the weights being pruned, their mask, a key, and a context with theta_0 (and, when
registered with needs_network / needs_data, the network and a batch); higher scores are kept.
"""

import jax
import jax.numpy as jnp

import ltjax


@ltjax.register_score("large_and_moved")
def large_and_moved(params, mask, key, context):
  """|w| * |w - w0|: keep weights that are large and that training moved."""
  del mask, key
  return jax.tree.map(lambda w, w0: jnp.abs(w) * jnp.abs(w - w0), params, context.init)
