"""The XOR experiment of the paper's first version: unit pruning of a 2-10-1 MLP, N inits at once.

Setup (the defaults of `XorConfig`). Data: the four XOR points with inputs in {0, 1} and label
x1 xor x2, trained full batch (all 4 points every step). Network: `xor_mlp` (2 -> H ReLU -> 1 logit,
Gaussian Glorot kernels, zero biases), sigmoid binary cross-entropy (`train.cross_entropy`). Adam,
lr 0.01, 2,000 steps. Every one of the N initializations trains as one vmapped, jitted
`lax.scan`, per strategy and size; one compiled program serves every run of an experiment, since
narrower networks are 10-wide networks with units masked off (see `embed`).

Outcomes, measured once on the final weights over the four points:
  found the decision boundary (DB): all four points classified correctly (logit > 0 <=> label 1);
  zero loss (ZL): mean cross-entropy below `zl_threshold` (1e-3: every point's probability of its
    label is above 0.996, i.e. every logit has the right sign with margin > 5.5). Cross-entropy
    never reaches 0 exactly; a net in the loss-0 basin drives it below 1e-3 within the budget, one
    stuck on a plateau or with a dead region (some point reaching the output only through the
    bias) stays far above it. ZL implies DB.

Unit pruning: a unit's score comes from the trained weights; `unit_mask` turns a per-unit keep
vector into a params-shaped bool mask (the masks.py machinery) that zeroes the unit's incoming
kernel column, its bias and its outgoing kernel row. Strategies (`STRATEGIES`):
  one-shot product: |in| * |out| of the trained 10-unit net, straight to 4 and to 2 units;
  input magnitude: |in| = L2 norm of the unit's incoming kernel column (bias excluded);
  output magnitude: |out| = L2 norm of the unit's outgoing kernel row (|w| for the one logit);
  product: |in| * |out|.
The last three are iterative, 10 -> 4 -> 2: after each pruning step the surviving units restart
from the ORIGINAL initialization (the lottery-ticket reset) and retrain, and the next ranking uses
those retrained weights. Units tie-break by index; pruned units stay pruned.

Every strategy starts from the same N trained 10-unit nets (a paired comparison; the paper used
separate trials per row, so its 10-unit column varies by row and ours does not). "one-shot
product" and "product" therefore coincide at 4 units. Percentages are of all N inits, successful
10-unit nets or not. The from-scratch control trains fresh H-unit nets (H-wide Glorot init); its
10-unit row is the dense net above.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ltjax import masks as masks_lib
from ltjax import models, train

PyTree = Any

ONE_SHOT_PRODUCT, INPUT, OUTPUT, PRODUCT = "one-shot product", "input magnitude", "output magnitude", "product"
STRATEGIES = (ONE_SHOT_PRODUCT, INPUT, OUTPUT, PRODUCT)

# The paper's tables (first version), in %: {strategy: {units: (DB, ZL)}} and {units: (DB, ZL)}.
PAPER_PRUNED = {
    ONE_SHOT_PRODUCT: {10: (99.2, 93.3), 4: (98.0, 90.3), 2: (82.4, 65.3)},
    INPUT: {10: (98.9, 93.5), 4: (97.9, 92.2), 2: (83.8, 76.5)},
    OUTPUT: {10: (99.0, 93.3), 4: (96.9, 85.9), 2: (78.6, 56.1)},
    PRODUCT: {10: (98.5, 92.9), 4: (97.6, 90.3), 2: (91.5, 79.4)},
}
PAPER_SCRATCH = {10: (98.5, 92.9), 8: (96.8, 87.5), 6: (92.5, 76.8), 4: (78.3, 55.3), 2: (49.1, 17.6)}


class XorError(ValueError):
  """An invalid experiment setting."""


@dataclasses.dataclass(frozen=True)
class XorConfig:
  """Everything that fixes a run; `seed` makes it deterministic."""
  inits: int = 1000
  steps: int = 2000
  learning_rate: float = 0.01
  optimizer: str = "adam"           # 'adam' or 'sgd'
  activation: str = "relu"
  inputs: str = "01"                # '01': x in {0,1}^2; 'pm1': x in {-1,1}^2
  zl_threshold: float = 1e-3
  hidden: int = 10
  targets: tuple[int, ...] = (4, 2)
  scratch_sizes: tuple[int, ...] = (10, 8, 6, 4, 2)
  seed: int = 0

  def validate(self) -> None:
    if self.inits < 1:
      raise XorError(f"inits must be >= 1, got {self.inits}")
    if self.steps < 1:
      raise XorError(f"steps must be >= 1, got {self.steps}")
    if not (np.isfinite(self.learning_rate) and self.learning_rate > 0):
      raise XorError(f"learning rate must be > 0, got {self.learning_rate}")
    if self.optimizer not in _OPTIMIZERS:
      raise XorError(f"unknown optimizer {self.optimizer!r}; use one of {sorted(_OPTIMIZERS)}")
    if self.inputs not in _INPUTS:
      raise XorError(f"unknown inputs {self.inputs!r}; use one of {sorted(_INPUTS)}")
    if not 0 < self.zl_threshold < np.log(2):
      raise XorError(f"zl_threshold must be in (0, log 2), got {self.zl_threshold}")
    sizes = list(self.targets)
    if sizes != sorted(set(sizes), reverse=True) or not all(0 < t < self.hidden for t in sizes):
      raise XorError(f"targets must decrease strictly within (0, {self.hidden}), got {self.targets}")
    if not all(0 < h <= self.hidden for h in self.scratch_sizes):
      raise XorError(f"scratch sizes must be in [1, {self.hidden}], got {self.scratch_sizes}")


_OPTIMIZERS = {"adam": optax.adam, "sgd": optax.sgd}
_INPUTS = {"01": (0.0, 1.0), "pm1": (-1.0, 1.0)}


# ---------------------------------------------------------------- data and network
def xor_data(inputs: str = "01") -> tuple[jax.Array, jax.Array]:
  """The four XOR points [4, 2] (float32) and labels [4] (int32: 1 where exactly one input is on)."""
  lo, hi = _INPUTS[inputs]
  bits = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
  return jnp.asarray(np.where(bits == 1, hi, lo), jnp.float32), jnp.asarray(bits[:, 0] ^ bits[:, 1], jnp.int32)


def module(hidden: int, activation: str = "relu"):
  """The registered `xor_mlp` with `hidden` units and the given hidden activation."""
  return models.get("xor_mlp").build(hidden_units=hidden).clone(activation=activation)


def init_params(key: jax.Array, hidden: int, activation: str = "relu") -> PyTree:
  return module(hidden, activation).init(key, jnp.zeros((1, 2)))["params"]


# ---------------------------------------------------------------- unit scores and masks
def input_magnitude(params: PyTree) -> jax.Array:
  """[H]: L2 norm of each unit's incoming kernel column (bias excluded)."""
  return jnp.linalg.norm(params["fc1"]["kernel"], axis=0)


