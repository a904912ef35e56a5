"""Progress bookkeeping and the status line."""

import io

import pytest

from experiments import cli
from ltjax.runs import progress
from tests.conftest import FakeClock


def test_rates_skip_the_compiling_report_and_eta_follows():
  p = progress.RunProgress.uniform(round_tickets=[2, 5, 5], steps=1000)
  assert p.total == 12_000
  first = p.update(0, 100, now=10.0)  # includes compilation: no rate yet
  assert first["model_steps_per_s"] is None and first["run_seconds_left"] is None
  second = p.update(0, 600, now=11.0)  # 500 steps x 2 tickets in 1 s
  assert second["model_steps_per_s"] == pytest.approx(1000)
  assert second["round_seconds_left"] == pytest.approx(400 * 2 / 1000)
  assert second["run_seconds_left"] == pytest.approx((12_000 - 1200) / 1000)
  fresh = p.update(1, 100, now=30.0)  # a new round's first report: rate kept, not remeasured
  assert fresh["model_steps_per_s"] == pytest.approx(1000)
  assert fresh["model_steps_done"] == 2000 + 500
  line = progress.RunProgress.line(fresh, best_val_loss=0.1234)
  assert "round 1/2 step 100/1000" in line and "5 tickets" in line and "run 20.8%, left 10s" in line
  assert "best val loss 0.1234" in line


def test_resumed_runs_count_finished_rounds_as_done():
  p = progress.RunProgress.uniform([1, 3, 3], steps=10, first_round=2)
  assert p.done_before == 40
  assert p.update(2, 5, now=0.0)["model_steps_done"] == 55


def test_tickets_on_budgets_of_their_own_count_only_the_steps_they_train():
  # A Scratch-B round: two tickets of 100 steps and one scratch net of 200; a later rewind point
  # (first step 50) trains 50 steps.
  p = progress.RunProgress([[(0, 100)], [(0, 100), (0, 100), (0, 200), (50, 100)]])
  assert p.total == 100 + 450 and p.length(1) == 200
  p.update(1, 100, now=0.0)
  late = p.update(1, 150, now=1.0)  # only the scratch net trained: 50 model-steps in 1 s
  assert late["model_steps_per_s"] == pytest.approx(50) and late["training"] == 1
  assert late["model_steps_done"] == 100 + 350 + 50 and late["round_seconds_left"] == pytest.approx(1.0)
  assert "1 of 4 tickets training" in progress.RunProgress.line(late)
  assert p.update(1, 0, now=2.0)["training"] == 3  # the rewind point has not started


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (59.4, "59s"), (61, "1m01s"), (3725, "1h02m")])
def test_duration(seconds, text):
  assert progress.duration(seconds) == text


class _Tty(io.StringIO):
  def isatty(self):
    return True


def test_status_line_rewrites_itself_in_a_terminal_and_logs_when_piped():
  clock = FakeClock()
  tty = _Tty()
  line = cli.StatusLine(tty, tty_every_s=0.5, clock=clock, stamp=lambda: "T")
  line("a")
  line("b")  # same instant: throttled
  clock.now = 0.5
  line("c")
  line.log("round done")
  assert tty.getvalue() == "\r\x1b[2Ka\r\x1b[2Kc\r\x1b[2K[T] round done\n"
  piped = io.StringIO()
  line = cli.StatusLine(piped, piped_every_s=10.0, clock=clock, stamp=lambda: "T")
  line("first")  # shown although the clock is younger than the interval (a fresh boot)
  clock.now = 10.4
  line("throttled")
  clock.now = 10.5
  line("second")
  assert piped.getvalue() == "[T] first\n[T] second\n"


@pytest.mark.parametrize("uptime", [0.0, 3.0, 1e6])
def test_status_line_shows_the_first_line_whatever_the_uptime(uptime):
  clock = FakeClock()
  clock.now = uptime
  piped = io.StringIO()
  cli.StatusLine(piped, piped_every_s=3600, clock=clock, stamp=lambda: "T")("first")
  assert piped.getvalue() == "[T] first\n"


def test_tickets_stepped_and_discarded_cost_the_whole_round():
  # Vmapped tickets run every step and keep only their own: an idle one costs as much as training.
  p = progress.RunProgress([[(0, 100), (0, 200)]], idle_costs=True)
  assert p.total == 400
  p.update(0, 100, now=0.0)
  late = p.update(0, 150, now=1.0)
  assert late["model_steps_per_s"] == pytest.approx(100) and late["training"] == 1
