"""The XOR experiment of the paper's first version: unit pruning of a 2-10-1 MLP over N inits.

Setup (the defaults of `XorConfig`): the four XOR points, inputs in {0, 1}, label x1 xor x2,
trained full batch (all 4 points every step). Network `xor_mlp`: 2 -> H ReLU units -> 1 logit,
Gaussian Glorot kernels, zero biases; sigmoid cross-entropy (`train.cross_entropy`); Adam at
lr 0.03 for 2,000 steps. Each strategy/size trains its N inits as one vmapped, jitted `lax.scan`
(`train.Trainer.train_step`, so pruned weights are re-masked after every update). Narrower nets
are 10-wide nets with units masked off (`embed`), so one compiled program serves every run.

Outcomes, on the final weights over the four points:
  found the decision boundary (DB): all four points on the right side (logit > 0 <=> label 1);
  zero loss (ZL): mean cross-entropy below `zl_threshold` = 1e-3, so every point gets its label
    with probability > 0.996. Cross-entropy only tends to 0, so "zero" needs a threshold; 1e-3 is
    far below the plateaus where ReLU nets stall (two points sharing a logit: loss >= log(2)/2 =
    0.347) and is reached by converging nets within the budget: at lr 0.03 the median net gets
    there in 650-930 steps, and >= 98% of the nets that reach it within 6,000 steps do so within
    2,000. So ZL is "converged to the loss-0 solution", not a race: with a tight budget it would
    measure speed (at lr 0.01, dense nets' ZL goes from ~20% at 1,000 steps to ~93% at 3,000
    while DB stays at ~93%). ZL implies DB; DB without ZL is a net whose four logits have the
    right sign but a small margin (e.g. all near 0 on a plateau).

Unit pruning: `unit_mask` turns a per-unit keep vector into a params-shaped bool mask (the
masks.py machinery) zeroing the unit's incoming kernel column, its bias and its outgoing kernel
row. Scores come from trained weights (`STRATEGIES`):
  input magnitude: L2 norm of the unit's incoming kernel column (2 weights; bias excluded);
  output magnitude: L2 norm of its outgoing kernel row (|w| for the single logit);
  product: input x output magnitude, iteratively;
  one-shot product: the same score on the trained 10-unit net, straight to 4 and to 2 units.
The iterative strategies go 10 -> 4 -> 2: after each pruning step the survivors restart from the
ORIGINAL initialization (the lottery-ticket reset) and retrain; the next ranking uses those
retrained weights. Ties go to the lower index; pruned units stay pruned.

All strategies start from the same N trained 10-unit nets (a paired comparison; the paper ran
separate trials per row, so its 10-unit column varies by row and ours cannot), so "one-shot
product" and "product" coincide at 4 units. Percentages are of all N inits. The from-scratch
control trains fresh H-unit nets (their own H-wide Glorot init); its 10-unit row is the dense net.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ltjax import models
from ltjax.core import masks as masks_lib
from ltjax.engine import train

PyTree = Any

ONE_SHOT_PRODUCT, INPUT, OUTPUT, PRODUCT = (
    "one-shot product", "input magnitude", "output magnitude", "product")
STRATEGIES = (ONE_SHOT_PRODUCT, INPUT, OUTPUT, PRODUCT)
ITERATIVE = (INPUT, OUTPUT, PRODUCT)

# The paper's tables, in %: {strategy: {units: (DB, ZL)}} and {units: (DB, ZL)}.
PAPER_PRUNED = {
    ONE_SHOT_PRODUCT: {10: (99.2, 93.3), 4: (98.0, 90.3), 2: (82.4, 65.3)},
    INPUT: {10: (98.9, 93.5), 4: (97.9, 92.2), 2: (83.8, 76.5)},
    OUTPUT: {10: (99.0, 93.3), 4: (96.9, 85.9), 2: (78.6, 56.1)},
    PRODUCT: {10: (98.5, 92.9), 4: (97.6, 90.3), 2: (91.5, 79.4)},
}
PAPER_SCRATCH = {10: (98.5, 92.9), 8: (96.8, 87.5), 6: (92.5, 76.8), 4: (78.3, 55.3),
                 2: (49.1, 17.6)}

_OPTIMIZERS = {"adam": optax.adam, "sgd": optax.sgd}
_INPUTS = {"01": (0.0, 1.0), "pm1": (-1.0, 1.0)}
_ACTIVATIONS = ("relu", "tanh", "sigmoid")
OPTIMIZERS, INPUTS, ACTIVATIONS = tuple(_OPTIMIZERS), tuple(_INPUTS), _ACTIVATIONS


class XorError(ValueError):
  """An invalid experiment setting."""


@dataclasses.dataclass(frozen=True)
class XorConfig:
  """Everything that fixes a run; the same config gives the same table."""
  inits: int = 1000
  steps: int = 2000
  learning_rate: float = 0.03
  optimizer: str = "adam"           # 'adam' or 'sgd'
  activation: str = "relu"          # hidden units: 'relu', 'tanh' or 'sigmoid'
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
    if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
      raise XorError(f"learning_rate must be > 0, got {self.learning_rate}")
    if self.optimizer not in _OPTIMIZERS:
      raise XorError(f"unknown optimizer {self.optimizer!r}; use one of {sorted(_OPTIMIZERS)}")
    if self.activation not in _ACTIVATIONS:
      raise XorError(f"unknown activation {self.activation!r}; use one of {list(_ACTIVATIONS)}")
    if self.inputs not in _INPUTS:
      raise XorError(f"unknown inputs {self.inputs!r}; use one of {sorted(_INPUTS)}")
    if not 0 < self.zl_threshold < math.log(2):
      raise XorError(f"zl_threshold must be in (0, log 2), got {self.zl_threshold}")
    if self.hidden < 2:
      raise XorError(f"hidden must be >= 2, got {self.hidden}")
    t = list(self.targets)
    if not t or t != sorted(set(t), reverse=True) or not all(0 < k < self.hidden for k in t):
      raise XorError(f"targets must decrease strictly within (0, {self.hidden}), "
                     f"got {self.targets}")
    if not self.scratch_sizes or not all(0 < u <= self.hidden for u in self.scratch_sizes):
      raise XorError(f"scratch sizes must be in [1, {self.hidden}], got {self.scratch_sizes}")


# ---------------------------------------------------------------- data and network
def xor_data(inputs: str = "01") -> tuple[jax.Array, jax.Array]:
  """The four XOR points [4, 2] (float32) and their labels [4] (int32, 1 iff exactly one is on)."""
  lo, hi = _INPUTS[inputs]
  bits = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
  return (jnp.asarray(np.where(bits == 1, hi, lo), jnp.float32),
          jnp.asarray(bits[:, 0] ^ bits[:, 1], jnp.int32))


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


def keep_top(scores: jax.Array, alive: jax.Array, k) -> jax.Array:
  """bool[H] keeping the k best-scoring alive units (ties: lower index); dead units stay dead."""
  index = jnp.arange(scores.shape[0])
  order = jnp.lexsort((index, -scores.astype(jnp.float32), ~alive))  # alive first, best first
  rank = jnp.zeros_like(index).at[order].set(index)
  return (rank < k) & alive


def unit_mask(params: PyTree, keep: jax.Array) -> PyTree:
  """A params-shaped bool mask pruning the units where `keep` (bool[H]) is False.

  Zeroes each pruned unit's fc1 kernel column and fc1 bias entry (its input) and its out kernel
  row (its output); the output bias stays. Unlike weight pruning this prunes a bias, a `fixed`
  leaf, so check such masks with `masks.check(params, mask)` and no roles.
  """
  mask = masks_lib.ones(params)
  fc1, out = params["fc1"]["kernel"], params["out"]["kernel"]
  mask["fc1"] = {"kernel": jnp.broadcast_to(keep[None, :], fc1.shape), "bias": keep}
  mask["out"] = {"kernel": jnp.broadcast_to(keep[:, None], out.shape), "bias": mask["out"]["bias"]}
  return mask


def embed(params: PyTree, hidden: int) -> tuple[PyTree, jax.Array]:
  """An h-unit net as a zero-padded `hidden`-unit net, and its keep vector (the first h units).

  Masked training keeps the padding exactly zero and Adam/SGD act per weight, so training the
  embedded net under `unit_mask(big, keep)` is training the h-unit net.
  """
  pad = hidden - params["fc1"]["bias"].shape[-1]
  big = {"fc1": {"kernel": jnp.pad(params["fc1"]["kernel"], ((0, 0), (0, pad))),
                 "bias": jnp.pad(params["fc1"]["bias"], (0, pad))},
         "out": {"kernel": jnp.pad(params["out"]["kernel"], ((0, pad), (0, 0))),
                 "bias": params["out"]["bias"]}}
  return big, jnp.arange(hidden) < hidden - pad


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def init_many(key: jax.Array, n: int, sizes: tuple[int, ...], hidden: int, activation: str):
  """{units: (params, masks)}: n fresh nets per size, embedded `hidden` wide, stacked on axis 0.

  The `hidden`-unit nets use keys split(key, n); narrower ones split(fold_in(key, units), n).
  One program for every size, looping over keys with `lax.map` (vmapped random draws compile
  ~2x slower on a CPU, and compiling dominates the cost of initializing).
  """

  def one(k, units):
    big, keep = embed(init_params(k, units, activation), hidden)
    return big, unit_mask(big, keep)

  out = {}
  for units in sizes:
    keys = jax.random.split(key if units == hidden else jax.random.fold_in(key, units), n)
    out[units] = jax.lax.map(lambda k, u=units: one(k, u), keys)
  return out


_SCORE_ORDER = (input_magnitude, output_magnitude, product)


@jax.jit
def _prune_many(score_index, trained, alive, k, init):
  def one(p, a):
    return keep_top(jnp.stack([f(p) for f in _SCORE_ORDER])[score_index], a, k)

  keep = jax.vmap(one)(trained, alive)
  return keep, jax.vmap(unit_mask)(init, keep)


def prune_many(strategy: str, trained: PyTree, alive: jax.Array, k: int, init: PyTree):
  """Stacked: rank each net's units by `strategy`, keep k; returns (keep[N, H], masks for `init`).

  Strategy and k are traced, so every pruning step of an experiment shares one program.
  """
  if strategy not in SCORES:
    raise XorError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
  return _prune_many(_SCORE_ORDER.index(SCORES[strategy]), trained, alive, k, init)


# ---------------------------------------------------------------- training and metrics
@dataclasses.dataclass(frozen=True)
class Outcome:
  """One training run of N nets: final params (stacked), loss[N] and points correct[N] (0..4)."""
  params: PyTree
  loss: np.ndarray
  correct: np.ndarray

  def found_boundary(self) -> np.ndarray:
    return self.correct == 4

  def zero_loss(self, threshold: float) -> np.ndarray:
    return self.loss < threshold

  def percentages(self, threshold: float) -> tuple[float, float]:
    """(% DB, % ZL) over the N nets."""
    n = len(self.loss)
    return (100.0 * int(self.found_boundary().sum()) / n,
            100.0 * int(self.zero_loss(threshold).sum()) / n)


@functools.lru_cache(maxsize=None)
def make_trainer(hidden: int, activation: str, optimizer: str,
                 learning_rate: float) -> train.Trainer:
  """Cached, so equal settings share one Trainer and hence one compiled program."""
  return train.Trainer(module=module(hidden, activation),
                       tx=_OPTIMIZERS[optimizer](learning_rate), batch_size=4)


@functools.partial(jax.jit, static_argnums=(0, 5))
def _train_many(trainer: train.Trainer, params, mask, x, y, steps: int):
  def one(p, m):
    state = trainer.init_state(p, m, {}, jax.random.key(0))  # the key only feeds dropout: none

    def body(state, s):
      return trainer.train_step(state, x, y, s)[0], None

    state, _ = jax.lax.scan(body, state, jnp.arange(steps))
    logits = trainer.module.apply({"params": state.params}, x)
    return (state.params, train.cross_entropy(logits, y),
            jnp.sum(train.correct_predictions(logits, y)))

  return jax.vmap(one)(params, mask)


def train_many(trainer: train.Trainer, params: PyTree, mask: PyTree, steps: int,
               inputs: str = "01") -> Outcome:
  """Train stacked nets under stacked masks, full batch, as one program; score the final weights."""
  x, y = xor_data(inputs)
  p, loss, correct = _train_many(trainer, params, mask, x, y, steps)
  return Outcome(params=p, loss=np.asarray(loss), correct=np.asarray(correct))


# ---------------------------------------------------------------- the experiment
def _cells(row: dict[int, tuple[float, float]]) -> dict[str, dict[str, float]]:
  return {str(u): {"db": v[0], "zl": v[1]} for u, v in row.items()}


@dataclasses.dataclass
class XorResults:
  """% DB and % ZL as (db, zl): `pruned[strategy][units]` and `scratch[units]`; wall seconds."""
  config: XorConfig
  pruned: dict[str, dict[int, tuple[float, float]]]
  scratch: dict[int, tuple[float, float]]
  seconds: float

  def to_json(self) -> dict:
    return {"config": dataclasses.asdict(self.config), "seconds": round(self.seconds, 2),
            "pruned": {s: _cells(row) for s, row in self.pruned.items()},
            "scratch": _cells(self.scratch),
            "paper": {"pruned": {s: _cells(row) for s, row in PAPER_PRUNED.items()},
                      "scratch": _cells(PAPER_SCRATCH)}}

  def to_markdown(self) -> str:
    """The two tables, each cell 'ours / paper' (ours alone where the paper has no number)."""
    def fmt(ours, paper, i):
      return f"{ours[i]:.1f}" + (f" / {paper[i]:.1f}" if paper else "")

    sizes = [self.config.hidden, *self.config.targets]
    lines = [f"Pruned: % of {self.config.inits} inits (ours / paper)", "",
             "| strategy | " + " | ".join(f"{u} DB | {u} ZL" for u in sizes) + " |",
             "|---" * (1 + 2 * len(sizes)) + "|"]
    for s, row in self.pruned.items():
      paper = PAPER_PRUNED.get(s, {})
      cells = [fmt(row[u], paper.get(u), i) for u in sizes for i in (0, 1)]
      lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines += ["", f"Trained from scratch: % of {self.config.inits} inits (ours / paper)", "",
              "| units | DB | ZL |", "|---|---|---|"]
    for u, v in self.scratch.items():
      lines.append(f"| {u} | " + " | ".join(fmt(v, PAPER_SCRATCH.get(u), i) for i in (0, 1)) + " |")
    return "\n".join(lines)


def run(cfg: XorConfig = XorConfig(), log: Callable[[str], None] | None = None) -> XorResults:
  """The whole experiment: N dense nets, the four pruning strategies, the from-scratch control."""
  cfg.validate()
  t0 = time.perf_counter()
  say = log or (lambda _: None)
  trainer = make_trainer(cfg.hidden, cfg.activation, cfg.optimizer, float(cfg.learning_rate))
  fit = lambda p, m: train_many(trainer, p, m, cfg.steps, cfg.inputs)  # noqa: E731
  pct = lambda o: o.percentages(cfg.zl_threshold)  # noqa: E731
  n, h = cfg.inits, cfg.hidden
  key = jax.random.key(cfg.seed)

  nets = init_many(key, n, tuple(sorted({h, *cfg.scratch_sizes}, reverse=True)), h, cfg.activation)
  init = nets[h][0]
  dense = fit(*nets[h])
  say(f"dense, {h} units: % DB, ZL = {pct(dense)}")
  all_alive = jnp.ones((n, h), jnp.bool_)

  pruned: dict[str, dict[int, tuple[float, float]]] = {}
  for strategy in STRATEGIES:
    row = {h: pct(dense)}
    source, alive = dense, all_alive
    for k in cfg.targets:
      keep, mask = prune_many(strategy, source.params, alive, k, init)
      ticket = fit(init, mask)  # the lottery-ticket reset: survivors restart from `init`
      row[k] = pct(ticket)
      say(f"{strategy}, {k} units: % DB, ZL = {row[k]}")
      if strategy in ITERATIVE:
        source, alive = ticket, keep
    pruned[strategy] = row

  scratch: dict[int, tuple[float, float]] = {}
  for u in cfg.scratch_sizes:
    scratch[u] = pct(dense if u == h else fit(*nets[u]))
    say(f"from scratch, {u} units: % DB, ZL = {scratch[u]}")
  return XorResults(config=cfg, pruned=pruned, scratch=scratch, seconds=time.perf_counter() - t0)
