"""Where a run stands: steps done, model-steps/s and time left, for the round and the whole run.

Pure bookkeeping (no printing): the binary decides whether the line overwrites itself in a
terminal or goes to the log. Rates skip each round's first report, which includes compilation.
"""

from __future__ import annotations

import dataclasses


def duration(seconds: float) -> str:
  """'42s', '3m07s', '1h05m'."""
  s = int(round(max(seconds, 0.0)))
  if s < 60:
    return f"{s}s"
  if s < 3600:
    return f"{s // 60}m{s % 60:02d}s"
  return f"{s // 3600}h{s % 3600 // 60:02d}m"


@dataclasses.dataclass
class RunProgress:
  """Round r trains ticket i over steps [first, last) = `spans[r][i]` (a round's tickets may have
  budgets of their own: Scratch-B's, a later rewind point's); rounds before `first_round` are done.
  Work is counted in model-steps computed: only the trained ones where idle tickets skip their
  steps (`Trainer.skips_idle`), every ticket's over the whole round where they are stepped and
  discarded (`idle_costs`), so that rates and times left hold either way."""
  spans: list[list[tuple[int, int]]]
  first_round: int = 0
  idle_costs: bool = False
  smoothing: float = 0.3  # weight of the newest rate in the moving average

  @classmethod
  def uniform(cls, round_tickets: list[int], steps: int, first_round: int = 0) -> RunProgress:
    """`round_tickets[r]` tickets, each training `steps` steps from 0."""
    return cls([[(0, steps)] * k for k in round_tickets], first_round)

  def __post_init__(self):
    self._lengths = [max((last for _, last in spans), default=0) for spans in self.spans]
    # What each ticket computes: its own span, or (stepped and discarded) the round's.
    self._work = [[(min(f for f, _ in spans), end)] * len(spans) if self.idle_costs and spans else spans
                  for spans, end in zip(self.spans, self._lengths)]
    self._round_work = [self._done(r, end) for r, end in enumerate(self._lengths)]
    self.total = sum(self._round_work)
    self.done_before = sum(self._round_work[:self.first_round])
    self.rate = None  # model-steps/s, moving average
    self._last: tuple[int, int, float] | None = None  # (round, step, time) of the last report

  def length(self, round_index: int) -> int:
    return self._lengths[round_index]

  def _done(self, round_index: int, step: int) -> int:
    return sum(min(max(step - first, 0), last - first) for first, last in self._work[round_index])

  def update(self, round_index: int, step: int, now: float) -> dict:
    """Record a report at `step` of `round_index` (steps count from 0 in each round)."""
    spans, done_here = self.spans[round_index], self._done(round_index, step)
    if self._last is not None and self._last[0] == round_index and step > self._last[1]:
      rate = (done_here - self._done(round_index, self._last[1])) / max(now - self._last[2], 1e-9)
      self.rate = rate if self.rate is None else (1 - self.smoothing) * self.rate + self.smoothing * rate
    self._last = (round_index, step, now)
    done = sum(self._round_work[:round_index]) + done_here
    round_left = self._round_work[round_index] - done_here
    return {"round": round_index, "rounds": len(self.spans), "step": step,
            "steps": self.length(round_index), "tickets": len(spans),
            "training": sum(first <= step < last for first, last in spans),
            "model_steps_done": done, "model_steps_total": self.total, "model_steps_per_s": self.rate,
            "round_seconds_left": None if not self.rate else round_left / self.rate,
            "run_seconds_left": None if not self.rate else (self.total - done) / self.rate}

  @staticmethod
  def line(p: dict, best_val_loss: float | None = None) -> str:
    rate = p["model_steps_per_s"]
    parts = [f"round {p['round']}/{p['rounds'] - 1} step {p['step']}/{p['steps']}",
             f"{p['tickets']} tickets" if p["training"] in (0, p["tickets"])
             else f"{p['training']} of {p['tickets']} tickets training",
             f"{rate:,.0f} model-steps/s" if rate else "compiling/measuring",
             f"round left {duration(p['round_seconds_left'])}" if rate else None,
             f"run {100 * p['model_steps_done'] / p['model_steps_total']:.1f}%"
             + (f", left {duration(p['run_seconds_left'])}" if rate else ""),
             None if best_val_loss is None else f"best val loss {best_val_loss:.4f}"]
    return " | ".join(x for x in parts if x)
