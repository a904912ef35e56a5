"""Where a process's wall time went: named phases on the host, compilation from JAX's own events.

A `Ledger` is made active with `recording()`; code marks its phases with `phase(name)`, which costs
nothing when no ledger is active (the library's functions stay usable on their own). Phases nest
and each second is counted once, in the innermost phase open at the time; the seconds JAX reports
compiling (tracing, lowering, XLA compilation, reading the compilation cache) are moved from the
phase they happened in to 'compile' (on the ledger's own thread: a compile on another thread
overlaps the phases, `ltjax.engine.ahead`). Device work is asynchronous, so a phase that waits for
results (a write that fetches the trained weights, say) also holds the computation it waits for.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Iterator

import jax
from jax import monitoring

COMPILE = "compile"
_COMPILE_EVENTS = ("/jax/core/compile/", "/jax/compilation_cache/cache_retrieval_time_sec")
_active: "Ledger | None" = None
_lock = threading.Lock()
_listening = False


def process_age() -> float:
  """Seconds since this process started (Linux; 0 elsewhere): interpreter start-up and imports."""
  try:
    with open("/proc/self/stat") as f, open("/proc/uptime") as g:
      ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
      return max(float(g.read().split()[0]) - ticks / os.sysconf("SC_CLK_TCK"), 0.0)
  except (OSError, ValueError, IndexError):
    return 0.0


class Ledger:
  """Seconds per phase, in the order the phases first appeared."""

  def __init__(self, start: float | None = None, clock=time.perf_counter):
    self.clock = clock
    self.start = clock() if start is None else start  # the process's zero
    self.seconds: dict[str, float] = {}
    self._stack: list[list] = []  # [name, opened at, seconds of nested phases and compiles]
    self.thread = threading.get_ident()  # whose compiles are billed

  def add(self, name: str, seconds: float) -> None:
    self.seconds[name] = self.seconds.get(name, 0.0) + seconds

  def _compiled(self, seconds: float) -> None:
    self.add(COMPILE, seconds)
    if self._stack:
      self._stack[-1][2] += seconds

  @contextlib.contextmanager
  def phase(self, name: str) -> Iterator[None]:
    self.seconds.setdefault(name, 0.0)
    self._stack.append([name, self.clock(), 0.0])
    try:
      yield
    finally:
      _, opened, inner = self._stack.pop()
      spent = self.clock() - opened
      self.add(name, spent - inner)
      if self._stack:
        self._stack[-1][2] += spent

  def waterfall(self, width: int = 40) -> str:
    """The phases as a text waterfall: seconds, share of the wall time, and a bar that starts
    where the phases before it ended; 'other' is the wall time no phase claimed."""
    total = max(self.clock() - self.start, 1e-9)
    rows = [(n, s) for n, s in self.seconds.items() if s > 0]
    rows.append(("other", max(total - sum(s for _, s in rows), 0.0)))
    lines, at = [f"where the time went: {total:.1f} s"], 0.0
    for name, s in rows:
      a, b = round(at / total * width), round((at + s) / total * width)
      bar = " " * a + "#" * max(b - a, 1 if s > 0 else 0)
      lines.append(f"  {name:<24} {s:8.2f} s {100 * s / total:5.1f}%  |{bar:<{width}}|")
      at += s
    return "\n".join(lines)


def _on_event(event: str, seconds: float, **_) -> None:
  ledger = _active
  if ledger is not None and event.startswith(_COMPILE_EVENTS) and threading.get_ident() == ledger.thread:
    ledger._compiled(seconds)


@contextlib.contextmanager
def recording(ledger: Ledger) -> Iterator[Ledger]:
  """Make `ledger` the one `phase` writes to (one at a time, process-wide)."""
  global _active, _listening
  with _lock:
    if not _listening:
      monitoring.register_event_duration_secs_listener(_on_event)
      _listening = True
    previous, _active = _active, ledger
  try:
    yield ledger
  finally:
    _active = previous


def phase(name: str):
  """Time the enclosed block as `name` in the active ledger (nothing when none is active)."""
  return _active.phase(name) if _active is not None else contextlib.nullcontext()


def wait(tree):
  """Block until `tree` is computed when a ledger is recording, so the device time counts in the
  phase that launched it rather than in the first one that reads a result; else return at once."""
  if _active is not None:
    jax.block_until_ready(tree)
  return tree
