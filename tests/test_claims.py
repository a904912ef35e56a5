"""RESULTS.md's numbers (ltjax.reports.claims): each recomputed from the committed records, the
claims on hand-made records, and the refusals that keep a wrong claim out of the document."""

import json
import shutil

import pytest

from ltjax.reports import claims
from tests.conftest import REPO


def test_committed_results_md_is_generated_from_the_committed_records():
  text = (REPO / "RESULTS.md").read_text()
  assert claims.INLINE.search(text) and claims.BLOCK.search(text)
  assert claims.render(text, REPO / "results") == text, (
      "RESULTS.md differs from its records: python -m experiments.report --results=results")


def test_committed_results_md_types_no_accuracy_by_hand():
  assert claims.unmarked_numbers((REPO / "RESULTS.md").read_text()) == []


def _records(root):
  """Trials 0-2; dense 97.0/97.2/97.4 stopping at 1000; round 1 (50%): tickets +1 point, stopping
  at 500; reinit -0.5 point, stopping at 1500 of 2000 steps (one at 1990: in the last 5%)."""
  recs = []
  for t, dense in enumerate((0.970, 0.972, 0.974)):
    base = {"trial": t, "draw": 0, "diverged": False, "steps_trained": 2000, "finding_steps": 0,
            "wall_seconds": 10.0}
    recs.append(dict(base, round=0, kind="ticket", density=1.0, test_accuracy=dense, early_stop_step=1000))
    recs.append(dict(base, round=1, kind="ticket", density=0.5, test_accuracy=dense + 0.01 + 0.001 * t,
                     final_test_accuracy=dense + 0.008, early_stop_step=500, finding_steps=2000, wall_seconds=20.0,
                     layer_density={"fc/kernel": 0.4 + 0.1 * t, "out/kernel": 0.0}))
    recs.append(dict(base, round=1, kind="reinit", density=0.5, test_accuracy=dense - 0.005 + 0.0005 * t,
                     early_stop_step=1990 if t == 0 else 1500, wall_seconds=20.0))
  (root / "run").mkdir(parents=True)
  (root / "run" / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
  return root


@pytest.fixture
def c(tmp_path):
  return claims.Claims(claims.Records(_records(tmp_path / "results")))


def test_values_are_means_over_trials_and_paired_differences(c):
  assert c.mean("run", "dense") == "97.20"
  assert c.mean("run", "ticket", 50.0) == "98.30"
  assert c.mean("run", "ticket", 50, "stop") == "500"
  assert c.mean("run", "ticket", 50, "final") == "98.00"  # after the whole budget, not at the early stop
  with pytest.raises(claims.ClaimError, match="reinit records of round 1 have no final_test_accuracy"):
    c.mean("run", "reinit", 50, "final")
  assert c.minmax("run", "dense") == "97.00\u201397.40" and c.minmax("run", "ticket", 50, "stop") == "500"
  assert c.delta("run", "ticket", "dense", 50) == "+1.10"
  assert c.diff("run", "ticket", "dense", 50) == "+1.10 [+0.85, +1.35]"  # 1.0, 1.1, 1.2 points
  assert c.where("run", "ticket", "reinit", ">") == "50.0%" and c.where("run", "reinit", "dense", ">") == "none"
  assert c.all_beat("run", "ticket", "reinit") == "50.0%"
  assert c.earlier("run", "ticket", 50) == "50%" and c.later("run", "reinit", 50) == "66%"
  assert c.tail("run", "reinit") == "33%" and c.tail("run", "ticket") == "0%"
  assert c.fails_rule("run", "reinit") == "50.0%" and c.fails_rule("run", "ticket") == "none"
  assert c.stops_after("run", "reinit", 1500) == "1 of 3" and c.latest_stop("run", "reinit") == "1,990"
  assert c.wall("run") == "30 s" and c.trials("run") == "3" and c.density("run", 1) == "50.0%"
  assert c.finding("run", 50) == "2,000"
  assert c.layer_kept("run", "ticket", "fc/kernel", 50) == "40.0\u201360.0%"
  assert c.layer_kept("run", "ticket", "out/kernel", 50) == "0.0%"


def test_a_claim_whose_direction_reverses_raises(c):
  with pytest.raises(claims.ClaimError, match="later than dense, not earlier"):
    c.earlier("run", "reinit", 50)
  with pytest.raises(claims.ClaimError, match="does not stop earlier"):
    c.earlier_range("run", "reinit", 60, 40)


def test_tables_cover_each_density_and_mark_real_differences(c):
  table = c.diff_table([("tickets", "run", "ticket", "dense")], [50, 10])
  assert table.splitlines()[2] == "| tickets | +1.10 [+0.85, +1.35] * | \u2014 |"
  by = c.by_density([("reinit", "run", "reinit")], [50.4])
  assert by.splitlines()[2].startswith("| reinit | 96.75 \u00b1 ") and by.endswith("at 50.0% |")
  side = c.side_by_side("run").splitlines()
  assert side[2].startswith("| 100.0 (0, dense) | 97.20 | 1,000 |")
  assert "98.30 (+1.10 \u00b1 0.25*) | 500 (\u221250%)" in side[3]


def test_versus_table_pairs_two_record_sets_by_trial_at_their_nearest_rounds(tmp_path):
  root = _records(tmp_path / "results")
  recs = [json.loads(line) for line in (root / "run" / "results.jsonl").read_text().splitlines()]
  for r in recs:  # another method: its round 1 lands at 50.3%, its tickets 0.4/0.5/0.6 points lower
    if r["round"] == 1:
      r["density"] = 0.503
      r["test_accuracy"] -= 0.004 + 0.001 * r["trial"] if r["kind"] == "ticket" else 0.0
    else:  # and its dense networks 0.2 points higher (another machine's rounding, say)
      r["test_accuracy"] += 0.002
  (root / "other").mkdir()
  (root / "other" / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
  c = claims.Claims(claims.Records(root))
  table = c.versus_table([("run - other", "run", "ticket", "other", "ticket")], [50.1, 10])
  assert table.splitlines()[2] == "| run - other | +0.50 [+0.25, +0.75] * | \u2014 |"
  assert c.versus("run", "ticket", 50, "other", "ticket", 50.3) == "+0.50 [+0.25, +0.75]"
  # each against its own dense network: run gains 0.2 more over its (lower) dense than raw says
  assert c.versus("run", "ticket", 50, "other", "ticket", 50.3, own_dense=True) == "+0.70 [+0.45, +0.95]"
  own = c.versus_table([("x", "run", "ticket", "other", "ticket")], [50.1], own_dense=True)
  assert own.splitlines()[2] == "| x | +0.70 [+0.45, +0.95] * |"
  assert c.versus("run", "dense", None, "other", "dense", None) == "\u22120.20 [\u22120.20, \u22120.20]"
  assert c.where_versus("run", "ticket", "other", "ticket", ">") == "50.0%"  # same rounds, densities within 1%
  assert c.where_versus("run", "ticket", "other", "ticket", "<") == "none"
  assert c.where_versus("run", "reinit", "other", "reinit", ">") == "none"  # equal: the interval is 0
  # the ticket's lead over reinit shrinks by each trial's 0.4/0.5/0.6 in `other`
  assert c.gap_versus("run", 50, "other", 50.3) == "+0.50 [+0.25, +0.75]"
  assert c.gap_versus("run", 50, "other", 50.3, "ticket", "dense") == "+0.70 [+0.45, +0.95]"
  assert c.gap_versus("run", 50, "run", 50) == "0.00 [0.00, 0.00]"
  assert c.where_gap("run", "other", ">") == "50.0%" and c.where_gap("run", "other", "<") == "none"
  assert c.where_gap("other", "run", "<") == "50.3%" and c.where_gap("run", "run", ">") == "none"
  # a second reinit draw in `other`, 0.3 points above the first: averaged it halves that, alone it is all of it
  recs2 = recs + [dict(r, draw=1, test_accuracy=r["test_accuracy"] + 0.003) for r in recs if r["kind"] == "reinit"]
  (root / "other" / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs2))
  c = claims.Claims(claims.Records(root))
  assert c.gap_versus("run", 50, "other", 50.3) == "+0.65 [+0.40, +0.90]"
  assert c.gap_versus("run", 50, "other", 50.3, draw_b=0) == "+0.50 [+0.25, +0.75]"
  assert c.gap_versus("run", 50, "other", 50.3, draw_b=1) == "+0.80 [+0.55, +1.05]"
  assert c.gap_versus("run", 50, "other", 50.3, "ticket", "dense", draw_b=1) == "+0.70 [+0.45, +0.95]"
  assert c.where_gap("run", "other", ">", draw_b=1) == "50.0%"
  with pytest.raises(claims.ClaimError, match="no records of draw 2"):
    c.where_gap("run", "other", ">", draw_b=2)
  assert c.same_records("run", "other", "reinit") == "3 of 3" and c.same_records("run", "other", "ticket") == "0 of 6"
  assert c.same_records("run", "run", "ticket", "final") == "3 of 3"  # round 0 has no final accuracy: not counted
  for r in recs:
    r["density"] = 0.4 if r["round"] == 1 else r["density"]
  (root / "other" / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
  with pytest.raises(claims.ClaimError, match="differ in density at round 1: not one design"):
    claims.Claims(claims.Records(root)).where_versus("run", "ticket", "other", "ticket", ">")


def test_instability_claims_average_a_trials_twins_and_pair_the_ticket_with_its_controls(tmp_path):
  recs = []
  for t in range(3):  # two twins per network: the trial's barrier is their mean
    for twin, barrier in ((0, 0.01 * t), (1, 0.01 * t + 0.002)):
      base = {"trial": t, "draw": twin, "diverged": False, "path_error": [0.02, 0.03, 0.02],
              "early_stop_step": 100, "steps_trained": 200, "test_accuracy": 0.97}
      recs.append(dict(base, round=0, kind="twin", density=1.0, instability=barrier))
      recs.append(dict(base, round=1, kind="twin", density=0.5, instability=barrier / 2))
      recs.append(dict(base, round=1, kind="twin_reinit", density=0.5, instability=barrier + 0.004))
    ticket = {"trial": t, "draw": 0, "diverged": False, "kind": "ticket", "early_stop_step": 100,
              "steps_trained": 200, "test_accuracy": 0.97}
    recs += [dict(ticket, round=0, density=1.0), dict(ticket, round=1, density=0.5)]
  root = tmp_path / "results" / "lmc"
  root.mkdir(parents=True)
  (root / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
  c = claims.Claims(claims.Records(tmp_path / "results"))
  assert c.instability("lmc").startswith("+1.10 [")  # 0.1, 1.1, 2.1 points
  assert c.instability("lmc", "reinit", 50).startswith("+1.50 [")
  assert c.instability_gap("lmc", "reinit", 50) == "−0.95 [−2.19, +0.29]"  # -0.45, -0.95, -1.45
  assert c.instability_highest("lmc") == c.instability("lmc", "reinit", 50).split(", ")[1].rstrip("]").lstrip("+")
  with pytest.raises(claims.ClaimError, match="no random_mask paths"):
    c.instability("lmc", "random_mask", 50)
  with pytest.raises(claims.ClaimError, match="no ticket and random_mask paths"):
    c.instability_gap("lmc", "random_mask", 50)


@pytest.mark.parametrize("expr, message", [
    ('mean("nope", "ticket")', "no record set 'nope'"),
    ('mean("run", "ticket", 33.3)', r"no round at 33.3% remaining \(rounds at: 100.0, 50.0\)"),
    ('mean("run", "ticket", 50, "loss")', "field must be one of"),
    ('__class__("run")', "unknown claim '__class__'"),
    ('records.get("run")', "a claim is a call like"),
    ('mean("run", open("x"))', "arguments must be literals"),
    ('mean("run"', "cannot parse claim"),
    ('mean("run", "ticket", 50, "acc", 1)', "takes from"),
    ('where("run", "ticket", "dense", "=")', "sign must be"),
    ('where_versus("run", "ticket", "run", "dense", "<=")', "sign must be"),
    ('same_records("run", "run", "twin")', "run: no twin records with test_accuracy"),
    ('layer_kept("run", "reinit", "fc/kernel", 50)', "no reinit records with layer 'fc/kernel'"),
    ('diff_table((("x", "run", "ticket"),), (50,))', "not enough values to unpack"),
    ('versus_table((("x", "run", "ticket", "run"),), (50,))', "not enough values to unpack"),
])
def test_bad_claims_fail_with_one_line(c, expr, message):
  with pytest.raises(claims.ClaimError, match=message) as e:
    claims._call(c, expr)
  assert "\n" not in str(e.value)


def test_render_replaces_values_and_tables_and_nothing_else(tmp_path):
  root = _records(tmp_path / "results")
  text = ("Dense <!--c:mean('run', 'dense')-->99.99<!--/c-->%, keep `98.76` as code.\n"
          "<!--table:diff_table((('t', 'run', 'ticket', 'dense'),), (50,))-->\nstale\n<!--/table-->\n")
  out = claims.render(text, root)
  assert out.startswith("Dense <!--c:mean('run', 'dense')-->97.20<!--/c-->%, keep `98.76` as code.\n")
  assert "stale" not in out and "| t | +1.10 [+0.85, +1.35] * |" in out
  assert claims.render(out, root) == out
  assert claims.unmarked_numbers(out) == []
  assert claims.unmarked_numbers("tickets reach 98.31 here") == ["tickets reach 98.31 here"]


def test_report_binary_leaves_the_document_alone_when_a_claim_fails(binaries, tmp_path):
  root = _records(tmp_path / "results")
  doc = tmp_path / "RESULTS.md"
  good = "<!--c:mean('run', 'dense')-->0<!--/c-->\n"
  doc.write_text(good + "<!--c:earlier('run', 'reinit', 50)-->0<!--/c-->\n")
  ran = binaries("experiments.report", [f"--results={root}"])
  assert ran.rc == 1 and ran.stderr.strip().count("\n") == 0, ran.stderr
  assert "later than dense, not earlier" in ran.stderr
  assert doc.read_text().startswith(good)  # untouched
  doc.write_text(good)
  ran = binaries("experiments.report", [f"--results={root}", f"--document={doc}"])
  assert ran.rc == 0, ran.stderr
  assert doc.read_text() == "<!--c:mean('run', 'dense')-->97.20<!--/c-->\n"
  shutil.rmtree(root)



def test_a_bound_that_rounds_to_zero_shows_its_side_of_zero():
  from ltjax.reports import selection, stats
  text = lambda lo, hi: selection.interval_text(stats.Interval((lo + hi) / 2, lo, hi, 5), 100.0, 2)  # noqa: E731
  assert text(0.00003, 0.0078) == "+0.39 [+0.003, +0.78]"      # real: the bound is above 0
  assert text(-0.000001, 0.0046) == "+0.23 [\u22120.0001, +0.46]"  # not real: below 0
  assert text(-0.0024, 0.0078) == "+0.27 [\u22120.24, +0.78]" and text(0.0, 0.0) == "0.00 [0.00, 0.00]"
