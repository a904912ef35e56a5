"""Orbax checkpoints of a run: the lineage after every completed round, and mid-round states.

Orbax writes each checkpoint into a temporary directory and renames it when complete, so a kill
during a save leaves the previous checkpoint as the latest one. Saves are synchronous: when
`save_*` returns, the checkpoint is on disk.
"""

from __future__ import annotations

import pathlib
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

PyTree = Any


def _manager(directory: pathlib.Path, max_to_keep: int) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                         enable_async_checkpointing=False,
                                         cleanup_tmp_directories=True)
  return ocp.CheckpointManager(directory.absolute(), options=options,
                               item_names=("state", "trained", "meta"))


class Checkpoints:
  """`rounds/<r>`: the lineage that starts round r (plus round r-1's trained weights and masks);
  `midround/<step>`: the states of a round in progress."""

  def __init__(self, workdir: pathlib.Path | str, subdir: str = "checkpoints"):
    self.root = pathlib.Path(workdir) / subdir
    self._rounds = _manager(self.root / "rounds", max_to_keep=2)
    self._mid = _manager(self.root / "midround", max_to_keep=1)

  def save_round(self, next_round: int, tree: PyTree, meta: dict, trained: PyTree) -> None:
    """`tree` resumes the run; `trained` (the finished round's weights and masks) is for analysis."""
    self._rounds.save(next_round, args=ocp.args.Composite(
        state=ocp.args.StandardSave(_host(tree)), trained=ocp.args.StandardSave(_host(trained)),
        meta=ocp.args.JsonSave(meta)), force=True)
    self._rounds.wait_until_finished()
    self.clear_midround()

  def latest_round(self, target: PyTree) -> tuple[int, PyTree, dict] | None:
    """(next round, tree, meta) of the latest round checkpoint, restored into `target`'s structure."""
    return _restore_latest(self._rounds, target)

  def round_steps(self) -> list[int]:
    self._rounds.reload()
    return sorted(self._rounds.all_steps())

  def restore_round(self, next_round: int, target: PyTree) -> tuple[PyTree, dict]:
    """The lineage checkpoint that starts `next_round`, restored into `target`'s structure."""
    restored = self._rounds.restore(next_round, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(_host(target)), meta=ocp.args.JsonRestore()))
    return restored["state"], restored["meta"]

  def save_midround(self, step: int, tree: PyTree, meta: dict) -> None:
    self._mid.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(_host(tree)),
                                                 meta=ocp.args.JsonSave(meta)), force=True)
    self._mid.wait_until_finished()

  def latest_midround(self, target: PyTree) -> tuple[int, PyTree, dict] | None:
    return _restore_latest(self._mid, target)

  def has_midround(self) -> bool:
    """Whether any mid-round checkpoint is on disk (torn ones included): building the restore
    target costs a round's start states, which a run with none need not compute twice."""
    self._mid.reload()
    return bool(self._mid.all_steps())

  def clear_midround(self) -> None:
    for step in self._mid.all_steps():
      self._mid.delete(step)
    self._mid.wait_until_finished()

  def close(self) -> None:
    self._rounds.close()
    self._mid.close()


def _host(tree: PyTree) -> PyTree:
  """Checkpoints hold host arrays, complete on every process: with several processes, orbax's
  convention is that the primary process writes them (and every process can read them back)."""
  return jax.tree.map(np.asarray, tree)


def _restore_latest(manager: ocp.CheckpointManager, target: PyTree):
  """The newest checkpoint that restores; a torn one (killed mid-save or mid-delete) is skipped."""
  target = _host(target)
  manager.reload()
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      restored = manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
    except Exception as e:  # noqa: BLE001 -- any unreadable checkpoint is skipped, not fatal
      logging.warning("skipping unreadable checkpoint %s/%s: %s", manager.directory, step,
                      str(e).splitlines()[0] if str(e) else type(e).__name__)
      continue
    return step, restored["state"], restored["meta"]
  return None


def read(workdir: pathlib.Path | str, item: str = "state", key: str | None = None,
         step: int | None = None) -> tuple[int, PyTree] | None:
  """(step, tree) of a round checkpoint's `item` ('state': the lineage that starts round `step`;
  'trained': round step-1's trained weights and masks), only its top-level `key` if given, as
  numpy arrays: the newest that reads, or `step`. None if none reads.

  Read-only, for analysis: no orbax manager, so nothing is created and no temporary directory
  is cleaned up under a run that may still be writing; a torn checkpoint is skipped.
  """
  rounds = pathlib.Path(workdir).absolute() / "checkpoints" / "rounds"
  steps = sorted((int(p.name) for p in rounds.iterdir() if p.name.isdigit() and p.is_dir()),
                 reverse=True) if rounds.is_dir() else []
  handler = ocp.PyTreeCheckpointHandler()
  try:
    for s in steps if step is None else [step] if step in steps else []:
      path = rounds / str(s) / item
      try:
        tree = handler.metadata(path).tree
        wanted = tree if key is None else {key: tree[key]}
        as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), wanted)
        out = handler.restore(path, args=ocp.args.PyTreeRestore(
            item=wanted, restore_args=as_numpy, partial_restore=key is not None))
      except Exception:  # noqa: BLE001 -- any unreadable checkpoint is skipped, not fatal
        continue
      return s, out if key is None else out[key]
  finally:
    handler.close()
  return None
