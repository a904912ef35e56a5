import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ltjax.engine import parallel


def test_stack_take_roundtrip():
  trees = [{"a": jnp.full((2,), i), "b": jnp.array(i * 1.0)} for i in range(3)]
  s = parallel.stack(trees)
  assert parallel.num_tickets(s) == 3
  for i in range(3):
    np.testing.assert_array_equal(parallel.take(s, i)["a"], trees[i]["a"])
  np.testing.assert_array_equal(parallel.take(s, jnp.array([2, 0]))["b"], [2.0, 0.0])


@pytest.mark.parametrize("ticket_batch", [None, 1, 2, 3])
def test_ticket_map_strategies_agree(ticket_batch):
  xs = jnp.arange(12.0).reshape(6, 2)
  shared = jnp.array([10.0, 100.0])
  fn = lambda x, s: jnp.dot(x, s) + jnp.sum(x)  # noqa: E731
  got = jax.jit(parallel.ticket_map(fn, (0, None), ticket_batch))(xs, shared)
  np.testing.assert_allclose(got, xs @ shared + xs.sum(1))


def test_ticket_map_rejects_bad_settings():
  with pytest.raises(ValueError):
    parallel.ticket_map(lambda x: x, (1,))
  with pytest.raises(ValueError):
    parallel.ticket_map(lambda x: x, (0,), ticket_batch=0)


@pytest.mark.parametrize("platform, d, k, batch, splittable, want", [
    ("cpu", 2, 15, 60, True, (2, 1)),    # tickets over cores, padded to 16
    ("cpu", 2, 1, 60, True, (1, 1)),     # one ticket on CPU: the one-device program, both cores
    ("cpu", 8, 3, 60, True, (3, 1)),     # CPU never splits batches: 3 of 8 devices
    ("gpu", 8, 16, 60, True, (8, 1)),
    ("gpu", 8, 2, 60, True, (2, 4)),     # fewer tickets than GPUs: split each batch over 4
    ("gpu", 8, 3, 64, True, (1, 8)),     # 3 tickets, each batch over 8: least work per device
    ("gpu", 8, 1, 60, True, (1, 6)),     # 60 splits over 6 of the 8 (not 8)
    ("gpu", 8, 2, 60, False, (2, 1)),    # BatchNorm: no batch split, 2 of 8 devices
    ("gpu", 8, 1, 7, True, (1, 7)),      # a batch of 7 splits over 7 of the 8
])
def test_auto_layout_shapes(platform, d, k, batch, splittable, want):
  assert parallel._auto_shape(d, k, batch, splittable, split_batches=platform != "cpu") == want


def test_single_device_layout_is_todays_program():
  layout = parallel.make_layout("auto", 15, 60, True, devices=jax.devices()[:1])
  assert layout.mesh is None and layout.padded(15) == 15
  assert layout.map(lambda x: x, (0,), None) is not None


@pytest.mark.parametrize("setting, fragment", [
    ("sideways", "unknown layout"), ("0", "unknown layout"), ("2x0", "unknown layout"),
    ("2x2", "needs 4 devices"),
])
def test_bad_layouts(setting, fragment):
  with pytest.raises(parallel.LayoutError, match=fragment):
    parallel.make_layout(setting, 4, 60, True, devices=jax.devices()[:1])


def test_padding_repeats_the_last_ticket_and_place_without_mesh_is_identity():
  layout = parallel.Layout()
  tree = {"a": jnp.arange(3.0)}
  assert layout.pad(tree) is tree and layout.place(tree) is tree
  assert parallel.parse_mesh("4x2") == (4, 2) and parallel.parse_mesh("8") == (8, 1)
  assert parallel.parse_mesh("single") == (1, 1) and parallel.parse_mesh("auto") is None


_SKIP_PADDING = """
import jax, jax.numpy as jnp, numpy as np
from ltjax.engine import parallel
layout = parallel.make_layout("auto", 3, 60, True)
assert layout.ticket_shards == 2, layout.describe()
calls = []
def fn(x, shared):
  jax.debug.callback(lambda v: calls.append(float(v)), x)
  return {"y": x * 2.0 + shared, "flag": x > 0}
xs = layout.place(layout.pad(jnp.arange(1.0, 4.0)))   # 3 live tickets, one padding copy
full = jax.jit(layout.map(fn, (0, None), 1))(xs, 10.0)
jax.effects_barrier()
assert sorted(calls) == [1.0, 2.0, 3.0, 3.0], calls    # without `live`, the padding runs too
calls.clear()
got = jax.jit(layout.map(fn, (0, None), 1, live=3))(xs, 10.0)
jax.effects_barrier()
assert sorted(calls) == [1.0, 2.0, 3.0], calls          # with it, only the live tickets run
np.testing.assert_array_equal(got["y"][:3], full["y"][:3])
np.testing.assert_array_equal(got["y"][3], 0.0)
assert got["flag"].tolist() == [True, True, True, False]
print("ok")
"""


def test_padding_tickets_are_skipped_where_devices_run_tickets_one_at_a_time():
  """15 tickets on 2 cores cost 15 tickets' work: the padding copy does not run (its outputs are
  zeros, dropped by the caller), and the live tickets' outputs are unchanged."""
  env = {**os.environ, "XLA_FLAGS": (os.environ.get("XLA_FLAGS", "") +
                                     " --xla_force_host_platform_device_count=2").strip()}
  proc = subprocess.run([sys.executable, "-c", _SKIP_PADDING], env=env, capture_output=True, text=True)
  assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


