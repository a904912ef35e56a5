import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import layer_counts

from ltjax import models
from ltjax.core import masks, pruning, scores


@pytest.fixture(scope="module")
def lenet():
  spec = models.get("lenet_300_100")
  params = spec.build().init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
  return params, spec.layer_roles(params)


def test_lenet_density_ladder_matches_paper(lenet):
  """fc 20% / out 10% per round: the paper's 51.3% (3), 21.1% (7), 13.5% (9), 7.0% (12), 3.6% (15)."""
  params, roles = lenet
  rates = pruning.rates_tree(roles, {"fc": 0.2, "output": 0.1})
  mask = masks.ones(params)
  got = {}
  for r in range(1, 16):
    mask = pruning.prune_round(params, params, mask, roles, rates)
    got[r] = 100 * int(masks.count(mask, roles)) / 266_200
  assert [round(got[r], 2) for r in (1, 2, 3)] == [80.04, 64.06, 51.28]
  assert [round(got[r], 1) for r in (7, 9, 12, 15)] == [21.1, 13.5, 7.0, 3.6]


def test_round_removes_exactly_round_p_alive_per_layer(lenet):
  params, roles = lenet
  rates = pruning.rates_tree(roles, {"fc": 0.37, "output": 0.13})
  mask = masks.ones(params)
  for _ in range(3):
    before = {k: int(v) for k, v in layer_counts(mask, roles).items()}
    mask = pruning.prune_round(params, params, mask, roles, rates)
    after = {k: int(v) for k, v in layer_counts(mask, roles).items()}
    for name, rate in [("fc1/kernel", .37), ("fc2/kernel", .37), ("out/kernel", .13)]:
      assert before[name] - after[name] == round(rate * before[name])


def test_prunes_lowest_magnitudes_and_keeps_pruned_pruned():
  w = jnp.array([[0.5, -0.1, 0.3], [-0.9, 0.2, 0.05]])
  params, roles = {"k": w}, {"k": "fc"}
  mask = {"k": jnp.array([[True, True, True], [True, True, False]])}  # 0.05 already pruned
  new = pruning.prune_round(params, params, mask, roles, {"k": 0.4})  # round(.4*5)=2 more: .1, .2
  np.testing.assert_array_equal(new["k"], [[True, False, True], [True, False, False]])


def test_ties_break_deterministically_by_index():
  params, roles = {"k": jnp.ones((2, 4))}, {"k": "fc"}
  new = pruning.prune_round(params, params, masks.ones(params), roles, {"k": 0.5})
  np.testing.assert_array_equal(new["k"], [[False] * 4, [True] * 4])


def test_fixed_leaves_never_pruned_and_output_rate_separate(lenet):
  params, roles = lenet
  mask = pruning.prune_round(params, params, masks.ones(params), roles,
                             pruning.rates_tree(roles, {"fc": 0.5, "output": 0.0}))
  for layer in ("fc1", "fc2", "out"):
    assert bool(jnp.all(mask[layer]["bias"]))
  assert bool(jnp.all(mask["out"]["kernel"]))
  assert float(jnp.mean(mask["fc1"]["kernel"])) == 0.5


def test_global_pools_layers_and_counts_exactly(lenet):
  params, roles = lenet
  rates = pruning.rates_tree(roles, {"fc": 0.2, "output": 0.2})
  mask = pruning.prune_round(params, params, masks.ones(params), roles, rates, scope="global")
  assert int(masks.count(mask, roles)) == 266_200 - round(0.2 * 266_200)
  # Global means per-layer densities differ (the smallest-magnitude weights are not spread evenly).
  dens = {k: float(v) for k, v in masks.layer_density(mask, roles).items()}
  assert len({round(v, 3) for v in dens.values()}) > 1
  # Layers with rate 0 stay out of the pool.
  rates0 = pruning.rates_tree(roles, {"fc": 0.2})
  mask0 = pruning.prune_round(params, params, masks.ones(params), roles, rates0, scope="global")
  assert bool(jnp.all(mask0["out"]["kernel"]))
  assert int(masks.count(mask0, roles)) == 266_200 - round(0.2 * 265_200)


def test_global_selects_the_globally_smallest():
  params = {"a": {"kernel": jnp.array([[1.0, 2.0]])}, "b": {"kernel": jnp.array([[0.1, 3.0]])}}
  roles = {"a": {"kernel": "fc"}, "b": {"kernel": "fc"}}
  new = pruning.prune_round(params, params, masks.ones(params), roles,
                            {"a": {"kernel": .5}, "b": {"kernel": .5}}, scope="global")
  np.testing.assert_array_equal(new["a"]["kernel"], [[False, True]])
  np.testing.assert_array_equal(new["b"]["kernel"], [[False, True]])


def test_global_requires_a_single_rate(lenet):
  params, roles = lenet
  with pytest.raises(pruning.PruningError, match="one rate"):
    pruning.prune_round(params, params, masks.ones(params), roles,
                        pruning.rates_tree(roles, {"fc": 0.2, "output": 0.1}), scope="global")


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, float("nan")])
def test_invalid_rates_raise(rate):
  with pytest.raises(pruning.PruningError, match=r"\[0, 1\)"):
    pruning.rates_tree({"k": "fc"}, {"fc": rate})


def test_rate_that_empties_a_layer_raises():
  params, roles = {"k": jnp.ones((1, 2))}, {"k": "fc"}
  mask = {"k": jnp.array([[True, False]])}
  with pytest.raises(pruning.PruningError, match="no weights"):
    pruning.prune_round(params, params, mask, roles, {"k": 0.6})  # round(0.6 * 1) = 1 = alive


