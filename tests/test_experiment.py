"""End to end on real MNIST (small): records, the density ladder, checkpoints, tickets, controls."""

import json
import pathlib
import shutil

import jax
import numpy as np
import pytest
from conftest import layer_counts

from ltjax import lineup, lottery, wiring
from ltjax.engine import runtime
from ltjax.runs import checkpoint, experiment, results
from ltjax.runs import workdir as workdir_lib
from tests.conftest import shared_data_dir, tiny_lottery_config
from tests.test_tensorboard import run_scalars

DATA_DIR = shared_data_dir()
pytestmark = pytest.mark.skipif(DATA_DIR is None, reason="prepared MNIST not found "
                                "($LTJAX_DATA_DIR or ../shared/datasets/tfds)")


tiny_config = tiny_lottery_config
# The shared run keeps LeNet-300-100's own widths, so its density ladder is the paper's.
PAPER_WIDTHS = {"model_kwargs.width": 1.0}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("lenet")
  cfg = tiny_config(**PAPER_WIDTHS)
  recs = experiment.train_and_evaluate(cfg, workdir, log=lambda _: None)
  return cfg, workdir, recs


def test_records_cover_every_ticket_of_every_round(finished):
  cfg, workdir, recs = finished
  by_round = {}
  for r in recs:
    by_round.setdefault(r["round"], []).append(r["kind"])
  assert sorted(by_round[0]) == ["ticket"] * 2  # no controls for the dense net
  for r in (1, 2, 3):
    assert sorted(by_round[r]) == sorted(["ticket", "reinit", "random_mask"] * 2)
  for r in recs:
    assert r["early_stop_step"] in (50, 100, 150, 200)
    assert 0.8 < r["test_accuracy"] <= 1.0 and not r["diverged"]
    assert set(r["layer_density"]) == {"fc1/kernel", "fc2/kernel", "out/kernel"}
  csv_rows = (workdir / "results.csv").read_text().strip().splitlines()
  assert len(csv_rows) == len(recs) + 1
  saved = json.loads((workdir / "config.json").read_text())
  assert saved["config"]["train"]["steps"] == 200 and "ltjax_version" in saved


def test_tensorboard_has_every_tickets_curves(finished):
  """Live curves: one TensorBoard run per ticket, matching the curves saved with each round."""
  cfg, workdir, recs = finished
  runs = sorted(p.name for p in (workdir / "tensorboard").iterdir())
  assert runs == sorted(["ticket_trial0", "ticket_trial1", "reinit_trial0_draw0", "reinit_trial1_draw0",
                         "random_mask_trial0", "random_mask_trial1"])
  scalars = run_scalars(workdir / "tensorboard" / "reinit_trial1_draw0")
  curves = np.load(workdir / "curves" / "round_02.npz")
  col = [tuple(x) for x in curves["ids"].tolist()].index((1, 1, 0))  # trial 1, reinit, draw 0
  val = {step: v for step, tag, v in scalars if tag == "round_02/val_loss"}
  assert sorted(val) == curves["step"][:, col].tolist()
  np.testing.assert_allclose([val[s] for s in sorted(val)], curves["val_loss"][:, col], rtol=1e-6)
  assert {t.split("/")[0] for _, t, _ in scalars} == {"round_01", "round_02", "round_03"}


def test_density_ladder_is_exact(finished):
  _, _, recs = finished
  for r, expected in ((1, 80.04), (2, 64.06), (3, 51.28)):
    for rec in (x for x in recs if x["round"] == r):
      assert round(100 * rec["density"], 2) == expected
      assert rec["layer_density"]["fc1/kernel"] == pytest.approx(0.8 ** r, abs=1e-4)
      assert rec["layer_density"]["out/kernel"] == pytest.approx(0.9 ** r, abs=2e-3)


