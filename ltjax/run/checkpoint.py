"""Orbax checkpoints of a run: the lineage after every completed round, and mid-round states.

Orbax writes each checkpoint into a temporary directory and renames it when complete, so a kill
during a save leaves the previous checkpoint as the latest one. Saves are synchronous: when
`save_*` returns, the checkpoint is on disk.
"""

from __future__ import annotations

import pathlib
import shutil
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

  def __init__(self, workdir: pathlib.Path | str):
    self.root = pathlib.Path(workdir) / "checkpoints"
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

  @staticmethod
  def remove(workdir: pathlib.Path | str) -> None:
    shutil.rmtree(pathlib.Path(workdir) / "checkpoints", ignore_errors=True)


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


def load_trained(workdir: pathlib.Path | str, next_round: int) -> PyTree:
  """The trained weights and masks of round `next_round - 1`, as saved (numpy arrays)."""
  manager = _manager(pathlib.Path(workdir) / "checkpoints" / "rounds", max_to_keep=2)
  try:
    return manager.restore(next_round, args=ocp.args.Composite(trained=ocp.args.StandardRestore()))["trained"]
  finally:
    manager.close()
