"""Any network ltjax can prune: a linen Module, an `init`/`apply` pair, or a factory named by
import path, with each parameter leaf's role inferred from the layers that own it.

Inference: kernels of Dense-like layers (Dense, DenseGeneral, Einsum) are `fc`, of Conv-like
layers `conv`; the prunable layer called last is the `output` layer (its own pruning rate); biases,
norms, embeddings and anything else are `fixed`. A mapping of path patterns to roles (fnmatch over
'/'-joined leaf paths, e.g. {'head/*': 'fixed', 'Dense_0/kernel': 'output'}) overrides it.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import inspect
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.extend as jex
import jax.numpy as jnp

from ltjax import importpath
from ltjax.core import roles as roles_lib
from ltjax.models import registry

PyTree = Any
_FC_LAYERS = ("Dense", "DenseGeneral", "Einsum")
_CONV_LAYERS = ("Conv", "ConvTranspose", "ConvLocal")


class ModelError(ValueError):
  """A network ltjax cannot prune as given (one line, naming what is wrong)."""


# ---------------------------------------------------------------- what the trainer calls
def _takes_train(fn: Callable) -> bool:
  try:
    params = inspect.signature(fn).parameters
  except (TypeError, ValueError):
    return False
  return "train" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


@dataclasses.dataclass(frozen=True)
class LinenWithoutTrain:
  """A linen Module whose `__call__` has no `train` flag, called as ltjax calls every network."""
  module: nn.Module

  def init(self, rngs, x, train: bool = False):
    del train
    return self.module.init(rngs, x)

  def apply(self, variables, x, train: bool = False, rngs=None, mutable=False):
    del train
    return self.module.apply(variables, x, rngs=rngs, mutable=mutable)


@dataclasses.dataclass(frozen=True)
class Functions:
  """An `init(key, x) -> params` / `apply(params, x) -> logits` pair (no other collections); a
  `train` keyword is passed to `apply` when it takes one."""
  init_fn: Callable
  apply_fn: Callable

  def init(self, rngs, x, train: bool = False):
    del train
    params = self.init_fn(rngs["params"], x)
    return params if _is_variables(params) else {"params": params}

  def apply(self, variables, x, train: bool = False, rngs=None, mutable=False):
    del rngs, mutable  # no dropout stream or mutable state for a plain pair
    kwargs = {"train": train} if _takes_train(self.apply_fn) else {}
    return self.apply_fn(variables["params"], x, **kwargs)


def _is_variables(tree) -> bool:
  return isinstance(tree, Mapping) and "params" in tree and all(isinstance(v, Mapping) for v in tree.values())


def adapt(network) -> Any:
  """What the trainer calls (`.init(rngs, x, train=)`, `.apply(variables, x, train=, rngs=,
  mutable=)`) for a linen Module or an (init, apply) pair."""
  if isinstance(network, nn.Module):
    return network if _takes_train(network.__call__) else LinenWithoutTrain(network)
  if isinstance(network, (tuple, list)) and len(network) == 2 and all(map(callable, network)):
    return Functions(*network)
  if isinstance(network, (LinenWithoutTrain, Functions)):
    return network
  raise ModelError(f"model: expected a flax.linen.Module or an (init, apply) pair, got "
                   f"{type(network).__name__}")


# ---------------------------------------------------------------- from an import path
def load_factory(path: str) -> Callable:
  """'package.module:Name' -> the object it names; ModelError (one line) if it cannot be had."""
  parts = importpath.split(path)
  if parts is None:
    raise ModelError(f"{path!r} is not an import path (write package.module:Name)")
  try:
    return importpath.resolve(*parts)
  except importpath.ImportPathError as e:
    raise ModelError(str(e)) from None


def build(factory: Callable, num_classes: int, kwargs: Mapping[str, Any]):
  """Call a user's factory (a Module class or a function returning a Module or an (init, apply)
  pair) with `num_classes` when it takes it, and the config's `model_kwargs`."""
  kwargs = dict(kwargs)
  try:
    params = inspect.signature(factory).parameters
  except (TypeError, ValueError):
    params = {}
  if "num_classes" in params and "num_classes" not in kwargs:
    kwargs["num_classes"] = num_classes
  try:
    return adapt(factory(**kwargs))
  except ModelError:
    raise
  except Exception as e:  # noqa: BLE001 -- the factory is user code: report it in one line
    raise ModelError(f"building it with {kwargs} failed: {type(e).__name__}: {e}") from None