def test_pruned_weights_zero_in_every_saved_checkpoint(finished):
  _, workdir, _ = finished
  steps = sorted(int(p.name) for p in (workdir / "checkpoints" / "rounds").iterdir()
                 if p.name.isdigit())
  assert steps == [3, 4]  # the last two rounds are kept
  for step in steps:
    _, trained = checkpoint.read(workdir, "trained", step=step)
    for p, m in zip(jax.tree.leaves(trained["params"]), jax.tree.leaves(trained["mask"])):
      assert np.all(np.asarray(p)[~np.asarray(m)] == 0.0)
    # The saved per-round ticket masks agree with the checkpoint's.
    saved = np.load(workdir / "masks" / f"round_{step - 1:02d}.npz")
    np.testing.assert_array_equal(
        np.unpackbits(saved["fc1/kernel"], axis=-1, count=300).astype(bool),
        np.asarray(trained["mask"]["fc1"]["kernel"])[:2])


def _restored(cfg, workdir, next_round=4):
  dataset = experiment.load_dataset(cfg)
  setup = wiring.build(cfg, dataset)
  ckpt = checkpoint.Checkpoints(workdir)
  try:
    fresh = lineup.initial_lineage(setup)
    step, tree, meta = ckpt.latest_round(experiment.lineage_tree(fresh))
  finally:
    ckpt.close()
  import flax.serialization
  assert step == next_round
  lineage = flax.serialization.from_state_dict(fresh, tree).replace(round=next_round - 1)
  return setup, lineage


def test_tickets_reset_to_init_and_controls_are_what_they_claim(finished):
  cfg, workdir, _ = finished
  setup, lineage = _restored(cfg, workdir)
  ids = lineup.lineup(cfg, 3)
  states = lineup.start_states(setup, lineage, ids)
  row = {(t.kind, t.trial): i for i, t in enumerate(ids)}
  for trial in range(cfg.trials):
    t, re, rm = (row[("ticket", trial)], row[("reinit", trial)], row[("random_mask", trial)])
    init = jax.tree.map(lambda x: np.asarray(x[trial]), lineage.init_params)
    mask = jax.tree.map(lambda x: np.asarray(x[trial]), lineage.mask)
    get = lambda tree, i: jax.tree.map(lambda x: np.asarray(x[i]), tree)  # noqa: E731
    k = ("fc1", "kernel")
    m = mask[k[0]][k[1]]
    ticket_p, reinit_p, rmask_p = (get(states.params, i)[k[0]][k[1]] for i in (t, re, rm))
    # Winning ticket: survivors at their exact initial values, the rest exactly zero.
    np.testing.assert_array_equal(ticket_p[m], init[k[0]][k[1]][m])
    assert np.all(ticket_p[~m] == 0)
    # Reinit: the same mask, different values.
    np.testing.assert_array_equal(get(states.mask, re)[k[0]][k[1]], m)
    assert not np.allclose(reinit_p[m], ticket_p[m])
    # Random mask: same per-layer density, other positions, the same initial values under it.
    rm_mask = get(states.mask, rm)
    assert layer_counts(rm_mask, setup.roles) == layer_counts(mask, setup.roles)
    assert (rm_mask[k[0]][k[1]] != m).mean() > 0.2
    np.testing.assert_array_equal(rmask_p[rm_mask[k[0]][k[1]]],
                                  init[k[0]][k[1]][rm_mask[k[0]][k[1]]])


def test_rerun_of_a_finished_workdir_is_a_no_op(finished):
  cfg, workdir, recs = finished
  again = experiment.train_and_evaluate(cfg, workdir, log=lambda _: None)
  assert again == recs
  # config.json names the machine it trained on once, however often the run resumes there.
  assert json.loads((workdir / "config.json").read_text())["machines"] == [runtime.describe_machine()]


def test_a_run_resumed_from_before_machines_were_recorded_says_so(finished, tmp_path):
  cfg, workdir, recs = finished
  copy = tmp_path / "old"
  shutil.copytree(workdir, copy)
  config = json.loads((copy / "config.json").read_text())
  del config["machines"]
  (copy / "config.json").write_text(json.dumps(config))
  assert experiment.train_and_evaluate(cfg, copy, log=lambda _: None) == recs
  assert json.loads((copy / "config.json").read_text())["machines"] == [
      workdir_lib.UNRECORDED_MACHINE, runtime.describe_machine()]


