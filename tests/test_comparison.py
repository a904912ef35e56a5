"""Methods side by side: the training FLOPs each method spent, counted by hand, and the table and
paired differences that RESULTS.md quotes."""

import json

import pytest

from ltjax.reports import claims, comparison
from ltjax.reports.selection import ClaimError, Records


def _write(root, name, mode, densities, accs, prune=None, steps=1000):
  """A run of `mode`: rounds 0.. at `densities`, trial t's accuracy accs[round][t]."""
  d = root / name
  d.mkdir(parents=True)
  recs = [{"round": r, "kind": "ticket", "trial": t, "draw": 0, "density": dens, "steps_trained": steps,
           "test_accuracy": accs[r][t], "early_stop_step": 100, "diverged": False}
          for r, dens in enumerate(densities) for t in range(len(accs[r]))]
  (d / "results.jsonl").write_text("".join(json.dumps(x) + "\n" for x in recs))
  cfg = {"prune": {"mode": mode, "densities": list(densities[1:]), "update_begin": 0, "update_end": 600,
                   "update_every": 200, **(prune or {})}, "train": {"steps": steps}}
  (d / "config.json").write_text(json.dumps({"config": cfg}))


@pytest.fixture
def root(tmp_path):
  _write(tmp_path, "imp", "iterative", [1.0, 0.5, 0.25], [[0.97, 0.98], [0.975, 0.985], [0.98, 0.99]])
  _write(tmp_path, "oneshot", "oneshot", [1.0, 0.25], [[0.97, 0.98], [0.96, 0.97]])
  _write(tmp_path, "rigl", "rigl", [1.0, 0.25], [[0.97, 0.98], [0.95, 0.965]])
  _write(tmp_path, "gmp", "gmp", [1.0, 0.25], [[0.97, 0.98], [0.97, 0.975]])
  _write(tmp_path, "rigl5x", "rigl", [1.0, 0.25], [[0.97, 0.98], [0.97, 0.98]], steps=5000,
         prune={"update_end": 3000})
  return tmp_path


def _flops(root, name, rnd, unit_steps=None):
  recs = Records(root)
  return comparison.training_flops(recs.json(f"{name}/config.json")["config"], recs.get(name), rnd,
                                   unit_steps)


def test_training_flops_are_counted_as_the_methods_spend_them(root):
  assert _flops(root, "imp", 2) == pytest.approx(1.0 + 0.5 + 0.25)   # every round up to the ticket's
  assert _flops(root, "oneshot", 1) == pytest.approx(1.25)            # the dense net, then the sparse one
  assert _flops(root, "rigl", 1) == pytest.approx(0.25 + 3 / 1000)    # + a dense gradient at 200, 400, 600
  # GMP: sparsity 0.75 (1 - ((600 - t) / 600)^3) at updates 0, 200, 400, 600; dense before the first.
  dens = [1.0, 1 - 0.75 * (1 - (400 / 600) ** 3), 1 - 0.75 * (1 - (200 / 600) ** 3), 0.25]
  by_hand = (dens[0] * 200 + dens[1] * 200 + dens[2] * 200 + dens[3] * 400) / 1000
  assert _flops(root, "gmp", 1) == pytest.approx(by_hand)
  # RigL 5x: 5,000 steps at 0.25 and dense gradients at 200..3,000, counted in runs of 1,000 steps.
  assert _flops(root, "rigl5x", 1, unit_steps=1000) == pytest.approx(5 * 0.25 + 15 / 1000)
  assert _flops(root, "rigl5x", 1) == pytest.approx(0.25 + 15 / 5000)  # its own unit by default


def test_the_methods_table_and_paired_differences_render_from_the_records(root):
  text = claims.render('<!--table:methods([("IMP", "imp"), ("RigL", "rigl")], (25, 50))-->\n<!--/table-->\n'
                       '<!--c:between("imp", "rigl", 25)-->x<!--/c-->', root)
  assert "| IMP | 98.50 \u00b1 6.35 (1.75) | 98.00 \u00b1 6.35 (1.50) |" in text
  assert "| RigL | 95.75 \u00b1 9.53 (0.25) | \u2014 |" in text
  assert "+2.75 [" in text  # (0.98 - 0.95 + 0.99 - 0.965) / 2 in points
  text = claims.render('<!--table:methods([("RigL", "rigl"), ("RigL 5x", "rigl5x")], (25,), unit_steps=1000)-->\n'
                       '<!--/table-->', root)
  assert "| RigL 5x | 97.50 ± 6.35 (1.26) |" in text
  for bad in (0, -5, 2.5):
    with pytest.raises(ClaimError, match="unit_steps"):
      claims.render(f'<!--table:methods([("RigL", "rigl")], (25,), unit_steps={bad})-->\n<!--/table-->', root)
  with pytest.raises(ClaimError, match="no round near 50"):
    claims.render('<!--c:between("imp", "rigl", 50)-->x<!--/c-->', root)
