"""The report (ltjax.reports.summary) on hand-made and committed workdirs: which figures it draws or
skips with a note, summary.md's tables, the criteria report, and what the report layer imports."""

import ast
import json
import pathlib
import shutil

import matplotlib.image
import numpy as np
import pytest

from ltjax.reports import analysis, summary
from tests.conftest import REPO
from tests.report_workdirs import (
  ROUNDS,
  checkpointed_run,
  handmade_run,
)

COMMITTED = sorted(p.parent for p in (REPO / "results").glob("*/results.jsonl"))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  return handmade_run(tmp_path_factory.mktemp("handmade"))


@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory):
  return checkpointed_run(tmp_path_factory.mktemp("checkpointed"))[0]


def test_write_report_renders_and_notes_skips(run, tmp_path):
  text = summary.write_report([run], tmp_path).read_text()
  for name in ("accuracy", "final_accuracy", "early_stop", "curves", "mask_overlap", "connectivity"):
    assert f"]({name}.png)" in text
    image = matplotlib.image.imread(tmp_path / f"{name}.png")
    assert image.shape[0] > 200 and image.shape[1] > 200
  assert not (tmp_path / "init_values.png").exists()
  assert "initial-value histograms skipped" in text and "θ₀ in checkpoints/" in text
  assert "Early-stop rule (at most 10% of a kind's early stops in the last 5%" in text
  assert "### Initial values of the surviving weights" not in text


def test_write_report_reads_theta_0_from_the_checkpoints(checkpointed, tmp_path):
  text = summary.write_report([checkpointed], tmp_path).read_text()
  assert "](init_values.png)" in text and "histograms skipped" not in text
  assert matplotlib.image.imread(tmp_path / "init_values.png")[..., :3].std() > 0.05
  table = text.split("## Details")[1].split("### Initial values of the surviving weights")[1]
  rows = [line for line in table.splitlines() if line.startswith("| 1 | fc1/kernel")]
  kept = checkpointed.masks(1)["fc1/kernel"]
  assert rows and f"| {100 * kept.mean():.2f} |" in rows[0]


def test_init_rows_compare_survivors_with_every_weight(checkpointed):
  rows = summary.init_rows(checkpointed, [1, ROUNDS - 1])
  assert [(x["round"], x["layer"]) for x in rows] == [
      (r, k) for r in (1, ROUNDS - 1) for k in ("fc1/kernel", "fc2/kernel", "out/kernel")]
  init, mask = checkpointed.init_params["fc2/kernel"], checkpointed.masks(1)["fc2/kernel"]
  row = rows[1]
  assert row["n"] == mask.sum() and row["mean"] == pytest.approx(init[mask].mean())


def test_slug_makes_file_name_parts():
  assert summary.slug("lr=0.1, width 2/3") == "lr_0.1_width_2_3" and summary.slug("//") == "run"


def test_round_table_cells_are_mean_min_max_of_the_records(run):
  table = summary.round_table(run).splitlines()
  head = [c.strip() for c in table[0].strip("|").split("|")]
  assert head[:2] == ["round", "% remaining"] and len(table) == 2 + ROUNDS
  cells = dict(zip(head, (c.strip() for c in table[2 + 1].strip("|").split("|"))))  # round 1
  acc = [100 * x["test_accuracy"] for x in run.records if x["round"] == 1 and x["kind"] == "reinit"]
  assert cells["random reinit: test acc. %"] == f"{np.mean(acc):.2f} ({min(acc):.2f}–{max(acc):.2f})"


def test_criteria_report_draws_the_cost_and_overlays_the_runs_on_request(run, tmp_path):
  points = [{"criterion": "imp", "round": 1, "density": 0.8, "finding_model_steps": 100.0,
             "test_accuracy": [0.95, 0.96]},
            {"criterion": "snip", "round": 1, "density": 0.8, "finding_model_steps": 0.0,
             "test_accuracy": [0.93, 0.94]}]
  twin = analysis.Run(run.workdir, run.label, run.config, run.records)  # another run, same name
  cost = summary.write_criteria_report([run, twin], points, tmp_path / "both")
  assert matplotlib.image.imread(cost).shape[0] > 200
  assert json.loads((tmp_path / "both" / "cost.json").read_text()) == points
  text = (tmp_path / "both" / "summary.md").read_text()
  assert "](accuracy.png)" in text  # overlaid; each run's own figures get the run's index too
  assert "](curves_handmade_0.png)" in text and "](curves_handmade_1.png)" in text
  summary.write_criteria_report([], points, tmp_path / "cost_only", overlaid=False)
  assert sorted(p.name for p in (tmp_path / "cost_only").iterdir()) == ["cost.json", "cost.png"]


def _redraw(binaries, tmp_path, committed: str, names=()):
  """The report binary's --records over copies of `names` from results/`committed`."""
  for name in names:
    (tmp_path / name).write_text((REPO / "results" / committed / name).read_text())
  return binaries("experiments.report", [f"--records={tmp_path}", f"--out={tmp_path / 'out'}"])