def output_magnitude(params: PyTree) -> jax.Array:
  """[H]: L2 norm of each unit's outgoing kernel row (|w| with one output)."""
  return jnp.linalg.norm(params["out"]["kernel"], axis=1)


def product(params: PyTree) -> jax.Array:
  """[H]: input magnitude x output magnitude."""
  return input_magnitude(params) * output_magnitude(params)


SCORES: dict[str, Callable[[PyTree], jax.Array]] = {
    ONE_SHOT_PRODUCT: product, INPUT: input_magnitude, OUTPUT: output_magnitude, PRODUCT: product}


def keep_top(scores: jax.Array, alive: jax.Array, k: int) -> jax.Array:
  """bool[H] keeping the k best-scoring alive units (ties: lower index); dead units stay dead."""
  index = jnp.arange(scores.shape[0])
  order = jnp.lexsort((index, -scores.astype(jnp.float32), ~alive))  # alive first, score descending
  return jnp.zeros(scores.shape, jnp.bool_).at[order[:k]].set(True) & alive


def unit_mask(params: PyTree, keep: jax.Array) -> PyTree:
  """A params-shaped bool mask pruning the units where `keep` is False.

  Zeroes each pruned unit's fc1 kernel column and fc1 bias entry (in) and its out kernel row
  (out); the output bias stays. Unlike weight pruning, this prunes a bias (a `fixed` leaf), so
  check it with `masks.check(params, mask)` and no kinds.
  """
  mask = masks_lib.ones(params)
  fc1, out = params["fc1"]["kernel"], params["out"]["kernel"]
  mask["fc1"] = {"kernel": jnp.broadcast_to(keep[None, :], fc1.shape), "bias": keep}
  mask["out"] = {"kernel": jnp.broadcast_to(keep[:, None], out.shape), "bias": mask["out"]["bias"]}
  return mask


