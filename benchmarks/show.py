"""Render benchmark JSON lines (stdin) as a compact table for BUILD_NOTES.md."""

import json
import sys

KEYS = ("model", "tickets", "mesh", "layout", "ticket_batch", "model_steps_per_s", "fraction_of_ceiling",
        "pipeline_overhead", "peak_rss_mb")


def main():
  for line in sys.stdin:
    if not line.startswith("{"):
      continue
    r = json.loads(line)
    if r["bench"] != "throughput" and r["bench"] != "matmul_ceiling":
      print(line.strip())
      continue
    if r["bench"] == "matmul_ceiling":
      print(f"ceiling: {r['ceiling_flops'] / 1e9:.0f} GFLOP/s ({r['device']}, n={r['matmul_n']})")
      continue
    cells = []
    for k in KEYS:
      v = r.get(k)
      cells.append(f"{v:.3f}" if isinstance(v, float) and abs(v) < 10 else
                   f"{v:.0f}" if isinstance(v, float) else str(v))
    print(" | ".join(f"{k}={c}" for k, c in zip(KEYS, cells)))


if __name__ == "__main__":
  main()
