import jax
import numpy as np
import pytest

from ltjax.engine import optimizers


def test_warmup_then_step_decays():
  fn = optimizers.schedule(0.1, warmup_steps=10, milestones=(20, 30))
  np.testing.assert_allclose([float(fn(s)) for s in (0, 5, 10, 19, 20, 29, 30)],
                             [0.0, 0.05, 0.1, 0.1, 0.01, 0.01, 0.001], rtol=1e-5, atol=1e-9)


def test_plain_constant_schedule():
  fn = optimizers.schedule(1.2e-3)
  assert float(fn(0)) == pytest.approx(1.2e-3) and float(fn(10**6)) == pytest.approx(1.2e-3)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_make_known_optimizers(name):
  tx = optimizers.make(name, 0.1, weight_decay=1e-4)
  assert tx.init({"w": np.zeros(3)}) is not None


@pytest.mark.parametrize("kwargs", [dict(name="rmsprop", lr=0.1), dict(name="adam", lr=0.0),
                                    dict(name="sgd", lr=0.1, warmup_steps=-1)])
def test_bad_settings_raise(kwargs):
  with pytest.raises(ValueError):
    optimizers.make(**kwargs)


def test_the_same_settings_give_the_same_transformation():
  # So a Trainer built again for the same config equals the first and reuses its programs.
  a = optimizers.make("sgd", 0.1, momentum=0.9, milestones=[100, 200])
  assert optimizers.make("sgd", 0.1, momentum=0.9, milestones=(100, 200)) is a
  assert optimizers.make("sgd", 0.2, momentum=0.9, milestones=(100, 200)) is not a


def test_a_stretched_schedule_decays_at_the_same_fractions_of_a_longer_budget():
  stretch = optimizers.stretch(0, (10, 15), 0.1, steps=20)
  steps = np.arange(40)
  factor = np.array([float(stretch.factor(s, 40)) for s in steps])
  run = np.select([steps < 10, steps < 15], [1.0, 0.1], 0.01)   # decays at 50% and 75% of 20
  own = np.select([steps < 20, steps < 30], [1.0, 0.1], 0.01)   # ... and of 40
  np.testing.assert_allclose(factor, own / run, rtol=1e-5)
  # A ticket of the run's own budget follows the run's schedule exactly.
  assert all(float(stretch.factor(s, 20)) == 1.0 for s in steps)


def test_a_stretched_warmup_and_a_constant_rate():
  stretch = optimizers.stretch(10, (), 0.1, steps=100)
  assert float(stretch.factor(0, 200)) == 1.0  # both rates are 0 at the first step
  np.testing.assert_allclose(float(stretch.factor(5, 200)), 0.5, rtol=1e-6)    # 2.5/10 against 5/10
  np.testing.assert_allclose(float(stretch.factor(15, 200)), 0.75, rtol=1e-6)  # 15/20 against done
  assert float(stretch.factor(20, 200)) == 1.0
  assert optimizers.stretch(0, (0,), 0.1, steps=100) is None  # (0,) means no milestones


def test_compiled_over_tickets_a_run_budget_ticket_is_never_stretched():
  # Compiled, a divisor of 1000 becomes an inexact reciprocal; no step may decay early or late.
  stretch = optimizers.stretch(300, (500, 750), 0.1, steps=1000)
  steps = np.arange(2000)
  factors = jax.jit(jax.vmap(jax.vmap(stretch.factor, (None, 0)), (0, None)))(steps, np.array([1000, 2000, 1500]))
  assert (np.asarray(factors[:, 0]) == 1.0).all()
  run = np.select([steps < 500, steps < 750], [1.0, 0.1], 0.01) * np.minimum(steps / 300, 1)
  for col, last in ((1, 2000), (2, 1500)):
    own = np.select([steps < last // 2, steps < last * 3 // 4], [1.0, 0.1], 0.01) * np.minimum(steps / (0.3 * last), 1)
    want = np.where(run > 0, own / np.where(run > 0, run, 1), 1.0)
    np.testing.assert_allclose(np.asarray(factors[:, col]), want, rtol=1e-5)


@pytest.mark.parametrize("decay, steps", [(0.0, 100), (1.5, 100), (0.1, 0)])
def test_a_schedule_that_cannot_stretch_raises(decay, steps):
  with pytest.raises(ValueError, match="to stretch needs"):
    optimizers.stretch(0, (50,), decay, steps=steps)
