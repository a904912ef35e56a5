"""What every binary shares (experiments/cli.py): a tuple of bare words on the command line is a
tuple of strings, as the README writes them, not one string."""

from experiments import cli


def test_bare_words_in_brackets_become_a_tuple_literal():
  argv = ["prog", "--config.controls=(reinit,random_mask)", "--config.controls", "(twin,)",
          "--config.prune.densities=(0.5,0.2)", "--config.controls=('reinit',)", "--config.controls=()",
          "--workdir=(x,y)", "--config.name=plain"]
  assert cli.bare_tuples(argv) == [
      "prog", "--config.controls=('reinit', 'random_mask')", "--config.controls", "('twin',)",
      "--config.prune.densities=(0.5,0.2)", "--config.controls=('reinit',)", "--config.controls=()",
      "--workdir=(x,y)", "--config.name=plain"]


def test_a_rewritten_value_reads_back_as_the_words():
  import ast
  (arg,) = cli.bare_tuples(["--config.controls=[reinit, twin_reinit ,]"])
  assert ast.literal_eval(arg.partition("=")[2]) == ("reinit", "twin_reinit")