# ---------------------------------------------------------------- roles
def _path(path) -> tuple[str, ...]:
  return tuple(str(getattr(k, "key", getattr(k, "name", k))) for k in path)


def layer_types(network, example: jax.Array) -> dict[tuple[str, ...], str]:
  """Each submodule's path -> its class name, in call order (linen modules only; {} otherwise)."""
  module = network.module if isinstance(network, LinenWithoutTrain) else network
  if not isinstance(module, nn.Module):
    return {}
  calls: dict[tuple[str, ...], str] = {}

  def record(next_fun, args, kwargs, context):
    if context.method_name == "__call__" and context.module.path:
      calls.setdefault(tuple(context.module.path), type(context.module).__name__)
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(record):
    jax.eval_shape(lambda k: network.init({"params": k, "dropout": k}, example, train=False),
                   jax.random.key(0))
  return calls


def infer_roles(params: PyTree, layers: Mapping[tuple[str, ...], str] | None = None,
                overrides: Mapping[str, str] | None = None,
                use_order: Mapping[int, int] | None = None) -> PyTree:
  """Each leaf's role (see the module doc). Without `layers` (an init/apply pair), 2-D leaves
  named `kernel` or `w` are fc and higher-rank ones conv, and the one the forward pass meets
  last (`use_order`: leaf index -> when, from `first_uses`) is the output."""
  flat = jax.tree_util.tree_flatten_with_path(params)[0]
  order = list(layers or {})
  roles = []
  for path, leaf in flat:
    names = _path(path)
    if layers:
      owner = layers.get(names[:-1], "")
      prunable = names[-1] == "kernel" and owner in _FC_LAYERS + _CONV_LAYERS
      role = roles_lib.CONV if owner in _CONV_LAYERS else roles_lib.FC
    else:
      prunable = names[-1] in ("kernel", "w") and jnp.ndim(leaf) >= 2
      role = roles_lib.FC if jnp.ndim(leaf) == 2 else roles_lib.CONV
    roles.append(role if prunable else roles_lib.FIXED)
  prunable_at = [i for i, r in enumerate(roles) if r != roles_lib.FIXED]
  if prunable_at:
    if layers:  # the last layer called, not the last in the params' (sorted) order
      last = max(prunable_at, key=lambda i: order.index(_path(flat[i][0])[:-1]))
    else:
      last = max(prunable_at, key=lambda i: (use_order or {}).get(i, -1))
    roles[last] = roles_lib.OUTPUT
  roles = _override(flat, roles, overrides or {})
  if all(r == roles_lib.FIXED for r in roles):
    raise ModelError("model: nothing to prune (no Dense or Conv kernel was found; name the prunable "
                     "leaves with config.roles, e.g. {'*/w': 'fc'})")
  return jax.tree.unflatten(jax.tree.structure(params), roles)


def role_map(overrides) -> dict[str, str]:
  """A mapping pattern -> role from a mapping or from 'pattern=role' strings (config.roles)."""
  if isinstance(overrides, Mapping):
    return dict(overrides)
  out = {}
  for item in overrides or ():
    pattern, sep, role = str(item).partition("=")
    if not sep:
      raise ModelError(f"roles: {item!r} is not 'pattern=role'")
    out[pattern] = role
  return out