def test_report_records_read_a_published_sets_own_config(binaries, tmp_path):
  # reviewer_runs.sh --publish copies each point's config.json: the figures name its controls by it.
  # (The binary runs in a process of its own: importing it here would define its absl flags a
  # second time beside another binary's in this worker.)
  for name in ("lr=0.1.results.jsonl", "lr=0.1.config.json"):
    (tmp_path / name).write_text((REPO / "results" / "liu_20k_cpu" / name).read_text())
  ran = binaries("experiments.report", [f"--records={tmp_path}", f"--out={tmp_path / 'out'}"])
  assert ran.rc == 0, ran.stderr
  assert f"config: {tmp_path / 'lr=0.1.config.json'}" in ran.stdout
  config, _ = analysis.read_config(tmp_path / "lr=0.1.config.json")
  run = analysis.Run(tmp_path, "lr=0.1", config, [])
  assert config["train"]["lr"] == 0.1 and analysis.kind_label("scratch", [run]) == "Scratch-B (2x steps)"
  (tmp_path / "lr=0.1.config.json").write_text('{"ltjax_version": "0"}')
  shutil.rmtree(tmp_path / "out")
  ran = binaries("experiments.report", [f"--records={tmp_path}", f"--out={tmp_path / 'out'}"])
  assert ran.rc == 1 and "lr=0.1.config.json is not a run's config.json" in ran.stderr
  assert ran.stderr.count("\n") == 1 and not (tmp_path / "out").exists()


def test_report_binary_redraws_a_committed_comparison(binaries, tmp_path):
  ran = _redraw(binaries, tmp_path, "criteria_5k_global",
                ("snip.results.jsonl", "synflow.results.jsonl", "scoring_cost.jsonl"))
  assert ran.rc == 0, ran.stderr
  assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
      "accuracy.png", "cost.json", "cost.png", "early_stop.png", "final_accuracy.png"]
  points = json.loads((tmp_path / "out" / "cost.json").read_text())
  synflow = [p["scoring_steps"] for p in points if p["criterion"] == "synflow"]
  assert synflow and all(s > 100 for s in synflow)  # 100 rounds of scoring and selection
  empty = tmp_path / "empty"
  empty.mkdir()
  ran = binaries("experiments.report", [f"--records={empty}"])
  assert ran.rc == 1 and "records: no NAME.results.jsonl" in ran.stderr and ran.stderr.count("\n") == 1


def test_report_binary_redraws_a_committed_studys_stability(binaries, tmp_path):
  # The points' rewind steps come from the study's sweep.json: one line per k, one panel per kind.
  ran = _redraw(binaries, tmp_path, "study_stability",
                ("rewind_step=0.results.jsonl", "rewind_step=500.results.jsonl", "sweep.json"))
  assert ran.rc == 0, ran.stderr
  assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
      "accuracy.png", "early_stop.png", "final_accuracy.png", "instability.png", "stability_path.png"]
  for manifest, message in (('{"points": 3}', "not a sweep manifest"),
                            ('{"points": [{"name": "rewind_step=0", "values": {"prune": 1, "prune.rewind_step": 0}}]}',
                             "sets prune and a field inside it"),
                            ('{"points": [{"name": "rewind_step=0", "values": {"prune.rewind_step": "k"}}]}',
                             "rewind_step must be a step >= 0, got 'k'")):
    (tmp_path / "sweep.json").write_text(manifest)
    ran = _redraw(binaries, tmp_path, "study_stability")
    assert ran.rc == 1 and message in ran.stderr and ran.stderr.count("\n") == 1, ran.stderr


def test_config_lines_say_how_each_mode_found_its_masks(tmp_path):
  (tmp_path / "results.jsonl").write_text(json.dumps({"round": 0, "trial": 0, "kind": "ticket", "draw": 0,
                                                      "density": 1.0, "layer_density": {}, "early_stop_step": 90,
                                                      "steps_trained": 100}) + "\n")
  prune = {"mode": "early_bird", "densities": [0.5, 0.2], "scope": "layerwise",
           "early_bird_threshold": 0.1, "early_bird_patience": 5}
  machines = ["2 x cpu (cpu), jax 0.10.2, AMD EPYC with AVX2", "2 x cpu (cpu), jax 0.10.2, AMD EPYC with AVX-512"]
  (tmp_path / "config.json").write_text(json.dumps({"config": {"prune": prune, "train": {"steps": 100}},
                                                    "machines": machines}))
  lines = summary.config_lines(analysis.load_run(tmp_path))
  pruning = next(line for line in lines if line.startswith("- pruning:"))
  assert "early-bird" in pruning and "< 0.1 for 5 checks" in pruning and "0.5, 0.2" in pruning
  assert any("rounds finished: 1 of 3" in line for line in lines)
  assert lines[-1] == f"- trained on: {machines[0]}; then {machines[1]}"  # records bit-identical on one kind only


