"""From a config (and, through the API, a user's network) to the pieces a run is made of: the
network and its initializer, each leaf's role and pruning rate, and the trainer on its devices."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from ltjax import lineup, models
from ltjax.core import masks, pruning, scores
from ltjax.core import roles as roles_lib
from ltjax.data import Dataset
from ltjax.engine import oneoff, optimizers, parallel, train
from ltjax.methods import modes

PyTree = Any


@dataclasses.dataclass(frozen=True)
class Setup:
  """What a config resolves to: the network's initializer, its leaves' roles and rates, and the trainer."""
  cfg: Any
  init_fn: Callable[[jax.Array], tuple[PyTree, PyTree]]  # key -> (params, model_state)
  roles: PyTree
  rates: PyTree
  trainer: train.Trainer
  points: lineup.Points | None = None  # sweep points side by side (ltjax.runs.together)
  compiled: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)  # per run


def with_method_defaults(cfg):
  """`cfg` with its 'auto' fields resolved to the published method's choices (a copy if changed):
  prune.scope from the score, prune.distribution from the mode that spreads one, prune.update_every
  as the mode's own and prune.update_end as RigL's T_end for the modes that update masks while
  training."""
  prune = cfg.prune
  auto_end = "update_end" in prune and prune.update_end == 0 and _sparse_training(prune.mode)
  auto_every = prune.get("update_every", None) == 0 and _sparse_training(prune.mode)
  spread = prune.get("distribution", "") == "auto" and _mode_default(prune.mode, "distribution")
  if prune.scope != "auto" and not spread and not auto_end and not auto_every:
    return cfg
  cfg = cfg.copy_and_resolve_references()
  with cfg.unlocked():
    if cfg.prune.scope == "auto":
      cfg.prune.scope = scores.get(cfg.prune.score).scope
    if spread:
      cfg.prune.distribution = spread
    if auto_every:
      cfg.prune.update_every = _mode_default(prune.mode, "update_every") or 100
    if auto_end:
      every = cfg.prune.update_every if isinstance(cfg.prune.update_every, int) and cfg.prune.update_every > 0 else 1
      cfg.prune.update_end = max(every, (3 * cfg.train.steps // 4) // every * every)  # (validated: >= ΔT)
  return cfg


def _mode_default(mode: str, field: str):
  try:
    return modes.get(mode).defaults.get(field)
  except modes.ModeError:
    return None  # validation names the unknown mode


def _sparse_training(mode: str) -> bool:
  try:
    return modes.get(mode).trains is not None
  except modes.ModeError:
    return False


def build(cfg, dataset: Dataset, network=None) -> Setup:
  """The run's pieces. `network` (a linen Module or an (init, apply) pair) stands in for
  `cfg.model`; either way `cfg.roles` (path pattern -> role) overrides the inferred roles."""
  cfg = with_method_defaults(cfg)
  module, roles_of = models.resolve(cfg.model if network is None else network,
                                    dataset.num_classes, cfg.model_kwargs, dataset.input_shape,
                                    cfg.roles)
  init_fn = make_init(module, dataset.input_shape)
  params, model_state = jax.eval_shape(init_fn, jax.random.key(0))
  if network is not None or ":" in cfg.model:  # a network of yours: does it fit the data?
    check_outputs(module, params, model_state, dataset)
  roles = roles_of(params)
  rates = pruning.rates_tree(roles, role_rates(cfg))
  if cfg.prune.mode == "iterative" and cfg.prune.rounds and not any(map(bool, jax.tree.leaves(rates))):
    present = sorted(set(jax.tree.leaves(roles)) - {roles_lib.FIXED})
    raise pruning.PruningError(f"the network's prunable layers are {', '.join(present)}, all at rate "
                               "0: set prune." + "/".join(f"{r}_rate" for r in present))
  t = cfg.train
  milestones = tuple(m for m in t.milestones if m > 0)
  tx = optimizers.make(t.optimizer, t.lr, momentum=t.momentum, weight_decay=t.weight_decay,
                       warmup_steps=t.warmup_steps, milestones=milestones, decay=t.decay,
                       nesterov=t.nesterov)
  layout = parallel.make_layout(cfg.execution.mesh, lineup.max_tickets(cfg), t.batch_size,
                                splittable=not jax.tree.leaves(model_state))
  trainer = train.Trainer(module, tx, batch_size=t.batch_size, eval_batch_size=t.eval_batch_size,
                          ticket_batch=ticket_batch(cfg.execution.ticket_batch, roles, layout),
                          unroll=unroll(cfg.execution.unroll, roles), layout=layout,
                          stretch=optimizers.stretch(t.warmup_steps, milestones, t.decay, t.steps))
  return Setup(cfg, init_fn, roles, rates, trainer)


def check_outputs(module, params, model_state, dataset: Dataset) -> None:
  """ModelError unless the network maps a batch of the data's inputs to [batch, num_classes]
  float logits (a mismatch would otherwise train on out-of-range labels without a word)."""
  x = jax.ShapeDtypeStruct((2,) + tuple(dataset.input_shape), jnp.float32)
  try:
    out = jax.eval_shape(lambda p, ms, x: module.apply({"params": p, **ms}, x, train=False),
                         params, model_state, x)
  except Exception as e:  # noqa: BLE001 -- the network is user code: one line, theirs to fix
    raise models.ModelError(f"model: applying it to inputs of shape {x.shape} failed: "
                            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
  if not hasattr(out, "shape") or tuple(out.shape) != (2, dataset.num_classes):
    got = tuple(out.shape) if hasattr(out, "shape") else type(out).__name__
    raise models.ModelError(f"model: outputs {got} for a batch of 2, but the data has "
                            f"{dataset.num_classes} classes: it must output [batch, "
                            f"{dataset.num_classes}] logits")


def role_sizes(cfg, dataset: Dataset, network=None) -> dict[str, int]:
  """Prunable weights per layer role of the config's network on `dataset` (shapes only)."""
  module, roles_of = models.resolve(cfg.model if network is None else network, dataset.num_classes,
                                    cfg.model_kwargs, dataset.input_shape, cfg.roles)
  params = jax.eval_shape(make_init(module, dataset.input_shape), jax.random.key(0))[0]
  return masks.sizes_by_role(params, roles_of(params))