def units_alive(mask: PyTree) -> jax.Array:
  """bool[..., H]: the units a unit mask keeps."""
  return mask["fc1"]["bias"]


def embed(params: PyTree, hidden: int) -> tuple[PyTree, jax.Array]:
  """An h-unit net as a `hidden`-unit net (zero-padded) and its keep vector (first h units).

  Masked training keeps the padding exactly zero and Adam/SGD act per weight, so training the
  embedded net is training the h-unit net, with the same compiled program as every other run.
  """
  h = params["fc1"]["bias"].shape[-1]
  pad = hidden - h
  big = {"fc1": {"kernel": jnp.pad(params["fc1"]["kernel"], ((0, 0), (0, pad))),
                 "bias": jnp.pad(params["fc1"]["bias"], (0, pad))},
         "out": {"kernel": jnp.pad(params["out"]["kernel"], ((0, pad), (0, 0))),
                 "bias": params["out"]["bias"]}}
  return big, jnp.arange(hidden) < h


# ---------------------------------------------------------------- training and metrics
@dataclasses.dataclass(frozen=True)
class Outcome:
  """Per-init results of one training run ([N] arrays)."""
  params: PyTree
  loss: np.ndarray
  correct: np.ndarray  # points classified correctly, 0..4

  def found_boundary(self) -> np.ndarray:
    return self.correct == 4

  def zero_loss(self, threshold: float) -> np.ndarray:
    return self.loss < threshold


def make_trainer(cfg: XorConfig) -> train.Trainer:
  return train.Trainer(module=module(cfg.hidden, cfg.activation),
                       tx=_OPTIMIZERS[cfg.optimizer](cfg.learning_rate), batch_size=4)


@functools.partial(jax.jit, static_argnums=(0, 5))
def _train_many(trainer: train.Trainer, params, mask, x, y, steps: int):
  """N inits x `steps` full-batch masked steps; returns (params, loss[N], correct[N])."""

  def one(p, m):
    state = trainer.init_state(p, m, {}, jax.random.key(0))  # the key only feeds dropout: unused

    def body(state, s):
      return trainer.train_step(state, x, y, s)[0], None

    state, _ = jax.lax.scan(body, state, jnp.arange(steps))
    logits = trainer.module.apply({"params": state.params}, x)
    return (state.params, train.cross_entropy(logits, y),
            jnp.sum(train.correct_predictions(logits, y)))

  return jax.vmap(one)(params, mask)


def train_many(trainer: train.Trainer, params: PyTree, mask: PyTree, steps: int,
               inputs: str = "01") -> Outcome:
  """Train stacked inits under stacked masks (one compiled program) and score the final weights."""
  x, y = xor_data(inputs)
  p, loss, correct = _train_many(trainer, params, mask, x, y, steps)
  return Outcome(params=p, loss=np.asarray(loss), correct=np.asarray(correct))


def rates(outcome: Outcome, threshold: float) -> tuple[float, float]:
  """(% DB, % ZL) over the inits."""
  return (100.0 * float(np.mean(outcome.found_boundary())),
          100.0 * float(np.mean(outcome.zero_loss(threshold))))