def test_unknown_score_and_scope_raise(lenet):
  params, roles = lenet
  with pytest.raises(scores.ScoreError, match="unknown pruning score"):
    scores.get("nope")
  with pytest.raises(pruning.PruningError, match="unknown pruning score 'nope'"):
    pruning.prune_round(params, params, masks.ones(params), roles,
                        pruning.rates_tree(roles, {"fc": .2}), score="nope")
  with pytest.raises(pruning.PruningError, match="scope"):
    pruning.prune_round(params, params, masks.ones(params), roles,
                        pruning.rates_tree(roles, {"fc": .2}), scope="sideways")


def test_random_pruning_same_counts_other_positions(lenet):
  params, roles = lenet
  rates = pruning.rates_tree(roles, {"fc": 0.2, "output": 0.1})
  mag = pruning.prune_round(params, params, masks.ones(params), roles, rates)
  rnd = pruning.prune_round(params, params, masks.ones(params), roles, rates, score="random",
                            key=jax.random.key(1))
  assert layer_counts(mag, roles) == layer_counts(rnd, roles)
  assert not bool(jnp.all(mag["fc1"]["kernel"] == rnd["fc1"]["kernel"]))


def test_pluggable_score_function(lenet):
  params, roles = lenet
  scores.register("negative_magnitude", lambda p, m, k, c: jax.tree.map(lambda x: -jnp.abs(x), p))
  rates = pruning.rates_tree(roles, {"fc": 0.5})
  small = pruning.prune_round(params, params, masks.ones(params), roles, rates, score="negative_magnitude")
  kept = jnp.abs(params["fc1"]["kernel"])[small["fc1"]["kernel"]]
  dropped = jnp.abs(params["fc1"]["kernel"])[~small["fc1"]["kernel"]]
  assert float(kept.max()) <= float(dropped.min())


def test_one_shot_rates_reach_target_density(lenet):
  params, roles = lenet
  sizes = {"fc": 235_200 + 30_000, "output": 1_000}
  for target in (0.5, 0.2, 0.07):
    per_kind = pruning.one_shot_rates({"fc": 0.2, "output": 0.1}, sizes, target)
    mask = pruning.prune_round(params, params, masks.ones(params), roles,
                               pruning.rates_tree(roles, per_kind))
    assert abs(float(masks.density(mask, roles)) - target) < 2e-4
  # n rounds of p == one shot at 1 - (1 - p)^n per kind.
  np.testing.assert_allclose(pruning.rates_for_rounds({"fc": 0.2}, 3)["fc"], 1 - 0.8**3)
  with pytest.raises(pruning.PruningError):
    pruning.one_shot_rates({"fc": 0.2}, sizes, 0.001)  # output layer (rate 0) alone is 0.4%


def test_vmapped_pruning_matches_per_ticket(lenet):
  params, roles = lenet
  keys = jax.random.split(jax.random.key(5), 3)
  stacked = jax.vmap(lambda k: jax.tree.map(lambda p: p + jax.random.normal(k, p.shape), params))(keys)
  rates = pruning.rates_tree(roles, {"fc": 0.2, "output": 0.1})
  ones = jax.vmap(masks.ones)(stacked)
  together = pruning.prune_round(stacked, stacked, ones, roles, rates, ticket_axes=1)
  for i in range(3):
    p_i = jax.tree.map(lambda x: x[i], stacked)
    alone = pruning.prune_round(p_i, p_i, masks.ones(p_i), roles, rates)
    for a, b in zip(jax.tree.leaves(alone), jax.tree.leaves(together)):
      np.testing.assert_array_equal(a, b[i])


@pytest.mark.parametrize("name, expected", [
    ("large_init", lambda t, i: np.abs(i)), ("small_init", lambda t, i: -np.abs(i)),
    ("small_final", lambda t, i: -np.abs(t)),
    ("large_init_large_final", lambda t, i: np.minimum(np.abs(t), np.abs(i))),
    ("small_init_small_final", lambda t, i: -np.maximum(np.abs(t), np.abs(i))),
    ("magnitude_increase", lambda t, i: np.abs(t) - np.abs(i)), ("movement", lambda t, i: np.abs(t - i)),
])
def test_zhou_et_al_criteria(name, expected):
  trained = {"w": jnp.array([[0.5, -2.0], [0.1, 1.0]])}
  init = {"w": jnp.array([[-1.0, 0.3], [0.2, -0.05]])}
  got = scores.get(name).fn(trained, None, jax.random.key(0), scores.Context(init=init))["w"]
  np.testing.assert_allclose(got, expected(np.asarray(trained["w"]), np.asarray(init["w"])))


def _lexsort_reference(scores, alive, k):
  """The definition drop_lowest implements: rank alive entries by (score, index), drop the first k."""
  s = np.where(np.isnan(scores), np.inf, scores)
  order = [i for i in np.lexsort((np.arange(len(s)), s)) if alive[i]]
  out = alive.copy()
  out[order[:k]] = False
  return out


@pytest.mark.parametrize("seed", range(6))
def test_drop_lowest_matches_a_sort_with_ties_signs_and_specials(seed):
  rng = np.random.default_rng(seed)
  n = 500
  scores = rng.choice([-2.5, -1.0, -0.0, 0.0, 0.5, 3.0, 1e-30, -1e-30], n) if seed % 2 else rng.normal(size=n)
  scores = scores.astype(np.float32)
  scores[rng.integers(0, n, 5)] = rng.choice([np.inf, -np.inf, np.nan], 5)
  alive = rng.random(n) < 0.7
  for k in (0, 1, 37, int(alive.sum()) - 1, int(alive.sum())):
    got = np.asarray(pruning.drop_lowest(jnp.asarray(scores), jnp.asarray(alive), k))
    np.testing.assert_array_equal(got, _lexsort_reference(scores, alive, k), err_msg=f"k={k}")
