"""The run's waterfall (ltjax.engine.timing): nested phases counted once, compilation moved out
of the phase it happened in, nothing recorded without an active ledger. A fake clock, no waiting."""

import itertools

from jax import monitoring

from ltjax.engine import timing
from tests.conftest import FakeClock


def test_nested_phases_and_compiles_are_each_counted_once():
  clock = FakeClock()
  ledger = timing.Ledger(clock=clock)
  with timing.recording(ledger):
    with timing.phase("training"):
      clock.now += 3.0
      with timing.phase("write: checkpoints"):
        clock.now += 1.0
      monitoring.record_event_duration_secs("/jax/core/compile/backend_compile_duration", 2.0)
      clock.now += 2.0  # the compile's own seconds
    monitoring.record_event_duration_secs("/jax/some/other/event", 5.0)  # not a compile
    with timing.phase("training"):
      clock.now += 0.5
  clock.now += 0.25  # claimed by no phase
  assert ledger.seconds == {"training": 3.5, "write: checkpoints": 1.0, "compile": 2.0}
  text = ledger.waterfall(width=20)
  assert text.splitlines()[0] == "where the time went: 6.8 s"
  rows = {line.split()[0]: line for line in text.splitlines()[1:]}
  assert set(rows) == {"training", "write:", "compile", "other"} and "0.25 s" in rows["other"]
  # Bars follow each other: each starts where the one before ended.
  bars = [line.split("|")[1] for line in text.splitlines()[1:]]
  starts = [len(b) - len(b.lstrip()) for b in bars]
  assert starts == sorted(starts) and all(len(b) == 20 for b in bars)


def test_without_an_active_ledger_nothing_is_recorded():
  ledger = timing.Ledger(clock=itertools.count().__next__)
  with timing.phase("training"):  # no ledger recording: a no-op
    pass
  assert ledger.seconds == {}
  with timing.recording(ledger):
    pass
  monitoring.record_event_duration_secs("/jax/core/compile/backend_compile_duration", 2.0)
  assert ledger.seconds == {}  # no longer active
