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