def role_rates(cfg) -> dict[str, float]:
  return {roles_lib.CONV: cfg.prune.conv_rate, roles_lib.FC: cfg.prune.fc_rate,
          roles_lib.OUTPUT: cfg.prune.output_rate}


def make_init(module, input_shape) -> Callable[[jax.Array], tuple[PyTree, PyTree]]:
  """key -> (params, model_state): the module's own initializer, other collections kept apart.

  Compiled as one program: run eagerly, flax's init (a forward pass, the initializers) compiles
  dozens of single-op programs, which dominated the cold start on GPU.
  """
  example = jnp.zeros((1,) + tuple(input_shape), jnp.float32)

  def init_fn(key):
    variables = module.init({"params": key, "dropout": key}, example, train=False)
    return variables["params"], {k: v for k, v in variables.items() if k != "params"}

  return oneoff.jit(init_fn)


def ticket_batch(setting: int, roles: PyTree, layout: parallel.Layout = parallel.Layout()) -> int | None:
  """-1 (auto): vmap every device's tickets on accelerators. On CPU, one ticket at a time per
  device when the cores are devices (each core keeps one ticket's weights and Adam state in its
  cache; measured fastest, BUILD_NOTES.md); on one CPU device, chunks of 2 tickets for dense nets
  (1.5x over full vmap at K=16) and one at a time for conv nets (slower vmapped on XLA:CPU)."""
  if setting == -1:
    if jax.default_backend() != "cpu":
      return None
    return 1 if layout.mesh is not None or roles_lib.CONV in jax.tree.leaves(roles) else 2
  return None if setting == 0 else setting


def unroll(setting: int, roles: PyTree) -> bool:
  """-1 (auto): unroll (no device loops) for conv nets on CPU, where XLA runs convolutions inside
  while loops ~70x slower (jax issue #12868); 0 never; 1 always."""
  if setting == -1:
    return jax.default_backend() == "cpu" and roles_lib.CONV in jax.tree.leaves(roles)
  return bool(setting)
