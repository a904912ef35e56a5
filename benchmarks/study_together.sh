#!/usr/bin/env bash
# A study's wall time point by point (--notogether) and side by side as one program (--together),
# alternated, each process from an empty compilation cache, whole processes; one JSON line per run.
#
#   bash benchmarks/study_together.sh [reps=2] [steps=500] [rounds=3] [studies="initialization scratch"]
#   EXTRA="--sweep.scratch.steps_scale=1,2" bash benchmarks/study_together.sh 2 500 3 scratch  # + Scratch-E
#
# Needs LTJAX_DATA_DIR (prepared MNIST). Then compares the records of the two ways (they are equal
# where the points share the learning rate and normalization; otherwise the largest gaps print).
set -u
REPS=${1:-2}; STEPS=${2:-500}; ROUNDS=${3:-3}; STUDIES=${4:-initialization scratch}
PY=${PYTHON:-python3}
TMP=$(mktemp -d)
for rep in $(seq "$REPS"); do
  for mode in notogether together; do
    for study in $STUDIES; do
      rm -rf "$TMP/${study}_$mode" "$TMP/cache"
      s=$(date +%s.%N)
      LTJAX_CACHE_DIR="$TMP/cache" "$PY" -m experiments.sweep --study="$study" --workdir="$TMP/${study}_$mode" \
        --set.train.steps="$STEPS" --set.prune.rounds="$ROUNDS" --"$mode" --noreport ${EXTRA:-} > "$TMP/${study}_$mode.log" 2>&1
      rc=$?
      e=$(date +%s.%N)
      echo "{\"bench\": \"study_together\", \"study\": \"$study\", \"mode\": \"$mode\", \"rep\": $rep, \"rc\": $rc, \"steps\": $STEPS, \"rounds\": $ROUNDS, \"seconds\": $(echo "$e - $s" | bc)}"
    done
  done
done
for study in $STUDIES; do
  "$PY" - "$TMP/${study}_together" "$TMP/${study}_notogether" "$study" <<'PYEOF'
import json, pathlib, sys
a, b, study = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
def recs(d):
  out = {}
  for p in sorted(d.glob("*/results.jsonl")):
    out[p.parent.name] = [{k: v for k, v in json.loads(l).items() if k != "wall_seconds"} for l in p.read_text().splitlines()]
  return out
ra, rb = recs(a), recs(b)
key = lambda r: (r["round"], r["kind"], r["trial"], r["draw"])
gap = {f: max((abs(x[f] - y[f]) for n in ra for x, y in zip(sorted(ra[n], key=key), sorted(rb.get(n, []), key=key))),
              default=None) for f in ("test_accuracy", "val_loss")}
print(json.dumps({"bench": "study_together", "study": study, "records_equal": ra == rb,
                  "same_tickets": {n: [key(x) for x in sorted(ra[n], key=key)] for n in ra} ==
                                  {n: [key(x) for x in sorted(rb[n], key=key)] for n in rb},
                  "max_abs_diff": gap}))
PYEOF
done
rm -rf "$TMP"
