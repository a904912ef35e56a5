"""Starting points of a round: the winning ticket and its two controls.

- `reset`: survivors take their values at init (theta_0) or, when rewinding, at step k (theta_k).
- reinit: same mask, fresh initialization from a new key ("random reinitialization"; the
  fresh inits are drawn by `ltjax.lineup`).
- `shuffle_mask`: random mask with the same per-layer sparsity ("random sparse subnetwork"),
  drawn within the sparsity type (whole units, N:M groups) for structured tickets.
- inverted: the mask a one-shot criterion draws when it keeps its *lowest* scores instead
  (Frankle et al. 2021's sanity check; drawn by the mask-finding mode, started like the ticket).
- twin: the ticket itself with another data order, for linear mode connectivity (`stability`);
  twin_reinit and twin_random_mask: the same for the reinit (its first draw) and random-mask
  controls, whose stability is the control for the ticket's.
- scratch: Liu et al. 2019's counterpoint: the ticket's mask, a fresh init, and a schedule of its
  own (a larger rate, a longer budget: their Scratch-B).

A ticket's *kind* (`KINDS`, the records' "kind") is the ticket or one of these controls; a
parameter leaf's *role* (`ltjax.core.roles`: conv, fc, output, fixed) is a different word on purpose.
"""

from __future__ import annotations

from typing import Any

import jax

from ltjax.core import masks as masks_lib
from ltjax.core import structure
from ltjax.core.roles import PRUNABLE

PyTree = Any

TICKET, REINIT, RANDOM_MASK, INVERTED = "ticket", "reinit", "random_mask", "inverted"
TWIN, SCRATCH = "twin", "scratch"
TWIN_REINIT, TWIN_RANDOM_MASK = "twin_reinit", "twin_random_mask"
KINDS = (TICKET, REINIT, RANDOM_MASK, INVERTED, TWIN, SCRATCH, TWIN_REINIT,
         TWIN_RANDOM_MASK)  # append only: the index seeds data
TWINS = {TWIN: TICKET, TWIN_REINIT: REINIT, TWIN_RANDOM_MASK: RANDOM_MASK}  # twin -> its partner


def reset(saved_params: PyTree, mask: PyTree) -> PyTree:
  """The ticket f(x; m * theta_k): saved values (init, or step k when rewinding) under the mask."""
  return masks_lib.apply(saved_params, mask)


def shuffle_mask(mask: PyTree, roles: PyTree, key: jax.Array,
                 kind: structure.Structure = structure.Structure("unstructured"),
                 chain: tuple[int, ...] = ()) -> PyTree:
  """Each prunable leaf's mask at random places with its live count, within the sparsity type
  `kind` (whole units or blocks; N:M's count per group); `chain`: units that feed each other."""
  leaves, treedef = jax.tree.flatten(mask)
  keys = jax.random.split(key, len(leaves))
  out = [kind.shuffle(m, k) if role in PRUNABLE else m
         for m, role, k in zip(leaves, jax.tree.leaves(roles), keys)]
  return jax.tree.unflatten(treedef, structure.couple_chain(out, chain))
