"""Gradual (Zhu & Gupta) and dynamic (RigL's cosine drop) schedules, and their exact counts."""

import numpy as np
import pytest

from ltjax.core import pruning, schedules


def test_polynomial_is_zhu_and_gupta_at_every_update_and_holds_between():
  sched = schedules.Polynomial(initial=0.0, final=0.9, begin=1_000, end=5_000, every=500).check(steps=6_000)
  steps = sched.update_steps()
  assert steps.tolist() == list(range(1_000, 5_001, 500))
  n_dt = 4_000
  want = 0.9 + (0.0 - 0.9) * (1 - (steps - 1_000) / n_dt) ** 3
  np.testing.assert_allclose(sched.sparsity(steps), want, atol=1e-6)
  assert float(sched.sparsity(1_499)) == float(sched.sparsity(1_000))  # held until the next update
  assert float(sched.sparsity(0)) == 0.0 and float(sched.sparsity(9_999)) == pytest.approx(0.9)
  assert np.all(np.diff(sched.sparsity(np.arange(0, 6_000, 7))) >= 0)  # never less sparse later


def test_polynomial_ends_on_its_target_when_the_interval_does_not_divide_the_span():
  sched = schedules.Polynomial(0.5, 0.8, begin=0, end=1_000, every=300).check()
  assert sched.update_steps().tolist() == [0, 300, 600, 900, 1_000]
  assert float(sched.sparsity(1_000)) == pytest.approx(0.8)


def test_cosine_drop_is_rigls():
  sched = schedules.CosineDrop(fraction=0.3, end=10_000, every=100).check(steps=12_000)
  assert sched.update_steps()[0] == 100 and sched.update_steps()[-1] == 9_900
  t = np.array([0, 2_500, 5_000, 10_000])
  np.testing.assert_allclose(sched.drop_fraction(t), 0.3 / 2 * (1 + np.cos(np.pi * t / 10_000)), atol=1e-6)


def test_tables_are_exact_integers():
  keep = schedules.keep_table(np.array([235_200, 30_000, 1_000]), np.array([0.0, 0.5, 0.98]))
  assert keep.tolist() == [[235_200, 30_000, 1_000], [117_600, 15_000, 500], [4_704, 600, 20]]
  assert schedules.keep_table(np.array([10]), np.array([0.999])).tolist() == [[1]]  # never empties a layer
  assert schedules.drop_table(np.array([100, 7]), np.array([0.3, 0.5])).tolist() == [[30, 2], [50, 4]]


@pytest.mark.parametrize("make, message", [
    (lambda: schedules.Polynomial(0.0, 0.9, 0, 1_000, 2_000), "ΔT=2000 must be in"),
    (lambda: schedules.Polynomial(0.0, 0.9, 0, 1_000, 0), "ΔT=0 must be in"),
    (lambda: schedules.Polynomial(0.5, 0.2, 0, 1_000, 100), "below the initial"),
    (lambda: schedules.Polynomial(0.0, 1.0, 0, 1_000, 100), "final sparsity must be in"),
    (lambda: schedules.Polynomial(0.0, 0.9, 500, 500, 100), "begin < end"),
    (lambda: schedules.Polynomial(0.0, 0.9, 0, 1_000, 100.5), "every must be an integer"),
    (lambda: schedules.CosineDrop(0.0, 1_000, 100), r"drop fraction must be in \(0, 1\)"),
    (lambda: schedules.CosineDrop(1.0, 1_000, 100), r"drop fraction must be in \(0, 1\)"),
    (lambda: schedules.CosineDrop(0.3, 1_000, 5_000), "ΔT=5000"),
])
def test_bad_schedules_are_one_line(make, message):
  with pytest.raises(pruning.PruningError, match=message) as e:
    make().check()
  assert "\n" not in str(e.value)


def test_a_schedule_past_the_run_is_refused():
  with pytest.raises(pruning.PruningError, match="after the run's last step"):
    schedules.Polynomial(0.0, 0.9, 0, 5_000, 100).check(steps=2_000)
