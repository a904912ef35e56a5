"""What every binary shares (experiments/cli.py): a tuple of bare words on the command line is a
tuple of strings, as the README writes them, not one string."""

from experiments import cli


def test_bare_words_in_brackets_become_a_tuple_literal():
  argv = ["prog", "--config.controls=(reinit,random_mask)", "--config.controls", "(twin,)",
          "--config.prune.densities=(0.5,0.2)", "--config.controls=('reinit',)", "--config.controls=()",
          "--workdir=(x,y)", "--config.name=plain", "--config.name=", "--config.name=(", "--config.name=)"]
  assert cli.bare_tuples(argv) == [
      "prog", "--config.controls=('reinit', 'random_mask')", "--config.controls", "('twin',)",
      "--config.prune.densities=(0.5,0.2)", "--config.controls=('reinit',)", "--config.controls=()",
      "--workdir=(x,y)", "--config.name=plain", "--config.name=", "--config.name=(", "--config.name=)"]


def test_an_empty_or_one_bracket_value_is_not_a_tuple():
  assert cli.field_value("") == "" and cli.field_value("(") == "(" and cli.field_value("()") == ()


def test_a_rewritten_value_reads_back_as_the_words():
  import ast
  (arg,) = cli.bare_tuples(["--config.controls=[reinit, twin_reinit ,]"])
  assert ast.literal_eval(arg.partition("=")[2]) == ("reinit", "twin_reinit")


def test_the_lottery_binary_reads_the_words_one_by_one(binaries, tmp_path):
  # Refused at the second word: the first was read as a control of its own, not '(reinit,nope)'.
  ran = binaries("experiments.lottery", [f"--workdir={tmp_path / 'w'}", "--config.controls=(reinit,nope)"])
  assert ran.rc == 1 and "controls: item 1 must be one of" in ran.stderr and "got 'nope'" in ran.stderr, ran.stderr
  assert not (tmp_path / "w").exists()


def test_the_suite_imports_at_most_one_binary_that_defines_flags():
  # absl flags are global: two binaries imported into one pytest worker (report and sweep both
  # define --workdir) raise DuplicateFlagError, in whichever test comes second there.
  import re

  from tests.conftest import REPO
  defines = {p.stem for p in (REPO / "experiments").glob("*.py") if "flags.DEFINE" in p.read_text()}
  imported = set()
  for test in (REPO / "tests").glob("*.py"):
    for line in test.read_text().splitlines():
      if m := re.match(r"\s*from experiments import ([\w, ]+)", line):
        imported |= {name.split(" as ")[0].strip() for name in m.group(1).split(",")} & defines
      if m := re.match(r"\s*import experiments\.(\w+)", line):
        imported |= {m.group(1)} & defines
  assert defines and len(imported) <= 1, f"binaries imported in-process: {sorted(imported)}; run them as binaries"
