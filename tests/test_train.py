import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ltjax.core import masks, pruning
from ltjax.engine import optimizers, parallel, programs, train

K = 3


_TICKETS = {}


def _tickets(small_mlp, k=K, rate=0.5):
  """k stacked tickets of the small MLP at `rate` random pruning, made once per process (the
  arrays are immutable and nothing here donates them; drawing them compiles for seconds)."""
  key = (id(small_mlp), k, rate)
  if key not in _TICKETS:
    _TICKETS[key] = _make_tickets(small_mlp, k, rate)
  return _TICKETS[key]


def _make_tickets(small_mlp, k, rate):
  spec, module, init, roles = small_mlp
  keys = jax.random.split(jax.random.key(0), k)
  params = jax.vmap(init)(keys)
  mask = pruning.prune_round(params, params, jax.vmap(masks.ones)(params), roles,
                             pruning.rates_tree(roles, {"fc": rate, "output": rate}),
                             score="random", key=jax.random.key(7), ticket_axes=1)
  model_state = jax.vmap(lambda _: {})(keys)
  return module, roles, params, mask, model_state, keys


def _pruned_are_zero(params, mask):
  return all(bool(jnp.all(jnp.where(m, True, p == 0.0)))
             for p, m in zip(jax.tree.leaves(params), jax.tree.leaves(mask)))


OPTIMIZERS = {
    "adam": optax.adam(1e-2),
    "adamw": optax.adamw(1e-2, weight_decay=0.1),
    "sgd_momentum_wd": optimizers.make("sgd", 0.05, momentum=0.9, weight_decay=1e-2),
    "nesterov": optimizers.make("sgd", 0.05, momentum=0.9, nesterov=True),
}


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
def test_pruned_weights_exactly_zero_after_every_step(small_mlp, tiny_data, opt):
  module, roles, params, mask, model_state, keys = _tickets(small_mlp, k=1)
  one = lambda t: jax.tree.map(lambda x: x[0], t)  # noqa: E731
  trainer = train.Trainer(module, OPTIMIZERS[opt], batch_size=32)
  # Start from *unmasked* weights: init_state must zero them, and each step must keep them zero.
  state = trainer.init_state(one(params), one(mask), {}, keys[0])
  step = jax.jit(trainer.train_step)
  x = tiny_data.normalize(tiny_data.train.images[:32])
  y = tiny_data.train.labels[:32]
  for s in range(5):
    state, loss = step(state, x, y, s)
    assert _pruned_are_zero(state.params, state.mask), f"step {s}"
  assert np.isfinite(float(loss))
  # No gradient reached the pruned weights: Adam's moments stay exactly zero there.
  if opt == "adam":
    mu = state.opt_state[0].mu
    assert _pruned_are_zero(mu, state.mask) and _pruned_are_zero(state.opt_state[0].nu, state.mask)


def test_gradients_of_pruned_weights_are_masked(small_mlp, tiny_data):
  module, roles, params, mask, _, keys = _tickets(small_mlp, k=1)
  one = lambda t: jax.tree.map(lambda x: x[0], t)  # noqa: E731
  seen = {}

  def spy_update(grads, state, params=None):
    seen["grads"] = grads
    return grads, state

  trainer = train.Trainer(module, optax.GradientTransformation(lambda p: (), spy_update), 32)
  state = trainer.init_state(one(params), one(mask), {}, keys[0])
  trainer.train_step(state, tiny_data.normalize(tiny_data.train.images[:32]),
                     tiny_data.train.labels[:32], 0)
  assert _pruned_are_zero(seen["grads"], state.mask)
  # ...while surviving weights do get gradient.
  assert float(jnp.abs(seen["grads"]["fc1"]["kernel"]).sum()) > 0


def _train(trainer, small_mlp, data, k=K, steps=60, eval_every=20, **kw):
  module, roles, params, mask, model_state, keys = _tickets(small_mlp, k=k)
  states = trainer.init_states(params, mask, model_state, keys)
  return trainer.train(states, data, steps=steps, eval_every=eval_every, **kw)