# ---------------------------------------------------------------- the experiment
@dataclasses.dataclass
class XorResults:
  """% DB and % ZL: `pruned[strategy][units]` and `scratch[units]`, plus the run's config and time."""
  config: XorConfig
  pruned: dict[str, dict[int, tuple[float, float]]]
  scratch: dict[int, tuple[float, float]]
  seconds: float

  def to_json(self) -> dict:
    return {"config": dataclasses.asdict(self.config), "seconds": self.seconds,
            "pruned": {s: {str(u): {"db": v[0], "zl": v[1]} for u, v in r.items()}
                       for s, r in self.pruned.items()},
            "scratch": {str(u): {"db": v[0], "zl": v[1]} for u, v in self.scratch.items()},
            "paper": {"pruned": {s: {str(u): {"db": v[0], "zl": v[1]} for u, v in r.items()}
                                 for s, r in PAPER_PRUNED.items()},
                      "scratch": {str(u): {"db": v[0], "zl": v[1]} for u, v in PAPER_SCRATCH.items()}}}

  def to_markdown(self) -> str:
    """Two tables, ours / paper in each cell."""
    sizes = [self.config.hidden, *self.config.targets]
    head = "| strategy | " + " | ".join(f"{u} DB | {u} ZL" for u in sizes) + " |"
    lines = ["Pruned (ours / paper, %):", "", head, "|---" * (1 + 2 * len(sizes)) + "|"]
    for s, row in self.pruned.items():
      cells = []
      for u in sizes:
        paper = PAPER_PRUNED.get(s, {}).get(u)
        for i in (0, 1):
          cells.append(f"{row[u][i]:.1f}" + (f" / {paper[i]:.1f}" if paper else ""))
      lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines += ["", "From scratch (ours / paper, %):", "", "| units | DB | ZL |", "|---|---|---|"]
    for u, v in self.scratch.items():
      paper = PAPER_SCRATCH.get(u)
      cells = [f"{v[i]:.1f}" + (f" / {paper[i]:.1f}" if paper else "") for i in (0, 1)]
      lines.append(f"| {u} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(cfg: XorConfig = XorConfig(), log: Callable[[str], None] | None = None) -> XorResults:
  """The whole experiment: dense nets, four pruning strategies, from-scratch control."""
  cfg.validate()
  t0 = time.perf_counter()
  trainer = make_trainer(cfg)
  n, h = cfg.inits, cfg.hidden
  key = jax.random.key(cfg.seed)
  fit = lambda p, m: train_many(trainer, p, m, cfg.steps, cfg.inputs)  # noqa: E731
  stack_mask = jax.vmap(unit_mask)
  say = log or (lambda _: None)

  init = jax.vmap(lambda k: init_params(k, h, cfg.activation))(jax.random.split(key, n))
  dense = fit(init, stack_mask(init, jnp.ones((n, h), jnp.bool_)))
  say(f"dense {h} units: DB/ZL {rates(dense, cfg.zl_threshold)}")

  pruned: dict[str, dict[int, tuple[float, float]]] = {}
  for strategy in STRATEGIES:
    score = jax.vmap(SCORES[strategy])
    row = {h: rates(dense, cfg.zl_threshold)}
    source, alive = dense, jnp.ones((n, h), jnp.bool_)
    for k in cfg.targets:
      if strategy == ONE_SHOT_PRODUCT:
        source, alive = dense, jnp.ones((n, h), jnp.bool_)
      keep = jax.vmap(functools.partial(keep_top, k=k))(score(source.params), alive)
      ticket = fit(init, stack_mask(init, keep))  # reset to the original init, retrain
      row[k] = rates(ticket, cfg.zl_threshold)
      say(f"{strategy} {k} units: DB/ZL {row[k]}")
      source, alive = ticket, keep
    pruned[strategy] = row

  scratch: dict[int, tuple[float, float]] = {}
  for u in cfg.scratch_sizes:
    if u == h:
      scratch[u] = rates(dense, cfg.zl_threshold)
      continue
    keys = jax.random.split(jax.random.fold_in(key, u), n)
    small = jax.vmap(lambda k, u=u: init_params(k, u, cfg.activation))(keys)
    big, keep = jax.vmap(lambda p: embed(p, h))(small)
    scratch[u] = rates(fit(big, stack_mask(big, keep)), cfg.zl_threshold)
    say(f"scratch {u} units: DB/ZL {scratch[u]}")
  return XorResults(config=cfg, pruned=pruned, scratch=scratch, seconds=time.perf_counter() - t0)