def test_different_config_is_refused_unless_restarting(finished, tmp_path):
  cfg, workdir, _ = finished
  other = tiny_config(**{"train.steps": 300, **PAPER_WIDTHS})
  with pytest.raises(experiment.UsageError, match="different config.*train.steps"):
    experiment.prepare_workdir(pathlib.Path(workdir), other, restart=False)
  # Execution settings may change between runs of the same experiment.
  same = tiny_config(**{"execution.ticket_batch": 1, **PAPER_WIDTHS})
  experiment.prepare_workdir(pathlib.Path(workdir), same, restart=False)
  scratch = tmp_path / "w"
  scratch.mkdir()
  (scratch / "results.jsonl").write_text("{}\n")
  (scratch / "config.json").write_text(json.dumps({"config": {"model": "x"}}))
  experiment.prepare_workdir(scratch, other, restart=True)
  assert not (scratch / "results.jsonl").exists()


def test_more_imp_rounds_continue_a_finished_run_as_a_longer_run_would(finished, tmp_path):
  cfg, workdir, recs = finished
  more = tiny_config(**{"prune.rounds": 4, **PAPER_WIDTHS})
  grown, fresh = tmp_path / "grown", tmp_path / "fresh"
  shutil.copytree(workdir, grown)
  shutil.rmtree(grown / "checkpoints")  # as committed: records and lineage.npz only
  longer = experiment.train_and_evaluate(more, grown, log=lambda _: None)
  assert longer[:len(recs)] == recs and {r["round"] for r in longer} == {0, 1, 2, 3, 4}
  assert json.loads((grown / "config.json").read_text())["config"]["prune"]["rounds"] == 4
  drop = lambda rs: [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rs]  # noqa: E731
  assert drop(longer) == drop(experiment.train_and_evaluate(more, fresh, log=lambda _: None))
  # fewer rounds, or more of a mode whose rounds depend on their count, stay another experiment
  with pytest.raises(experiment.UsageError, match="different config.*prune.rounds: 4 -> 2"):
    experiment.prepare_workdir(grown, tiny_config(**{"prune.rounds": 2, **PAPER_WIDTHS}), restart=False)
  early_bird = tiny_config(**{"prune.mode": "early_bird"})
  (tmp_path / "eb").mkdir()
  (tmp_path / "eb" / "config.json").write_text(json.dumps({"config": workdir_lib.config_dict(early_bird)}))
  with pytest.raises(experiment.UsageError, match="different config.*prune.rounds: 3 -> 5"):
    experiment.prepare_workdir(tmp_path / "eb", tiny_config(**{"prune.mode": "early_bird", "prune.rounds": 5}),
                               restart=False)


def test_more_rounds_of_a_run_that_kept_no_further_masks_are_refused(tmp_path, monkeypatch):
  # a run finished before IMP kept the masks of a round past its last
  monkeypatch.setattr(lottery, "prunes_past_last_round", lambda cfg: False)
  cfg = tiny_config(**{"prune.rounds": 1, "train.steps": 50})
  recs = experiment.train_and_evaluate(cfg, tmp_path, log=lambda _: None)
  monkeypatch.undo()
  config = (tmp_path / "config.json").read_text()
  with pytest.raises(experiment.UsageError, match=r"last round \(1\) left no masks for a further round"):
    experiment.train_and_evaluate(tiny_config(**{"prune.rounds": 2, "train.steps": 50}), tmp_path,
                                  log=lambda _: None)
  assert (tmp_path / "config.json").read_text() == config  # its own command still resumes it
  assert experiment.train_and_evaluate(cfg, tmp_path, log=lambda _: None) == recs


def test_a_cut_past_the_last_round_that_would_empty_a_layer_ends_the_run_there(tmp_path):
  # the output layer at 90% a round: 250 -> 25 -> 3 weights, and a third cut would leave none
  cfg = tiny_config(**{"prune.rounds": 2, "prune.output_rate": 0.9, "train.steps": 50, "trials": 1})
  recs = experiment.train_and_evaluate(cfg, tmp_path, log=lambda _: None)
  assert {r["round"] for r in recs} == {0, 1, 2}
  with pytest.raises(experiment.UsageError, match=r"last round \(2\) left no masks"):
    experiment.train_and_evaluate(tiny_config(**{"prune.rounds": 3, "prune.output_rate": 0.9, "train.steps": 50,
                                                 "trials": 1}), tmp_path, log=lambda _: None)


