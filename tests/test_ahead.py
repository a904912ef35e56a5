"""Compiling ahead on another thread: the later call reuses it, and the ledger bills only waiting."""

import functools
import threading

import jax
import jax.numpy as jnp
import numpy as np

from ltjax.engine import ahead, timing

_COMPILE = "/jax/core/compile/backend_compile_duration"


@functools.partial(jax.jit, static_argnums=0)
def _scaled_sin(scale, x):
  return jnp.sin(x) * scale


def _compiles(fn):
  """The functions `fn()` traces, lowers, compiles or reads from the compilation cache (any
  thread; a persistent cache another test enabled may hold the program)."""
  seen = []

  def listener(event, seconds, **kw):
    if event.startswith(timing._COMPILE_EVENTS):
      seen.append(kw.get("fun_name", "?"))
  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    fn()
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)
  return seen


def test_the_call_after_compiling_ahead_compiles_nothing():
  x, longer = jnp.arange(5.0), jnp.arange(6.0)
  jobs = []
  start = lambda: jobs.append(ahead.Ahead(_scaled_sin, 7.0, jax.ShapeDtypeStruct(x.shape, x.dtype)))  # noqa: E731
  assert "jit(_scaled_sin)" in _compiles(lambda: (start(), jobs[0].wait()))
  assert jobs[0].error is None
  out = []
  assert _compiles(lambda: out.append(_scaled_sin(7.0, x))) == []
  np.testing.assert_allclose(out[0], np.sin(np.arange(5.0)) * 7, rtol=1e-6)
  # A shape it was not compiled for compiles at the call, as before.
  assert "jit(_scaled_sin)" in _compiles(lambda: _scaled_sin(7.0, longer))


def test_a_failed_compile_ahead_is_kept_for_the_call_to_raise():
  bad = ahead.Ahead(_scaled_sin, 1.0, "not an array")
  bad.wait()
  assert bad.error is not None


class _Clock:
  def __init__(self):
    self.now = 0.0

  def __call__(self):
    return self.now


def test_compiles_on_other_threads_are_not_billed_but_waiting_for_them_is():
  clock = _Clock()
  ledger = timing.Ledger(start=0.0, clock=clock)
  job = ahead.Ahead(_scaled_sin, 3.0, jax.ShapeDtypeStruct((2,), jnp.float32))
  job._thread.join()

  class Slow:  # a compile still running when the program is wanted: 2 s of waiting
    def join(self):
      clock.now += 2.0
  job._thread = Slow()
  with timing.recording(ledger):
    with timing.phase("training"):
      clock.now = 10.0
      other = threading.Thread(target=timing._on_event, args=(_COMPILE, 4.0))
      other.start()
      other.join()
      timing._on_event(_COMPILE, 1.0)  # this thread's compile moves out of the phase
    job.wait()
  assert ledger.seconds["training"] == 9.0
  assert ledger.seconds[timing.COMPILE] == 3.0
