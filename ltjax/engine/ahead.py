"""Compiling a program before it is needed, on another thread.

XLA compiles a program on one core, and a round's training program takes seconds to compile on a
CPU. A program needed only later (the test evaluation, once training ends) compiles meanwhile on
another core: `jax.jit` keeps what `lower(...).compile()` built, so the later call neither traces
nor compiles it again. The compile's seconds overlap other work, so the timing ledger does not
bill them (`ltjax.engine.timing` counts only its own thread's); waiting for it is billed.
"""

from __future__ import annotations

import threading

from ltjax.engine import timing


class Ahead:
  """`jitted` compiling for `args` (arrays or `jax.ShapeDtypeStruct`s) on a daemon thread."""

  def __init__(self, jitted, *args):
    self.error: Exception | None = None
    self._thread = threading.Thread(target=self._compile, args=(jitted, args), daemon=True,
                                    name="ltjax-compile-ahead")
    self._thread.start()

  def _compile(self, jitted, args) -> None:
    try:
      jitted.lower(*args).compile()
    except Exception as e:  # noqa: BLE001 -- the real call compiles again and raises where it belongs
      self.error = e

  def wait(self) -> None:
    """Block until the compile is done (before calling the program: no second compile)."""
    with timing.phase(timing.COMPILE):
      self._thread.join()