def test_a_workdir_holding_other_records_is_refused_before_anything_is_written(tmp_path):
  (tmp_path / "results.jsonl").write_text('{"round": 0, "trial": 0}\n')  # JSON, but not a run's records
  with pytest.raises(experiment.UsageError, match="^workdir: .*line 1 is not an ltjax record.*--restart"):
    experiment.train_and_evaluate(tiny_config(), tmp_path, log=lambda _: None)
  assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "results.jsonl"]  # the run's lock only


def test_one_shot_rounds_reach_their_target_densities(tmp_path):
  cfg = tiny_config(**{"prune.mode": "oneshot", "prune.densities": (0.5, 0.2), "trials": 1,
                       "controls": ()})
  recs = experiment.train_and_evaluate(cfg, tmp_path, log=lambda _: None)
  dens = {r["round"]: r["density"] for r in recs}
  assert dens[0] == 1.0
  assert dens[1] == pytest.approx(0.5, abs=2e-4) and dens[2] == pytest.approx(0.2, abs=2e-4)


def test_diverging_tickets_are_marked(tmp_path):
  cfg = tiny_config(**{"train.optimizer": "sgd", "train.lr": 1e12, "trials": 2,
                       "prune.rounds": 0, "train.steps": 100})
  recs = experiment.train_and_evaluate(cfg, tmp_path, log=lambda _: None)
  assert all(r["diverged"] for r in recs)
  assert all(r["test_accuracy"] is None and r["early_stop_step"] == -1 for r in recs)
  summary = results.format_table(results.summarize(recs))
  assert "diverged" in summary


def test_a_diverged_lineage_is_pruned_from_its_best_validated_weights(tmp_path):
  # Its final weights are not finite; it never validated, so its best are theta_0: round 1's mask
  # keeps fc1's largest |theta_0|, not an arbitrary set ranked among NaNs.
  cfg = tiny_config(**{"train.optimizer": "sgd", "train.lr": 1e12, "trials": 1, "controls": (),
                       "prune.rounds": 1, "train.steps": 100})
  experiment.train_and_evaluate(cfg, tmp_path, log=lambda _: None)
  _, lineage = _restored(cfg, tmp_path, next_round=2)
  init = np.abs(np.asarray(lineage.init_params["fc1"]["kernel"][0]))
  kept = np.unpackbits(np.load(tmp_path / "masks" / "round_01.npz")["fc1/kernel"], axis=-1,
                       count=init.shape[-1]).astype(bool)[0]
  assert 0 < kept.mean() < 1 and init[kept].min() >= init[~kept].max()


@pytest.mark.parametrize("field, value, message", [
    ("train.steps", -1, "train.steps"), ("train.eval_every", 500, "larger than the run"),
    ("prune.fc_rate", 1.0, r"^prune.fc_rate: must be in \[0.0, 1.0\)"),
    ("prune.conv_rate", -0.2, r"^prune.conv_rate: must be in \[0.0, 1.0\)"),
    ("prune.rewind_step", 400, "beyond the training length"),
    ("model", "nope", "^model: unknown model 'nope'; use one of .*lenet_300_100"),
    ("controls", ("reinit", "nope"), "controls"), ("prune.score", "nope", "^prune.score: must be one of .*magnitude"),
    ("prune.mode", "sometimes", "prune.mode"),
    ("controls", ("reinit", "inverted"), "^controls: the 'inverted' control .*'iterative'"),
    ("prune.early_bird_patience", 0, "^prune.early_bird_patience"),
    ("prune.early_bird_threshold", 1.0, "^prune.early_bird_threshold")])
def test_validate_rejects_bad_configs(field, value, message):
  with pytest.raises(experiment.UsageError, match=message):
    experiment.validate(tiny_config(**{field: value}))


def test_rewinding_starts_later_rounds_from_step_k(tmp_path):
  cfg = tiny_config(**{"prune.rewind_step": 50, "prune.rounds": 1, "trials": 1, "controls": ()})
  recs = experiment.train_and_evaluate(cfg, tmp_path, log=lambda _: None)
  assert [r["steps_trained"] for r in recs] == [200, 150]
  curves = np.load(tmp_path / "curves" / "round_01.npz")
  np.testing.assert_array_equal(curves["step"][:, 0], [100, 150, 200])
  # The lineage's starting weights are theta_50, not theta_0.
  setup, lineage = _restored(cfg, tmp_path, next_round=2)
  assert not np.allclose(np.asarray(lineage.start_params["fc1"]["kernel"]),
                         np.asarray(lineage.init_params["fc1"]["kernel"]))


