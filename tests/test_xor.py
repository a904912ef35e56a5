"""The XOR experiment: unit rankings, unit masks, masked training of many inits, table, binary."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ltjax.core import masks
from ltjax.methods import xor
from tests.conftest import REPO


def _net(fc1_kernel, out_kernel):
  fc1_kernel, out_kernel = jnp.asarray(fc1_kernel, jnp.float32), jnp.asarray(out_kernel, jnp.float32)
  return {"fc1": {"kernel": fc1_kernel, "bias": jnp.zeros(fc1_kernel.shape[1])},
          "out": {"kernel": out_kernel, "bias": jnp.zeros(1)}}


# Units: |in| (L2 of the kernel column) = 5, 1, 2, 0.5; |out| = 0.1, 3, 1, 4; product = .5, 3, 2, 2.
HAND = _net([[3.0, 0.6, 0.0, 0.3], [4.0, -0.8, -2.0, 0.4]], [[0.1], [-3.0], [1.0], [-4.0]])


def test_xor_data():
  x, y = xor.xor_data()
  np.testing.assert_array_equal(x, [[0, 0], [0, 1], [1, 0], [1, 1]])
  np.testing.assert_array_equal(y, [0, 1, 1, 0])
  np.testing.assert_array_equal(xor.xor_data("pm1")[0], [[-1, -1], [-1, 1], [1, -1], [1, 1]])


def test_unit_scores_on_hand_made_weights():
  np.testing.assert_allclose(xor.input_magnitude(HAND), [5, 1, 2, 0.5], rtol=1e-6)
  np.testing.assert_allclose(xor.output_magnitude(HAND), [0.1, 3, 1, 4], rtol=1e-6)
  np.testing.assert_allclose(xor.product(HAND), [0.5, 3, 2, 2], rtol=1e-6)


@pytest.mark.parametrize("strategy, k, alive, kept", [
    (xor.INPUT, 2, [1, 1, 1, 1], [0, 2]),
    (xor.OUTPUT, 2, [1, 1, 1, 1], [1, 3]),
    (xor.PRODUCT, 2, [1, 1, 1, 1], [1, 2]),           # units 2 and 3 tie at 2: lower index wins
    (xor.ONE_SHOT_PRODUCT, 1, [1, 1, 1, 1], [1]),
    (xor.INPUT, 3, [1, 1, 1, 1], [0, 1, 2]),
    (xor.OUTPUT, 2, [1, 0, 1, 1], [2, 3]),            # unit 1 is already pruned: it stays pruned
    (xor.INPUT, 2, [0, 1, 1, 1], [1, 2]),
])
def test_rankings_keep_the_expected_units(strategy, k, alive, kept):
  stacked = jax.tree.map(lambda a: a[None], HAND)  # prune_many ranks a stack of nets: one here
  keep, _ = xor.prune_many(strategy, stacked, jnp.asarray([alive], bool), k, stacked)
  assert sorted(np.flatnonzero(np.asarray(keep[0])).tolist()) == kept


def test_prune_many_ranks_each_net_and_masks_the_init():
  trained = jax.tree.map(lambda a: jnp.stack([a, -a]), HAND)   # the same magnitudes twice
  init = jax.tree.map(lambda a: jnp.stack([a + 1, a + 2]), HAND)
  keep, mask = xor.prune_many(xor.OUTPUT, trained, jnp.ones((2, 4), bool), 2, init)
  np.testing.assert_array_equal(keep, [[0, 1, 0, 1]] * 2)
  np.testing.assert_array_equal(mask["fc1"]["bias"], keep)
  with pytest.raises(xor.XorError, match="unknown strategy"):
    xor.prune_many("nope", trained, jnp.ones((2, 4), bool), 2, init)


def test_unit_mask_zeroes_exactly_the_units_in_and_out_weights_and_bias():
  rng = np.random.default_rng(1)
  params = _net(rng.normal(size=(2, 10)), rng.normal(size=(10, 1)))
  params["fc1"]["bias"] = jnp.asarray(rng.normal(size=10), jnp.float32)
  params["out"]["bias"] = jnp.ones(1)
  keep = jnp.array([1, 0, 1, 1, 0, 0, 1, 1, 1, 0], bool)
  mask = xor.unit_mask(params, keep)
  masks.check(params, mask)
  pruned = masks.apply(params, mask)
  gone, kept = ~np.asarray(keep), np.asarray(keep)
  for leaf in (pruned["fc1"]["kernel"][:, gone], pruned["fc1"]["bias"][gone],
               pruned["out"]["kernel"][gone]):
    assert np.all(np.asarray(leaf) == 0.0)
  np.testing.assert_array_equal(pruned["fc1"]["kernel"][:, kept], params["fc1"]["kernel"][:, kept])
  np.testing.assert_array_equal(pruned["fc1"]["bias"][kept], params["fc1"]["bias"][kept])
  np.testing.assert_array_equal(pruned["out"]["kernel"][kept], params["out"]["kernel"][kept])
  np.testing.assert_array_equal(pruned["out"]["bias"], params["out"]["bias"])
  assert int(sum(m.sum() for m in jax.tree.leaves(mask))) == 6 * (2 + 1 + 1) + 1


def test_embed_pads_a_small_net_with_masked_units():
  rng = np.random.default_rng(2)
  small = _net(rng.normal(size=(2, 3)), rng.normal(size=(3, 1)))
  small["fc1"]["bias"] = jnp.asarray(rng.normal(size=3), jnp.float32)
  big, keep = xor.embed(small, 10)
  assert big["fc1"]["kernel"].shape == (2, 10) and big["out"]["kernel"].shape == (10, 1)
  np.testing.assert_array_equal(keep, [1, 1, 1] + [0] * 7)
  np.testing.assert_array_equal(big["fc1"]["kernel"][:, :3], small["fc1"]["kernel"])
  assert np.all(np.asarray(big["fc1"]["kernel"][:, 3:]) == 0)
  assert np.all(np.asarray(big["fc1"]["bias"][3:]) == 0)
  x, _ = xor.xor_data()
  np.testing.assert_allclose(xor.module(10).apply({"params": big}, x),
                             xor.module(3).apply({"params": small}, x), rtol=1e-6)


SMALL = xor.XorConfig(inits=64, steps=1000)
SIZES = (10, 8, 6, 4, 2)


@pytest.fixture(scope="module")
def trainer():
  return xor.make_trainer(10, "relu", "adam", 0.03)


@pytest.fixture(scope="module")
def nets():
  """The nets `xor.run(SMALL)` starts from (same arguments, so the same compiled programs)."""
  return xor.init_many(jax.random.key(SMALL.seed), SMALL.inits, SIZES, 10, "relu")


def test_init_many_gives_each_size_its_units(nets):
  for units, (params, mask) in nets.items():
    alive = np.asarray(mask["fc1"]["bias"])
    assert alive.shape == (SMALL.inits, 10) and np.all(alive.sum(1) == units)
    assert np.all(np.asarray(params["out"]["kernel"])[~alive] == 0.0)


def test_trained_tickets_keep_pruned_units_at_exactly_zero(trainer, nets):
  init = nets[10][0]
  keep = jax.random.bernoulli(jax.random.key(4), 0.5, (SMALL.inits, 10)).at[:, 0].set(True)
  out = xor.train_many(trainer, init, jax.vmap(xor.unit_mask)(init, keep), SMALL.steps)
  gone = ~np.asarray(keep)
  p = jax.tree.map(np.asarray, out.params)
  assert np.all(np.transpose(p["fc1"]["kernel"], (0, 2, 1))[gone] == 0.0)
  assert np.all(p["fc1"]["bias"][gone] == 0.0) and np.all(p["out"]["kernel"][..., 0][gone] == 0.0)
  kept = np.transpose(p["fc1"]["kernel"], (0, 2, 1))[~gone]
  assert not np.allclose(kept, np.transpose(np.asarray(init["fc1"]["kernel"]), (0, 2, 1))[~gone])
  assert out.loss.shape == (SMALL.inits,) and set(out.correct.tolist()) <= set(range(5))


def test_embedded_training_is_training_the_small_net(trainer, nets):
  got = xor.train_many(trainer, *nets[2], SMALL.steps)
  keys = jax.random.split(jax.random.fold_in(jax.random.key(SMALL.seed), 2), SMALL.inits)
  small = jax.vmap(lambda k: xor.init_params(k, 2))(keys)
  ref = xor.train_many(xor.make_trainer(2, "relu", "adam", 0.03), small,
                       jax.vmap(masks.ones)(small), SMALL.steps)
  np.testing.assert_allclose(got.params["fc1"]["kernel"][..., :2], ref.params["fc1"]["kernel"],
                             rtol=1e-3, atol=1e-5)
  np.testing.assert_allclose(got.loss, ref.loss, rtol=1e-3, atol=1e-6)
  # (`correct` may differ where a net ends on a plateau with logits ~0: float noise picks the sign.)


@pytest.fixture(scope="module")
def small_run():
  return xor.run(SMALL)


def test_experiment_table_has_the_rows_and_percentages(small_run):
  r = small_run
  assert list(r.pruned) == list(xor.STRATEGIES)
  assert all(list(row) == [10, 4, 2] for row in r.pruned.values())
  assert list(r.scratch) == [10, 8, 6, 4, 2]
  cells = [v for row in r.pruned.values() for v in row.values()] + list(r.scratch.values())
  for db, zl in cells:
    assert 0.0 <= zl <= db <= 100.0
    assert db * SMALL.inits / 100 == pytest.approx(round(db * SMALL.inits / 100))  # counts of 64
  assert len({row[10] for row in r.pruned.values()}) == 1  # one set of dense nets for all rows
  assert r.scratch[10] == r.pruned[xor.PRODUCT][10]
  assert r.pruned[xor.ONE_SHOT_PRODUCT][4] == r.pruned[xor.PRODUCT][4]  # same score, same source
  assert r.pruned[xor.PRODUCT][2][0] > r.scratch[2][0]  # the paper's point, at this seed
  md = r.to_markdown()
  assert "| product |" in md and "/ 91.5" in md and "| 2 |" in md
  data = json.loads(json.dumps(r.to_json()))
  assert data["pruned"]["product"]["2"]["db"] == r.pruned[xor.PRODUCT][2][0]


def test_experiment_is_deterministic_for_a_seed(small_run):
  again = xor.run(SMALL)
  assert (again.pruned, again.scratch) == (small_run.pruned, small_run.scratch)


@pytest.mark.parametrize("field, value, fragment", [
    ("inits", 0, "inits"), ("steps", 0, "steps"), ("learning_rate", -1.0, "learning_rate"),
    ("activation", "gelu2", "activation"), ("inputs", "xy", "inputs"), ("zl_threshold", 1.0, "zl"),
    ("targets", (2, 4), "targets"), ("scratch_sizes", (12,), "scratch"),
    ("optimizer", "lbfgs", "optimizer"),
])
def test_config_validation(field, value, fragment):
  with pytest.raises(xor.XorError, match=fragment):
    xor.XorConfig(**{field: value}).validate()


def _binary(*args):
  return subprocess.run([sys.executable, "-m", "experiments.xor", *args], cwd=REPO,
                        capture_output=True, text=True, timeout=120)


def test_binary_runs_and_writes_results(tmp_path):
  proc = _binary("--inits=8", "--steps=50", f"--out={tmp_path / 'out'}")
  assert proc.returncode == 0, proc.stderr
  assert "| one-shot product |" in proc.stdout and "wall time" in proc.stdout
  data = json.loads((tmp_path / "out" / "xor.json").read_text())
  assert data["config"]["inits"] == 8 and set(data["scratch"]) == {"10", "8", "6", "4", "2"}
  assert "| product |" in (tmp_path / "out" / "xor.md").read_text()


@pytest.mark.parametrize("args, fragment", [
    (["--inits=0"], "inits must be >= 1"),
    (["--activation=nope"], "activation must be one of"),
    (["--no_such_flag"], "no_such_flag"),
    (["--out=setup.py"], "out must be a directory path"),
])
def test_binary_bad_input_is_one_line_error(args, fragment, binaries):
  proc = binaries("experiments.xor", args)
  assert proc.rc != 0
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr
  assert fragment in lines[0], lines[0]