@pytest.mark.parametrize("ticket_batch", [None, 1, 2])
def test_k_tickets_together_match_one_by_one(small_mlp, tiny_data, ticket_batch):
  module, roles, params, mask, model_state, keys = _tickets(small_mlp)
  trainer = train.Trainer(module, optax.adam(3e-3), batch_size=32, ticket_batch=ticket_batch)
  states = trainer.init_states(params, mask, model_state, keys)
  together, tracker, curves = trainer.train(states, tiny_data, steps=60, eval_every=20)
  alone_trainer = train.Trainer(module, optax.adam(3e-3), batch_size=32)
  for i in range(K):
    sel = lambda t, i=i: parallel.take(t, slice(i, i + 1))  # noqa: E731
    s_i = alone_trainer.init_states(sel(params), sel(mask), sel(model_state), keys[i:i + 1])
    alone, tr_i, cv_i = alone_trainer.train(s_i, tiny_data, steps=60, eval_every=20)
    chex.assert_trees_all_close(parallel.take(together.params, i), parallel.take(alone.params, 0),
                                atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(curves.val_loss[:, i], cv_i.val_loss[:, 0], rtol=1e-5, atol=1e-6)
    assert int(tracker.step[i]) == int(tr_i.step[0])


def test_tickets_get_different_data_orders(small_mlp, tiny_data):
  # Identical tickets (same init, same mask) with different keys must diverge: their data differ.
  spec, module, init, roles = small_mlp
  p = init(jax.random.key(0))
  params = parallel.stack([p, p])
  mask = jax.vmap(masks.ones)(params)
  trainer = train.Trainer(module, optax.adam(1e-2), batch_size=32)
  keys = jax.random.split(jax.random.key(1), 2)
  states = trainer.init_states(params, mask, jax.vmap(lambda _: {})(keys), keys)
  out, _, _ = trainer.train(states, tiny_data, steps=20, eval_every=20)
  assert not np.allclose(out.params["fc1"]["kernel"][0], out.params["fc1"]["kernel"][1])
  same = trainer.init_states(params, mask, jax.vmap(lambda _: {})(keys), jnp.stack([keys[0]] * 2))
  out2, _, _ = trainer.train(same, tiny_data, steps=20, eval_every=20)
  np.testing.assert_array_equal(out2.params["fc1"]["kernel"][0], out2.params["fc1"]["kernel"][1])


def test_each_epoch_visits_every_example_once():
  trainer = train.Trainer(None, optax.sgd(0.1), batch_size=7)
  rng = jax.random.key(3)
  p0, p1 = trainer.epoch_perm(rng, 0, 50), trainer.epoch_perm(rng, 1, 50)
  assert sorted(np.asarray(p0).tolist()) == list(range(50))
  assert not np.array_equal(p0, p1)


def test_early_stop_bookkeeping(small_mlp, tiny_data):
  module = small_mlp[1]
  trainer = train.Trainer(module, optax.adam(3e-2), batch_size=32)
  states, tracker, curves = _train(trainer, small_mlp, tiny_data, steps=200, eval_every=20)
  np.testing.assert_array_equal(curves.step[:, 0], np.arange(20, 201, 20))
  best = np.argmin(np.asarray(curves.val_loss), axis=0)
  np.testing.assert_array_equal(tracker.step, np.asarray(curves.step)[best, 0])
  np.testing.assert_allclose(tracker.loss, np.min(curves.val_loss, axis=0))
  np.testing.assert_allclose(tracker.accuracy, np.asarray(curves.val_accuracy)[best, np.arange(K)])
  # The carried best params reproduce the best validation loss.
  val_loss, _ = trainer.evaluate_many(tracker.params, states.mask, tracker.model_state, tiny_data,
                                      tiny_data.val)
  np.testing.assert_allclose(val_loss, tracker.loss, rtol=1e-5)
  assert not bool(jnp.any(tracker.diverged))


def test_uneven_schedule_ends_with_a_short_interval(small_mlp, tiny_data):
  trainer = train.Trainer(small_mlp[1], optax.adam(1e-3), batch_size=32)
  _, _, curves = _train(trainer, small_mlp, tiny_data, steps=50, eval_every=20)
  np.testing.assert_array_equal(curves.step[:, 0], [20, 40, 50])
  assert train.call_plan(50_000, 100, 10) == [(10, 100)] * 50
  assert train.call_plan(50, 20, 10) == [(2, 20), (1, 10)]
  assert train.call_plan(130, 10, 4) == [(4, 10)] * 3 + [(1, 10)]
  assert train.call_plan(20, 10, 4) == [(2, 10)]


def test_resume_mid_round_is_exact(small_mlp, tiny_data):
  trainer = train.Trainer(small_mlp[1], optax.adam(3e-3), batch_size=32)
  full_states, full_tracker, full_curves = _train(trainer, small_mlp, tiny_data, steps=100)
  programs_compiled = programs.run_intervals._cache_size()
  module, roles, params, mask, model_state, keys = _tickets(small_mlp)
  states = trainer.init_states(params, mask, model_state, keys)
  states, tracker, c1 = trainer.train(states, tiny_data, steps=40, eval_every=20)
  states, tracker = train.to_numpy(states), train.to_numpy(tracker)  # as if saved and reloaded
  states, tracker, c2 = trainer.train(jax.tree.map(jnp.asarray, states), tiny_data, steps=100,
                                      eval_every=20, tracker=jax.tree.map(jnp.asarray, tracker),
                                      start_step=40)
  chex.assert_trees_all_equal(states.params, full_states.params)
  chex.assert_trees_all_equal(tracker.step, full_tracker.step)
  np.testing.assert_array_equal(np.concatenate([c1.val_loss, c2.val_loss]), full_curves.val_loss)
  # The pieces (2 and 3 intervals) ran the whole round's program (5): the count is an argument.
  assert programs.run_intervals._cache_size() == programs_compiled


def test_same_seed_same_results(small_mlp, tiny_data):
  trainer = train.Trainer(small_mlp[1], optax.adam(3e-3), batch_size=32)
  a = _train(trainer, small_mlp, tiny_data, steps=40)
  b = _train(trainer, small_mlp, tiny_data, steps=40)
  chex.assert_trees_all_equal(a[0].params, b[0].params)
  chex.assert_trees_all_equal(a[2], b[2])


def test_diverging_ticket_is_flagged_and_isolated(small_mlp, tiny_data):
  module, roles, params, mask, model_state, keys = _tickets(small_mlp)
  # Ticket 1 starts from NaN weights; the others must train as if alone.
  params = jax.tree.map(lambda p: p.at[1].set(jnp.nan), params)
  trainer = train.Trainer(module, optax.adam(3e-3), batch_size=32)
  states = trainer.init_states(params, mask, model_state, keys)
  states, tracker, curves = trainer.train(states, tiny_data, steps=40, eval_every=20)
  np.testing.assert_array_equal(tracker.diverged, [False, True, False])
  assert int(tracker.step[1]) == -1
  assert np.all(np.isfinite(np.asarray(curves.val_loss)[:, [0, 2]]))


def test_evaluate_pads_the_last_batch(small_mlp, tiny_data):
  spec, module, init, roles = small_mlp
  p = init(jax.random.key(0))
  trainer = train.Trainer(module, optax.adam(1e-3), batch_size=32, eval_batch_size=64)  # 200 % 64 != 0
  loss, acc = trainer.evaluate(p, masks.ones(p), {}, tiny_data, tiny_data.test)
  logits = module.apply({"params": p}, tiny_data.normalize(tiny_data.test.images))
  np.testing.assert_allclose(loss, train.cross_entropy(logits, tiny_data.test.labels), rtol=1e-5)
  np.testing.assert_allclose(acc, np.mean(np.argmax(logits, -1) == tiny_data.test.labels), rtol=1e-6)


def test_training_learns(small_mlp, tiny_data):
  trainer = train.Trainer(small_mlp[1], optax.adam(3e-3), batch_size=32)
  states, tracker, curves = _train(trainer, small_mlp, tiny_data, steps=200)
  assert np.all(np.asarray(curves.val_loss[-1]) < np.asarray(curves.val_loss[0]))
  assert np.all(np.asarray(tracker.accuracy) > 0.5)


@pytest.mark.parametrize("steps, eval_every, batch, message", [
    (0, 1, 32, "steps"), (10, 0, 32, "eval_every"), (10, 20, 32, "larger than the run"),
    (10, 5, 10_000, "batch size")])
def test_bad_schedules_raise(steps, eval_every, batch, message):
  with pytest.raises(ValueError, match=message):
    train.validate_schedule(steps, eval_every, batch, 400)


def test_binary_logit_loss_and_accuracy():
  logits = jnp.array([[2.0], [-1.0], [0.5]])
  labels = jnp.array([1, 0, 0])
  np.testing.assert_array_equal(train.correct_predictions(logits, labels), [1, 1, 0])
  np.testing.assert_allclose(train.cross_entropy(logits, labels),
                             np.mean(np.log1p(np.exp(-np.array([2.0, 1.0, -0.5])))), rtol=1e-6)


def test_unrolled_host_loop_matches_device_loops(small_mlp, tiny_data):
  """The CPU-conv path (no device loops, one program per ticket) computes the same training."""
  looped = train.Trainer(small_mlp[1], optax.adam(3e-3), batch_size=32, ticket_batch=2)
  unrolled = train.Trainer(small_mlp[1], optax.adam(3e-3), batch_size=32, unroll=True)
  # 30 steps cross the epoch boundary at step 18 (600 examples, batches of 32); every unrolled
  # step holds its own epoch-permutation branch, so longer intervals only cost compile time.
  a_states, a_tracker, a_curves = _train(looped, small_mlp, tiny_data, steps=30, eval_every=10)
  b_states, b_tracker, b_curves = _train(unrolled, small_mlp, tiny_data, steps=30, eval_every=10)
  chex.assert_trees_all_close(a_states.params, b_states.params, atol=1e-5, rtol=1e-5)
  np.testing.assert_array_equal(a_tracker.step, b_tracker.step)
  np.testing.assert_allclose(a_curves.val_loss, b_curves.val_loss, rtol=1e-5)
  assert b_curves.val_loss.shape == (3, K)


@pytest.mark.parametrize("ticket_batch", [None, 1])  # vmapped: a step discarded; one at a time: a branch
def test_a_ticket_with_its_own_schedule_scales_its_rate_and_stops_at_its_budget(small_mlp, tiny_data,
                                                                                ticket_batch):
  module, _, params, mask, model_state, keys = _tickets(small_mlp, k=1)
  one = lambda t: jax.tree.map(lambda x: x[0], t)  # noqa: E731
  trainer = train.Trainer(module, optax.sgd(0.1), batch_size=32, ticket_batch=ticket_batch)
  x, y = tiny_data.normalize(tiny_data.train.images[:32]), tiny_data.train.labels[:32]
  moved = {}
  for scale in (1.0, 3.0):
    state = trainer.init_state(one(params), one(mask), {}, keys[0], (jnp.float32(scale), jnp.int32(2)))
    after, _ = jax.jit(trainer.train_step)(state, x, y, 0)
    moved[scale] = jax.tree.map(lambda a, b: a - b, after.params, state.params)
    stopped, loss = jax.jit(trainer.train_step)(after, x, y, 2)  # step 2 is past its last step
    chex.assert_trees_all_equal(stopped, after)
    # Standing still, it still reports its training loss on the batch (the curves' train_loss).
    forward = optax.softmax_cross_entropy_with_integer_labels(trainer.module.apply({"params": after.params}, x), y)
    np.testing.assert_allclose(loss, forward.mean(), rtol=1e-6)
  chex.assert_trees_all_close(jax.tree.map(lambda d: 3.0 * d, moved[1.0]), moved[3.0], rtol=1e-5, atol=1e-7)


def test_a_longer_budget_decays_its_rate_at_the_same_fractions_of_it(small_mlp, tiny_data):
  # Liu et al.'s Scratch-B: twice the steps on the same schedule, stretched. A ticket that trains
  # to step 16 in a run of 8 steps decaying at 4 and 6 must move as one trained on a schedule
  # decaying at 8 and 12; a ticket of the run's own budget exactly as the run's.
  module, _, params, mask, _, keys = _tickets(small_mlp, k=1)
  one = lambda t: jax.tree.map(lambda x: x[0], t)  # noqa: E731
  sgd = lambda *m: optimizers.make("sgd", 0.2, momentum=0.9, milestones=m)  # noqa: E731
  run = train.Trainer(module, sgd(4, 6), 32, ticket_batch=1, stretch=optimizers.stretch(0, (4, 6), 0.1, 8))
  x, y = tiny_data.normalize(tiny_data.train.images[:32]), tiny_data.train.labels[:32]

  def trained(trainer, schedule, steps=14):
    state, step = trainer.init_state(one(params), one(mask), {}, keys[0], schedule), jax.jit(trainer.train_step)
    for s in range(steps):
      state, _ = step(state, x, y, s)
    return state.params

  chex.assert_trees_all_close(trained(run, (jnp.float32(1), jnp.int32(16))),
                              trained(train.Trainer(module, sgd(8, 12), 32, ticket_batch=1), ()),
                              rtol=1e-5, atol=1e-6)
  # (Its factor is exactly 1, test_optimizers; two programs need not round alike on every CPU.)
  unstretched = train.Trainer(module, sgd(4, 6), 32, ticket_batch=1)
  chex.assert_trees_all_close(trained(run, (jnp.float32(1), jnp.int32(8)), steps=8),
                              trained(unstretched, (jnp.float32(1), jnp.int32(8)), steps=8), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("ticket_batch", [None, 1])
def test_a_ticket_with_its_own_first_step_stands_still_until_it_and_validates_only_after(
    small_mlp, tiny_data, ticket_batch):
  # Two copies of one ticket in one program: the second starts at step 20 (a later rewind point
  # beside an earlier one) at a rate that makes it worse. It must train, validate and early-stop
  # as the ticket run alone from step 20: its stand-still evaluations at 10 and 20 (its best
  # loss, were they counted: 2.3 against 46-56 after) belong to no run of its own.
  module, _, params, mask, model_state, keys = _tickets(small_mlp, k=1)
  two = lambda t: jax.tree.map(lambda x: jnp.concatenate([x, x]), t)  # noqa: E731
  trainer = train.Trainer(module, optax.sgd(0.1), batch_size=32, ticket_batch=ticket_batch)
  schedule = (jnp.array([1.0, 1000.0], jnp.float32), jnp.array([40, 40], jnp.int32), jnp.array([0, 20], jnp.int32))
  states = trainer.init_states(two(params), two(mask), two(model_state), two(keys), schedule)
  halfway, _, _ = trainer.train(jax.tree.map(jnp.copy, states), tiny_data, steps=40, eval_every=10, stop_step=20)
  chex.assert_trees_all_equal(parallel.take(halfway.params, 1), parallel.take(states.params, 1))
  together, tracker, curves = trainer.train(states, tiny_data, steps=40, eval_every=10)
  alone_states = trainer.init_states(params, mask, model_state, keys, tuple(x[1:] for x in schedule[:2]))
  alone, tr, cv = trainer.train(alone_states, tiny_data, steps=40, eval_every=10, start_step=20)
  tol = 1e-6 if ticket_batch == 1 else 1e-2  # (vmapped over 2 tickets, not 1: rounding, grown by the rate)
  chex.assert_trees_all_close(parallel.take(together.params, 1), parallel.take(alone.params, 0), rtol=tol, atol=tol)
  np.testing.assert_allclose(curves.val_loss[2:, 1], cv.val_loss[:, 0], rtol=tol)
  assert int(tracker.step[1]) == int(tr.step[0]) and int(tracker.step[1]) not in (10, 20)
  # One at a time, its intervals before step 20 are skipped (NaN rows); vmapped, both branches run.
  assert np.isnan(curves.val_loss[:2, 1]).all() == (ticket_batch == 1)


@pytest.mark.parametrize("ticket_batch", [None, 1, "unroll"])
def test_a_ticket_past_its_budget_stands_still_and_one_at_a_time_skips_its_validation(
    small_mlp, tiny_data, ticket_batch):
  # Scratch-B's ticket and reinit beside it: budgets of 20 and 40 steps in one 40-step program.
  # The shorter must end as it would alone (params, early stop, curves up to its budget); after
  # it, one ticket at a time skips the forward passes and validations of unchanged weights.
  module, _, params, mask, model_state, keys = _tickets(small_mlp, k=1)
  two = lambda t: jax.tree.map(lambda x: jnp.concatenate([x, x]), t)  # noqa: E731
  # Unrolled (the CPU conv path), the cond would run convolutions slowly: it steps and discards.
  unroll = ticket_batch == "unroll"
  trainer = train.Trainer(module, optax.sgd(0.1), batch_size=32, ticket_batch=1 if unroll else ticket_batch,
                          unroll=unroll)
  assert trainer.branches_per_ticket == (ticket_batch == 1)
  schedule = (jnp.array([1.0, 1.0], jnp.float32), jnp.array([20, 40], jnp.int32))
  states = trainer.init_states(two(params), two(mask), two(model_state), two(keys), schedule)
  together, tracker, curves = trainer.train(states, tiny_data, steps=40, eval_every=10)
  alone, tr, cv = trainer.train(trainer.init_states(params, mask, model_state, keys), tiny_data,
                                steps=20, eval_every=10)
  tol = 1e-2 if ticket_batch is None else 1e-6
  chex.assert_trees_all_close(parallel.take(together.params, 0), parallel.take(alone.params, 0), rtol=tol, atol=tol)
  np.testing.assert_allclose(curves.val_loss[:2, 0], cv.val_loss[:, 0], rtol=tol)
  assert int(tracker.step[0]) == int(tr.step[0])
  np.testing.assert_allclose(tracker.loss[0], tr.loss[0], rtol=tol)
  np.testing.assert_array_equal(curves.step[:, 0], [10, 20, 30, 40])
  after = np.stack([curves.train_loss[2:, 0], curves.val_loss[2:, 0], curves.val_accuracy[2:, 0]])
  if ticket_batch == 1:
    assert np.isnan(after).all()
  else:  # the same weights validated again
    np.testing.assert_array_equal(curves.val_loss[2:, 0], curves.val_loss[1, 0])
  assert np.isfinite(curves.val_loss[:, 1]).all()  # the longer budget trains throughout


def test_the_own_schedules_benchmark_prints_its_ratios(binaries):
  ran = binaries("benchmarks.own_schedules", ["--models=lenet_300_100", "--tickets=2", "--steps=4",
                                              "--eval_every=2", "--batch_size=8", "--repeats=1"], timeout=300)
  assert ran.rc == 0, ran.stderr[-2000:]
  import json
  (line,) = [json.loads(x) for x in ran.stdout.splitlines() if '"own_schedules"' in x]
  assert line["model"] == "lenet_300_100" and line["tickets"] == 2
  assert line["own_over_run"] > 0 and line["half_idle_over_run"] > 0
  assert line["grouped_over_half_idle"] > 0 and line["stacked_over_grouped"] > 0