def _at_init_run(score, workdir, controls=("reinit", "random_mask")):
  cfg = tiny_config(**{"prune.mode": "at_init", "prune.score": score, "prune.densities": (0.5, 0.1),
                       "trials": 1, "train.steps": 100, "controls": controls,
                       "prune.scope": "layerwise"})  # not their papers' global: exact per layer
  return cfg, workdir, experiment.train_and_evaluate(cfg, workdir, log=lambda _: None)


@pytest.fixture(scope="module")
def snip_run(tmp_path_factory):
  """SNIP at init with every control, the inverted one included (read by two tests)."""
  return _at_init_run("snip", tmp_path_factory.mktemp("snip"), ("reinit", "random_mask", "inverted"))


@pytest.mark.parametrize("score", ["snip", "synflow"])
def test_pruning_at_init_reaches_each_density_with_its_controls(score, tmp_path, request):
  cfg, workdir, recs = (request.getfixturevalue("snip_run") if score == "snip"
                        else _at_init_run(score, tmp_path))
  assert sorted({r["round"] for r in recs}) == [0, 1, 2]
  h1, h2 = 75, 25  # tiny_lottery_config's quarter-width LeNet
  sizes = {"fc1/kernel": 784 * h1, "fc2/kernel": h1 * h2, "out/kernel": h2 * 10}
  for r in (1, 2):
    d = cfg.prune.densities[r - 1]
    for rec in (x for x in recs if x["round"] == r):  # the ticket and every control alike
      assert rec["layer_density"] == pytest.approx({k: round(d * n) / n for k, n in sizes.items()})
  ticket_mask = np.load(workdir / "masks" / "round_02.npz")
  assert ticket_mask.files  # the found masks are saved like IMP's


def test_every_record_says_what_finding_its_mask_cost(finished):
  cfg, _, recs = finished
  for r in recs:  # IMP: every earlier round's training of the trial's ticket
    assert r["finding_steps"] == r["round"] * cfg.train.steps, r


def test_inverted_control_keeps_the_lowest_scores_at_the_same_density(snip_run):
  cfg, workdir, recs = snip_run
  for r in (1, 2):
    ticket, inverted = ([x for x in recs if x["round"] == r and x["kind"] == k][0]
                        for k in ("ticket", "inverted"))
    assert inverted["layer_density"] == ticket["layer_density"]
    assert ticket["finding_steps"] == inverted["finding_steps"] == 0  # at init: no training
  _, lineage = _restored(cfg, workdir, next_round=3)
  for layer in ("fc1", "fc2", "out"):  # at 10% the top and the bottom scores cannot meet
    top, bottom = (np.asarray(m[layer]["kernel"][0]) for m in (lineage.mask, lineage.inverted_mask))
    assert top.mean() == pytest.approx(0.1, abs=1e-3) and not (top & bottom).any()


def test_early_bird_draws_the_mask_once_it_settles_and_says_when(tmp_path):
  cfg = tiny_config(**{"prune.mode": "early_bird", "prune.densities": (0.5, 0.2), "trials": 2,
                       "train.steps": 200, "train.eval_every": 20, "prune.early_bird_patience": 2,
                       "prune.early_bird_threshold": 0.2, "controls": ("random_mask",)})
  recs = experiment.train_and_evaluate(cfg, tmp_path, log=lambda _: None)
  for r, d in ((1, 0.5), (2, 0.2)):
    tickets = [x for x in recs if x["round"] == r and x["kind"] == "ticket"]
    assert all(x["density"] == pytest.approx(d, abs=2e-3) for x in tickets)
    for x in tickets:  # a check every 20 steps; settled after 1 + patience checks at the earliest
      assert 60 <= x["finding_steps"] < 200 and x["finding_steps"] % 20 == 0, x
  # The same draw twice: test_early_bird.py.