@pytest.mark.parametrize("workdir", COMMITTED, ids=lambda p: p.name)
def test_committed_workdirs_still_report(workdir, tmp_path):
  """results/ keeps records and configs only (no curves, masks or checkpoints): the report draws
  what they allow, notes the rest, and writes nothing into them."""
  before = sorted(workdir.rglob("*"))
  text = summary.report([workdir], tmp_path, labels=["committed"]).read_text()
  assert sorted(workdir.rglob("*")) == before
  assert "## committed" in text
  assert "](accuracy.png)" in text and "](early_stop.png)" in text
  assert "initial-value histograms skipped" in text and "no curves/ files" in text
  assert matplotlib.image.imread(tmp_path / "accuracy.png")[..., :3].std() > 0.05


def test_there_are_committed_workdirs_to_check():
  assert {"lenet", "early_bird_002"} <= {p.name for p in COMMITTED}


def test_report_refuses_bad_input_before_drawing(tmp_path):
  with pytest.raises(analysis.ReportError, match="one per workdir"):
    summary.report([tmp_path], tmp_path / "out", labels=["a", "b"])
  with pytest.raises(analysis.ReportError, match="no results.jsonl"):
    summary.report([tmp_path], tmp_path / "out")
  (tmp_path / "results.jsonl").write_text('{"round": 0, "trial": 0}\n')  # JSON, but not records
  with pytest.raises(analysis.ReportError, match="line 1 is not an ltjax record"):
    summary.report([tmp_path], tmp_path / "out")
  assert not (tmp_path / "out").exists()


def test_the_report_binary_refuses_a_records_file_of_something_else(binaries, tmp_path):
  (tmp_path / "a").mkdir()
  (tmp_path / "a" / "results.jsonl").write_text('{"round": 0, "trial": 0}\n')
  ran = binaries("experiments.report", [f"--results={tmp_path}"], timeout=120)
  assert ran.rc != 0 and "Traceback" not in ran.stderr
  assert ran.stderr.strip().splitlines()[-1].startswith("error: results: ") and "not an ltjax record" in ran.stderr
  assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "results.jsonl"]  # nothing written


# ---------------------------------------------------------------- what the report imports
_REPORT = REPO / "ltjax" / "reports"
_NEVER = ("ltjax.lottery", "ltjax.models", "ltjax.engine")


def _imports(path: pathlib.Path) -> list[tuple[str, bool]]:
  """(module, at top level) for every ltjax import in `path`."""
  tree = ast.parse(path.read_text())
  top = {id(node) for node in tree.body}
  found = []
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ltjax"):
      names = [f"{node.module}.{a.name}" for a in node.names]
      found += [(n, id(node) in top) for n in names]
    elif isinstance(node, ast.Import):
      found += [(a.name, id(node) in top) for a in node.names if a.name.startswith("ltjax")]
  return found


def test_report_modules_import_no_trainer_and_form_no_circle():
  """Each report module imports ltjax at its top (no import hidden in a function), never the
  trainer or the models, and the report's own modules import each other without a circle."""
  graph = {}
  for path in sorted(_REPORT.glob("*.py")):
    imports = _imports(path)
    assert all(top for _, top in imports), (path.name, imports)
    assert not [m for m, _ in imports if m.startswith(_NEVER)], path.name
    graph[path.stem] = {m.split(".")[2] for m, _ in imports
                        if m.startswith("ltjax.reports.") and m.count(".") >= 2} - {path.stem}
  assert graph["summary"] >= {"figures", "mask_figures", "stability_figures"}
  done: set[str] = set()

  def visit(module, stack):
    assert module not in stack, f"import circle: {' -> '.join([*stack, module])}"
    if module not in done:
      for dep in graph.get(module, ()):
        visit(dep, [*stack, module])
      done.add(module)
  for module in graph:
    visit(module, [])


def test_a_sparse_training_runs_networks_are_named_by_their_method():
  from types import SimpleNamespace

  from ltjax.reports.analysis import kind_label
  rigl = SimpleNamespace(config={"prune": {"mode": "rigl"}})
  imp = SimpleNamespace(config={"prune": {"mode": "iterative"}})
  assert kind_label("ticket", [rigl]) == "RigL network" and kind_label("reinit", [rigl]) == "random reinit"
  assert kind_label("ticket", [imp]) == "winning ticket" and kind_label("ticket", [rigl, imp]) == "winning ticket"


def test_scratch_is_named_by_its_budget_where_the_runs_agree():
  from types import SimpleNamespace

  from ltjax.reports.analysis import kind_label
  b, e = (SimpleNamespace(config={"scratch": {"steps_scale": s}}) for s in (2.0, 1.0))
  assert kind_label("scratch", [b, b]) == "Scratch-B (2x steps)"
  assert kind_label("scratch", [e]) == "Scratch-E (same steps)"
  unknown = SimpleNamespace(config={})  # a mixed set, or configs without the field: the general name
  assert kind_label("scratch", [b, e]) == kind_label("scratch", [unknown]) == "scratch (own schedule)"
