"""Linear mode connectivity: the path, the barrier, and the twin control in a lottery run."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ltjax import lineup, stability, wiring
from ltjax.core import tickets
from ltjax.engine import optimizers
from ltjax.runs import experiment
from tests.conftest import shared_data_dir, tiny_lottery_config


def test_alphas_need_two_points():
  np.testing.assert_allclose(stability.alphas(3), [0.0, 0.5, 1.0])
  with pytest.raises(ValueError, match="at least 2 points"):
    stability.alphas(1)


def test_interpolation_hits_both_ends_and_the_midpoint():
  a, b = {"w": jnp.zeros((2, 3))}, {"w": jnp.full((2, 3), 4.0)}
  path = stability.interpolate(a, b, stability.alphas(5))
  assert path["w"].shape == (5, 2, 3)
  np.testing.assert_allclose(path["w"][:, 0, 0], [0.0, 1.0, 2.0, 3.0, 4.0])


def test_barrier_is_the_peak_above_the_ends_mean():
  assert stability.barrier([0.1, 0.5, 0.3]) == pytest.approx(0.3)
  np.testing.assert_allclose(stability.barrier([[0.2, 0.2, 0.2], [0.1, 0.05, 0.3]]), [0.0, 0.1])


needs_mnist = pytest.mark.skipif(shared_data_dir() is None, reason="prepared MNIST not found")


@needs_mnist
def test_twins_fork_at_step_k_and_their_path_is_measured(tmp_path):
  cfg = tiny_lottery_config(**{"prune.rewind_step": 50, "prune.rounds": 1, "trials": 2,
                               "controls": ("twin",), "stability.points": 5})
  recs = experiment.train_and_evaluate(cfg, tmp_path, log=lambda _: None)
  for r in (0, 1):  # the dense net and the ticket both get a twin
    ticket = [x for x in recs if x["round"] == r and x["kind"] == "ticket"]
    twin = {x["trial"]: x for x in recs if x["round"] == r and x["kind"] == "twin"}
    assert len(ticket) == 2 and len(twin) == 2
    for x in ticket:
      assert len(x["path_error"]) == 5 and twin[x["trial"]]["path_error"] == x["path_error"]
      # The path's ends are the two networks themselves.
      assert x["path_error"][0] == pytest.approx(1 - x["final_test_accuracy"], abs=1e-6)
      assert x["path_error"][-1] == pytest.approx(1 - twin[x["trial"]]["final_test_accuracy"], abs=1e-6)
      assert x["instability"] == pytest.approx(stability.barrier(x["path_error"]), abs=1e-5)
      assert x["path_error"] != x["path_error"][::-1]  # another data order: another network


@needs_mnist
def test_a_twin_starts_as_its_ticket_with_another_data_order():
  cfg = tiny_lottery_config(**{"prune.rounds": 1, "trials": 2, "controls": ("twin", "scratch")})
  dataset = experiment.load_dataset(cfg, log=lambda _: None)
  setup = wiring.build(cfg, dataset)
  lineage = lineup.initial_lineage(setup).replace(round=1)
  ids = lineup.lineup(cfg, 1)
  states = lineup.start_states(setup, lineage, ids)
  at = lambda tree, i: jax.tree.map(lambda x: np.asarray(x[i]), tree)  # noqa: E731
  for trial in range(2):
    t, w, s = (lineup.rows(ids, k)[trial] for k in (tickets.TICKET, tickets.TWIN, tickets.SCRATCH))
    jax.tree.map(np.testing.assert_array_equal, at(states.params, t), at(states.params, w))
    assert not np.array_equal(states.rng[t], states.rng[w])
    # Scratch: the ticket's mask, a fresh init, and its own schedule.
    jax.tree.map(np.testing.assert_array_equal, at(states.mask, t), at(states.mask, s))
    assert not np.allclose(states.params["fc1"]["kernel"][t], states.params["fc1"]["kernel"][s])
    assert float(states.schedule[0][s]) == cfg.scratch.lr_scale
    assert int(states.schedule[1][s]) == 2 * cfg.train.steps and int(states.schedule[1][t]) == cfg.train.steps
  # Its budget stretches the run's decay steps (Scratch-B's schedule); a constant rate has none.
  assert setup.trainer.stretch is None
  half = cfg.train.steps // 2
  decaying = wiring.build(tiny_lottery_config(**{"controls": ("scratch",), "train.milestones": (half,)}), dataset)
  assert decaying.trainer.stretch == optimizers.Stretch(0, (half,), cfg.train.decay, cfg.train.steps)


@needs_mnist
def test_scratch_starts_at_step_0_and_rewound_schedules_continue_from_k():
  # Rewinding to k: the tickets start at k, their rate schedule at k (Adam's own count at 0, over
  # fresh moments); the scratch control is a fresh network and trains from step 0.
  cfg = tiny_lottery_config(**{"prune.rounds": 1, "controls": ("scratch",), "prune.rewind_step": 50,
                               "train.milestones": (100,)})
  setup = wiring.build(cfg, experiment.load_dataset(cfg, log=lambda _: None))
  ids = lineup.lineup(cfg, 1)
  states = lineup.start_states(setup, lineup.initial_lineage(setup).replace(round=1), ids)
  t, s = lineup.rows(ids, tickets.TICKET), lineup.rows(ids, tickets.SCRATCH)
  first = np.asarray(states.schedule[2])
  assert (first[t] == 50).all() and (first[s] == 0).all()
  kinds = (optax.ScaleByScheduleState, optax.ScaleByAdamState)
  counts = {type(n): np.asarray(n.count) for n in jax.tree.leaves(
      states.opt_state, is_leaf=lambda n: isinstance(n, kinds)) if isinstance(n, kinds)}
  schedule = counts[optax.ScaleByScheduleState]
  assert (schedule[t] == 50).all() and (schedule[s] == 0).all()
  assert (counts[optax.ScaleByAdamState] == 0).all()


@needs_mnist
def test_controls_have_twins_and_a_ticket_can_have_several():
  cfg = tiny_lottery_config(**{"prune.rounds": 1, "trials": 2, "stability.twins": 2, "controls": (
      "reinit", "random_mask", "twin", "twin_reinit", "twin_random_mask")})
  dataset = experiment.load_dataset(cfg, log=lambda _: None)
  setup = wiring.build(cfg, dataset)
  lineage = lineup.initial_lineage(setup).replace(round=1)
  ids = lineup.lineup(cfg, 1)
  assert len(lineup.rows(ids, tickets.TWIN)) == len(lineup.rows(ids, tickets.TWIN_REINIT)) == 4
  states = lineup.start_states(setup, lineage, ids)
  at = lambda tree, i: jax.tree.map(lambda x: np.asarray(x[i]), tree)  # noqa: E731
  same = lambda a, b: jax.tree.map(np.testing.assert_array_equal, a, b)  # noqa: E731
  for trial in range(2):
    row = lambda kind, draw=0: ids.index(lineup.TicketId(kind, trial, draw))  # noqa: E731
    for partner, twin in ((tickets.REINIT, tickets.TWIN_REINIT), (tickets.RANDOM_MASK, tickets.TWIN_RANDOM_MASK),
                          (tickets.TICKET, tickets.TWIN)):
      for draw in (0, 1):  # each twin starts as its partner, with a data order of its own
        same(at(states.params, row(partner)), at(states.params, row(twin, draw)))
        same(at(states.mask, row(partner)), at(states.mask, row(twin, draw)))
      rngs = {bytes(np.asarray(states.rng[i])) for i in (row(partner), row(twin, 0), row(twin, 1))}
      assert len(rngs) == 3
    assert not np.array_equal(states.params["fc1"]["kernel"][row(tickets.REINIT)],
                              states.params["fc1"]["kernel"][row(tickets.TICKET)])
  paths = stability.twin_paths(setup.trainer, 3, ids, states, dataset)
  for trial in range(2):
    row = lambda kind, draw=0: ids.index(lineup.TicketId(kind, trial, draw))  # noqa: E731
    for partner, twin in ((tickets.REINIT, tickets.TWIN_REINIT), (tickets.TICKET, tickets.TWIN)):
      np.testing.assert_array_equal(paths[row(partner)], paths[row(twin, 0)])
      assert np.isfinite(paths[row(twin, 1)]).all()
      # Untrained twins equal their partner: a flat path.
      np.testing.assert_allclose(paths[row(twin, 1)], paths[row(twin, 1)][0], atol=1e-6)


def test_a_control_twin_needs_its_control():
  from ltjax.runs import validation
  with pytest.raises(validation.ConfigError, match="twin of the 'reinit' control"):
    validation.check(tiny_lottery_config(**{"controls": ("twin_reinit",)}))