class _Shards(parallel.Layout):
  """A layout's bookkeeping for `n` ticket shards, without the devices."""

  def __init__(self, n):
    object.__setattr__(self, "n", n)

  @property
  def ticket_shards(self) -> int:
    return self.n


def _loads(order, work, shards, padded):
  size = padded // shards
  return [sum(work[i] for i in order[s * size:(s + 1) * size]) for s in range(shards)]


def test_balanced_order_spreads_long_budgets_over_the_shards():
  # A round with Scratch-B: tickets t0 t1, then each trial's reinit and scratch (twice the steps).
  work = [20, 20, 20, 40, 20, 40]
  layout = _Shards(2)
  assert _loads(range(6), work, 2, 6) == [60, 100]  # the stacked order: both scratch nets on one device
  order = layout.balanced_order(work)
  assert sorted(order.tolist()) == list(range(6))
  assert _loads(order, work, 2, 6) == [80, 80]
  assert order.tolist() == sorted(order[:3].tolist()) + sorted(order[3:].tolist())  # list order kept within a shard


def test_balanced_order_leaves_room_for_the_padding_and_keeps_balanced_orders():
  layout = _Shards(2)
  work = [1, 1, 1, 5, 5]  # padded to 6: the last shard holds 2 live tickets and the padding
  assert _loads(range(5), work, 2, 6) == [3, 10]
  order = layout.balanced_order(work)
  assert order.tolist() == [0, 2, 3, 1, 4] and _loads(order, work, 2, 6) == [7, 6]
  assert layout.balanced_order([3, 3, 3, 3]) is None           # equal budgets: nothing to gain
  assert layout.balanced_order([5, 1, 1, 5]) is None           # already even
  assert _Shards(1).balanced_order([1, 9]) is None and layout.balanced_order([4]) is None


def test_balanced_order_with_more_padding_than_a_shard():
  # 10 tickets on 8 devices: padded to 16, 2 per device, the last 3 devices hold only padding.
  work = [1] * 5 + [3] * 5
  assert _loads(range(10), work, 8, 16)[:5] == [2, 2, 4, 6, 6]
  order = _Shards(8).balanced_order(work)
  assert sorted(order.tolist()) == list(range(10)) and _loads(order, work, 8, 16) == [4] * 5 + [0] * 3


def test_balanced_order_keeps_the_stacked_order_where_calls_would_wait_longer():
  # Per compiled call: A trains in the first, B in the second, C and D in both. Stacked, each call
  # has 2 steps per device; spreading the totals (2 each) would give 3 + 3.
  work = [[2, 0], [0, 2], [1, 1], [1, 1]]
  assert _Shards(2).balanced_order(work) is None


_BALANCED_TRAINING = """
import dataclasses, jax, jax.numpy as jnp, numpy as np, optax
from ltjax import data, models
from ltjax.core import masks
from ltjax.engine import parallel, train
ds = data.synthetic(seed=0, num_train=600, num_test=200, validation_size=200, shape=(6, 6, 1))
module = models.mlp.MLP(hidden=(16, 8), num_classes=10)
keys = jax.random.split(jax.random.key(0), 6)
params = jax.vmap(lambda k: module.init(k, jnp.zeros((1, 6, 6, 1)))["params"])(keys)
layout = parallel.make_layout("auto", 6, 30, True)
assert layout.ticket_shards == 2, layout.describe()
trainer = train.Trainer(module, optax.sgd(0.1), batch_size=30, ticket_batch=1, layout=layout)
# Scratch-B's line-up: 3 runs of 20 steps, then 3 of 40 (grouped, as the controls follow the tickets).
schedule = (jnp.ones(6, jnp.float32), jnp.array([20, 20, 20, 40, 40, 40], jnp.int32))
fresh = lambda: trainer.init_states(params, jax.vmap(masks.ones)(params), jax.vmap(lambda _: {})(keys), keys, schedule)
assert trainer.shard_order(fresh().schedule, [(0, 20), (20, 40)]) is not None
plain = dataclasses.replace(trainer, balance_shards=False)
assert plain.shard_order(fresh().schedule, [(0, 40)]) is None
outs, snaps = [], []
for t in (trainer, plain):  # two calls of 2 intervals: a mid-round snapshot after the first
  calls = []
  outs.append(t.train(fresh(), ds, steps=40, eval_every=10, intervals_per_call=2,
                      callback=lambda step, snapshot, curves: calls.append((step, snapshot(), curves))))
  snaps.append(calls[0])
assert snaps[0][0] == 20
for a, b in zip(*[jax.tree.leaves(parallel.host(o)) for o in outs], strict=True):
  np.testing.assert_array_equal(a, b)
for a, b in zip(*[jax.tree.leaves(parallel.host(x)) for x in snaps], strict=True):
  np.testing.assert_array_equal(a, b)
print("ok")
"""


def test_balanced_shards_train_every_ticket_exactly_as_the_stacked_order():
  """Reordering the tickets over the devices changes where each runs, not what it computes; the
  caller gets states, tracker and curves back in its own order."""
  env = {**os.environ, "XLA_FLAGS": (os.environ.get("XLA_FLAGS", "") +
                                     " --xla_force_host_platform_device_count=2").strip()}
  proc = subprocess.run([sys.executable, "-c", _BALANCED_TRAINING], env=env, capture_output=True, text=True)
  assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
