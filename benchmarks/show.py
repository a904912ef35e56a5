"""Render benchmark JSON lines (stdin) as a compact table for BUILD_NOTES.md."""

import json
import sys

KEYS = ("model", "tickets", "mesh", "layout", "ticket_batch", "model_steps_per_s", "fraction_of_ceiling",
        "pipeline_overhead", "peak_rss_mb")


def main(argv) -> int:
  if len(argv) > 1:
    print(f"error: unexpected arguments: {' '.join(argv[1:])} (the JSON lines come on stdin)", file=sys.stderr)
    return 1
  for n, line in enumerate(sys.stdin, 1):
    if not line.startswith("{"):
      continue
    try:
      r = json.loads(line)
    except json.JSONDecodeError as e:
      print(f"error: stdin line {n} starts like JSON but is not ({e.msg})", file=sys.stderr)
      return 1
    if r.get("bench") not in ("throughput", "matmul_ceiling"):
      print(line.strip())
      continue
    if r["bench"] == "matmul_ceiling" and "ceiling_flops" in r:
      print(f"ceiling: {r['ceiling_flops'] / 1e9:.0f} GFLOP/s ({r.get('device')}, n={r.get('matmul_n')})")
      continue
    cells = []
    for k in KEYS:
      v = r.get(k)
      cells.append(f"{v:.3f}" if isinstance(v, float) and abs(v) < 10 else
                   f"{v:.0f}" if isinstance(v, float) else str(v))
    print(" | ".join(f"{k}={c}" for k, c in zip(KEYS, cells)))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
