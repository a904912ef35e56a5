"""benchmarks.show: benchmark JSON lines (stdin) as a table; bad input is one line and status 1."""

import io
import sys

from benchmarks import show


def _show(monkeypatch, capsys, text, argv=("show",)):
  monkeypatch.setattr(sys, "stdin", io.StringIO(text))
  rc = show.main(list(argv))
  out = capsys.readouterr()
  return rc, out.out, out.err


def test_rows_for_throughput_and_the_ceiling_and_other_lines_as_they_are(monkeypatch, capsys):
  text = ('{"bench": "matmul_ceiling", "ceiling_flops": 2.5e11, "device": "cpu", "matmul_n": 2048}\n'
          'a log line\n{"bench": "throughput", "model": "lenet_300_100", "tickets": 8, "fraction_of_ceiling": 0.42}\n'
          '{"bench": "one_ticket", "ratio_cold": 0.9}\n')
  rc, out, err = _show(monkeypatch, capsys, text)
  assert rc == 0 and not err
  lines = out.splitlines()
  assert lines[0] == "ceiling: 250 GFLOP/s (cpu, n=2048)"
  assert lines[1].startswith("model=lenet_300_100 | tickets=8 |") and "fraction_of_ceiling=0.420" in lines[1]
  assert lines[2] == '{"bench": "one_ticket", "ratio_cold": 0.9}'


def test_a_torn_json_line_or_an_argument_is_one_error(monkeypatch, capsys):
  rc, out, err = _show(monkeypatch, capsys, '{"bench": "throughput"\n')
  assert rc == 1 and err.startswith("error: stdin line 1 starts like JSON") and len(err.splitlines()) == 1
  rc, out, err = _show(monkeypatch, capsys, "", argv=("show", "results.jsonl"))
  assert rc == 1 and err.startswith("error: unexpected arguments: results.jsonl") and not out