def test_fine_tuning_continues_from_the_trained_ticket(tmp_path):
  cfg = tiny_config(**{"prune.reset": "none", "prune.rounds": 1, "trials": 1, "controls": ()})
  experiment.train_and_evaluate(cfg, tmp_path, log=lambda _: None)
  _, lineage = _restored(cfg, tmp_path, next_round=2)
  kernel = lambda tree: np.asarray(tree["fc1"]["kernel"])  # noqa: E731
  _, trained = checkpoint.read(tmp_path, "trained", step=2)  # round 1's trained ticket (the only row)
  np.testing.assert_array_equal(kernel(lineage.start_params), kernel(trained["params"]))
  assert not np.allclose(kernel(lineage.start_params), kernel(lineage.init_params))


@pytest.mark.parametrize("ticket_batch", [-1, 1])
def test_scratch_trains_on_its_own_longer_budget_alongside_the_ticket(tmp_path, ticket_batch):
  cfg = tiny_config(**{"prune.rounds": 1, "trials": 1, "controls": ("scratch",),
                       "scratch.steps_scale": 2.0, "scratch.lr_scale": 2.0,
                       "execution.ticket_batch": ticket_batch})
  recs = experiment.train_and_evaluate(cfg, tmp_path, log=lambda _: None)
  by = {(r["round"], r["kind"]): r for r in recs}
  assert by[(1, "scratch")]["steps_trained"] == 400 and by[(1, "ticket")]["steps_trained"] == 200
  assert by[(1, "scratch")]["density"] == by[(1, "ticket")]["density"]
  curves = np.load(tmp_path / "curves" / "round_01.npz")
  assert curves["step"][-1, 0] == 400
  ticket_loss = curves["val_loss"][:, 0]  # past its budget the ticket stands still
  past = curves["step"][:, 0] > 200
  if ticket_batch == 1:  # one at a time, without validating it again (NaN rows)
    assert np.isnan(ticket_loss[past]).all() and np.isfinite(ticket_loss[~past]).all()
  else:
    assert (ticket_loss[past] == ticket_loss[curves["step"][:, 0] == 200]).all()
  assert by[(1, "ticket")]["early_stop_step"] <= 200


def test_a_mid_round_checkpoint_that_cannot_resume_is_skipped(tmp_path, caplog):
  """A stale mid-round checkpoint (another round's) and a torn one (killed while it was saved)
  both leave the round to start afresh; the torn one is logged and skipped, never fatal."""
  import flax.serialization
  cfg = tiny_config(**{"prune.rounds": 1, "trials": 1, "controls": (), "train.steps": 100})
  dataset, setup = experiment._build(cfg, log=lambda _: None)
  ckpt = checkpoint.Checkpoints(tmp_path)
  try:
    assert not ckpt.has_midround()
    states = lineup.start_states(setup, lineup.initial_lineage(setup), lineup.lineup(cfg, 0))
    tree = {"states": flax.serialization.to_state_dict(states),
            "tracker": flax.serialization.to_state_dict(setup.trainer.new_tracker(states))}
    ckpt.save_midround(50, tree, {"round": 1, "step": 50, "curves": {}})  # round 1's, not round 0's
    assert ckpt.has_midround()
    lineage, resume = experiment._restore(setup, ckpt, log=lambda _: None, workdir=tmp_path)
    assert lineage.round == 0 and resume is None
    state_dir = tmp_path / "checkpoints" / "midround" / "50" / "state"
    for f in state_dir.rglob("*"):  # torn: the state's files never made it to disk
      if f.is_file():
        f.unlink()
    lineage, resume = experiment._restore(setup, ckpt, log=lambda _: None, workdir=tmp_path)
    assert lineage.round == 0 and resume is None
    assert "skipping unreadable checkpoint" in caplog.text
  finally:
    ckpt.close()


def test_the_same_config_builds_an_equal_trainer_so_its_programs_are_reused():
  from ltjax.data import datasets
  dataset = datasets.synthetic()
  build = lambda **kw: wiring.build(tiny_config(**{"dataset": "synthetic", **kw}), dataset).trainer  # noqa: E731
  assert build(seed=0) == build(seed=1)  # the seed is data, not part of the program
  assert build() != build(**{"train.lr": 2e-3})
