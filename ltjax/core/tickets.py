"""Starting points of a round: the winning ticket and its two controls.

- `reset`: survivors take their values at init (theta_0) or, when rewinding, at step k (theta_k).
- `reinit`: same mask, fresh initialization from a new key ("random reinitialization").
- `shuffle_mask`: random mask with the same per-layer sparsity ("random sparse subnetwork").
- inverted: the mask a one-shot criterion draws when it keeps its *lowest* scores instead
  (Frankle et al. 2021's sanity check; drawn by `lottery.next_masks`, started like the ticket).
- twin: the ticket itself with another data order, for linear mode connectivity (`stability`).
- scratch: Liu et al. 2019's counterpoint: the ticket's mask, a fresh init, and a schedule of its
  own (a larger rate, a longer budget: their Scratch-B).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from ltjax.core import masks as masks_lib
from ltjax.core.roles import PRUNABLE_KINDS

PyTree = Any

TICKET, REINIT, RANDOM_MASK, INVERTED = "ticket", "reinit", "random_mask", "inverted"
TWIN, SCRATCH = "twin", "scratch"
KINDS = (TICKET, REINIT, RANDOM_MASK, INVERTED, TWIN, SCRATCH)  # append only: the index seeds data


def reset(saved_params: PyTree, mask: PyTree) -> PyTree:
  """The ticket f(x; m * theta_k): saved values (init, or step k when rewinding) under the mask."""
  return masks_lib.apply(saved_params, mask)


def reinit(init_fn: Callable[[jax.Array], PyTree], key: jax.Array, mask: PyTree) -> PyTree:
  """Same structure, fresh weights: `init_fn(key)` (the model's own initializer) under the mask."""
  return masks_lib.apply(init_fn(key), mask)


def shuffle_mask(mask: PyTree, kinds: PyTree, key: jax.Array) -> PyTree:
  """Permute each prunable leaf's mask entries: same per-layer count, random positions."""
  leaves, treedef = jax.tree.flatten(mask)
  keys = jax.random.split(key, len(leaves))
  out = [jax.random.permutation(k, m.ravel()).reshape(m.shape) if kind in PRUNABLE_KINDS else m
         for m, kind, k in zip(leaves, jax.tree.leaves(kinds), keys)]
  return jax.tree.unflatten(treedef, out)


def sign_preserving_reinit(init_fn: Callable[[jax.Array], PyTree], key: jax.Array,
                           saved_params: PyTree, mask: PyTree) -> PyTree:
  """Zhou et al.'s control: fresh magnitudes, signs of the saved weights."""
  fresh = init_fn(key)
  return masks_lib.apply(
      jax.tree.map(lambda f, s: jnp.abs(f) * jnp.where(s < 0, -1.0, 1.0).astype(f.dtype),
                   fresh, saved_params), mask)
