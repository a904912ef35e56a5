"""CI must run exactly the README's test command, so a missing install step fails CI first."""

import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[1]


def _code_lines(text):
  return [l.strip() for block in re.findall(r"```\n(.*?)```", text, re.S) for l in block.splitlines()]


def test_ci_runs_the_readme_test_command():
  readme = _code_lines((REPO / "README.md").read_text())
  test_cmd = next(l for l in readme if "pytest" in l)
  ci = (REPO / ".ci" / "run").read_text().splitlines()
  assert test_cmd in [l.strip() for l in ci], f"README test command not in .ci/run: {test_cmd}"


def test_quick_start_is_the_main_job_then_the_tests():
  """The plain main job first (no data path: it prepares its data), then the same on prepared
  data (LTJAX_DATA_DIR), then the tests."""
  text = (REPO / "README.md").read_text()
  quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
  commands = _code_lines(quick)
  assert len(commands) == 3
  assert commands[0].endswith("python -m experiments.lottery") and "LTJAX_DATA_DIR" not in commands[0]
  assert "LTJAX_DATA_DIR=" in commands[1] and "experiments.lottery" in commands[1]
  assert "pytest" in commands[2]
  assert all(c.startswith("python3 -m venv .venv") for c in commands)