def first_uses(apply: Callable, params: PyTree, example: jax.Array) -> dict[int, int]:
  """Leaf index -> the position, in `apply`'s traced program, where the input's activations
  first meet a value computed from that leaf alone (its layer's place in the forward pass)."""
  jaxpr = jax.make_jaxpr(lambda p, x: apply(p, x))(params, example).jaxpr
  n = len(jax.tree.leaves(params))
  weights = {v: {i} for i, v in enumerate(jaxpr.invars[:n])}  # var -> the leaves it comes from
  activations = set(jaxpr.invars[n:])
  first: dict[int, int] = {}
  for position, eqn in enumerate(jaxpr.eqns):
    ins = [v for v in eqn.invars if isinstance(v, jex.core.Var)]
    if any(v in activations for v in ins):
      for v in ins:
        for leaf in weights.get(v, ()):
          first.setdefault(leaf, position)
      activations.update(eqn.outvars)
    else:
      sources = set().union(*(weights.get(v, set()) for v in ins)) if ins else set()
      for out in eqn.outvars:
        weights[out] = sources
  return first


def _override(flat, roles: list[str], overrides: Mapping[str, str]) -> list[str]:
  paths = ["/".join(_path(p)) for p, _ in flat]
  for pattern, role in overrides.items():
    if role not in roles_lib.ROLES:
      raise ModelError(f"roles: {pattern!r} -> {role!r} is not a role; use one of "
                       f"{', '.join(roles_lib.ROLES)}")
    hits = [i for i, p in enumerate(paths) if fnmatch.fnmatchcase(p, pattern)]
    if not hits:
      raise ModelError(f"roles: pattern {pattern!r} matches no parameter (the parameters: "
                       f"{', '.join(paths)})")
    for i in hits:
      roles[i] = role
  return roles


# ---------------------------------------------------------------- any of the above
def resolve(model, num_classes: int, kwargs: Mapping[str, Any], input_shape,
            overrides=None) -> tuple[Any, Callable[[PyTree], PyTree]]:
  """(what the trainer calls, params -> roles) for a registered name, an import path
  'package.module:Factory', a linen Module or an (init, apply) pair; `overrides` is a mapping
  pattern -> role or 'pattern=role' strings."""
  overrides = role_map(overrides)
  kwargs = dict(kwargs or {})
  if isinstance(model, str) and ":" not in model:
    if model not in registry.names():
      raise ModelError(f"model: unknown model {model!r}; use one of {', '.join(registry.names())} "
                       "or package.module:Factory")
    spec = registry.get(model)
    module = spec.build(num_classes, **kwargs)

    def registered_roles(params):
      roles = spec.layer_roles(params)
      if not overrides:
        return roles
      flat = jax.tree_util.tree_flatten_with_path(params)[0]
      return jax.tree.unflatten(jax.tree.structure(params),
                                _override(flat, jax.tree.leaves(roles), overrides))
    return module, registered_roles
  if isinstance(model, str):
    module = build(load_factory(model), num_classes, kwargs)
  elif kwargs:
    raise ModelError("model_kwargs: only for a model the config names (a network object is built "
                     "already)")
  else:
    module = adapt(model)
  example = jnp.zeros((1,) + tuple(input_shape), jnp.float32)
  layers = layer_types(module, example)
  if layers:
    return module, lambda params: infer_roles(params, layers, overrides)
  apply = lambda p, x: module.apply({"params": p}, x)  # noqa: E731
  return module, lambda params: infer_roles(params, None, overrides,
                                            first_uses(apply, params, example))


def describe(model) -> str:
  """A name for a network object in the config and the records (its class, or its functions)."""
  if isinstance(model, str):
    return model
  if isinstance(model, (tuple, list)):
    return "(" + ", ".join(getattr(f, "__qualname__", type(f).__name__) for f in model) + ")"
  return f"{type(model).__module__}:{type(model).__qualname__}"
