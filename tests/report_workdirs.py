"""Hand-made workdirs for the report's tests: laid out as a run writes them, with no training."""

import json

import numpy as np

from ltjax.reports import analysis
from ltjax.runs import checkpoint

SHAPES = {"fc1/kernel": (12, 6), "fc1/bias": (6,), "fc2/kernel": (6, 4), "fc2/bias": (4,),
          "out/kernel": (4, 3), "out/bias": (3,)}
RATES = {"fc1/kernel": 0.2, "fc2/kernel": 0.2, "out/kernel": 0.1}
TRIALS, ROUNDS, EVALS = 3, 4, 12


def write_workdir(path, trials=TRIALS, shapes=SHAPES, rates=RATES):
  """A workdir as experiment.train_and_evaluate lays it out, with nested IMP-like masks, and no
  checkpoints/: the figures that need theta_0 are skipped, not faked (see `write_checkpoint`)."""
  rng = np.random.default_rng(0)
  masks = {k: np.ones((trials,) + s, bool) for k, s in shapes.items()}
  recs = []
  for r in range(ROUNDS):
    if r:
      for k, rate in rates.items():  # prune a share of each trial's survivors at random
        for t in range(trials):
          alive = np.flatnonzero(masks[k][t])
          drop = rng.choice(alive, int(round(rate * alive.size)), replace=False)
          masks[k][t].flat[drop] = False
    layer_density = {k: masks[k].mean(axis=tuple(range(1, masks[k].ndim))) for k in rates}
    density = sum(masks[k].sum(axis=(1, 2)) for k in rates) / sum(np.prod(shapes[k]) for k in rates)
    kinds = ("ticket",) if r == 0 else ("ticket", "reinit", "random_mask")
    ids = [(t, i, 0) for i, _ in enumerate(kinds) for t in range(trials)]
    for t, i, _ in ids:
      recs.append({"round": r, "trial": t, "kind": kinds[i], "draw": 0, "seed": 0,
                   "density": float(density[t]),
                   "layer_density": {k: float(v[t]) for k, v in layer_density.items()},
                   "early_stop_step": int(100 * rng.integers(2, EVALS + 1)), "val_loss": 0.1,
                   "val_accuracy": 0.9, "test_accuracy": float(0.9 + 0.01 * rng.random()),
                   "final_test_accuracy": 0.9, "diverged": False, "steps_trained": 100 * EVALS,
                   "wall_seconds": 1.0})
    k = len(ids)
    step = np.repeat(100 * np.arange(1, EVALS + 1)[:, None], k, axis=1)
    acc = 1 - 0.5 * np.exp(-step / 300) - 0.01 * rng.random((EVALS, k))
    (path / "curves").mkdir(parents=True, exist_ok=True)
    np.savez(path / "curves" / f"round_{r:02d}.npz", ids=np.array(ids), step=step,
             kinds=np.array(["ticket", "reinit", "random_mask"]), train_loss=1 - acc,
             val_loss=1 - acc, val_accuracy=acc)
    (path / "masks").mkdir(exist_ok=True)
    np.savez(path / "masks" / f"round_{r:02d}.npz",
             **{k: np.packbits(m, axis=-1) for k, m in masks.items()},
             **{f"shape:{k}": np.asarray(s) for k, s in shapes.items()})
  (path / "results.jsonl").write_text("".join(json.dumps(x) + "\n" for x in recs))
  (path / "config.json").write_text(json.dumps({"config": {
      "model": "lenet_300_100", "dataset": "handmade", "name": "handmade", "trials": trials,
      "seed": 0, "controls": ["reinit", "random_mask"], "reinit_draws": 1,
      "train": {"optimizer": "adam", "lr": 1e-3, "batch_size": 60, "steps": 100 * EVALS,
                "eval_every": 100},
      "prune": {"mode": "iterative", "rounds": ROUNDS - 1, "fc_rate": 0.2, "output_rate": 0.1,
                "conv_rate": 0.0, "scope": "layerwise", "score": "magnitude", "rewind_step": 0}}}))
  return path


def nest(flat):
  """{'fc1/kernel': x} -> {'fc1': {'kernel': x}}: a params pytree as flax lays it out."""
  out = {}
  for key, value in flat.items():
    *parents, leaf = key.split("/")
    node = out
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = value
  return out


def write_checkpoint(path, init, next_round=ROUNDS):
  """Round checkpoints as the run saves them (`Checkpoints.save_round`, the real writer) whose
  lineage holds `init` ({leaf path: [trials, ...]}) as theta_0; returns the start weights saved
  beside it, which the report must not mistake for theta_0."""
  start = {k: v + 1.0 for k, v in init.items()}
  ckpt = checkpoint.Checkpoints(path)
  try:
    for r in range(max(1, next_round - 1), next_round + 1):  # two kept, as a run keeps them
      lineage = {"init_params": nest(init), "start_params": nest(start),
                 "found_after": np.zeros(len(next(iter(init.values()))), np.int32)}
      trained = {"params": nest(start), "mask": nest({k: v > 0 for k, v in init.items()})}
      ckpt.save_round(r, lineage, {"round": r}, trained)
  finally:
    ckpt.close()
  return start


def handmade_run(path):
  """`write_workdir` loaded as the report loads a workdir."""
  return analysis.load_run(write_workdir(path), label="handmade")


def checkpointed_run(path):
  """The hand-made workdir with round checkpoints holding theta_0, as a run leaves it; with the
  theta_0 written."""
  path = write_workdir(path)
  rng = np.random.default_rng(1)
  init = {k: rng.normal(size=(TRIALS,) + s).astype(np.float32) for k, s in SHAPES.items()}
  write_checkpoint(path, init)
  return analysis.load_run(path, label="checkpointed"), init
