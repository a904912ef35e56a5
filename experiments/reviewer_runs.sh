#!/usr/bin/env bash
# Issue 20's reviewer runs, by name, each to $OUT/<name>.tgz (records, curves, masks, config and
# report; no checkpoints), so a GPU session can spend its minutes on a few of them per call:
#
#   bash experiments/reviewer_runs.sh imp_1pct imp_1pct_01      # on a lent GPU (benchmarks/accelerator.sh's
#                                                               # header: carrying wheels and MNIST)
#   TINY=1 bash experiments/reviewer_runs.sh all                # every run at a toy size, on a CPU
#
# imp_1pct      LeNet IMP to 1.2% (20 prunings), standardized inputs, 5 trials, 3 reinit draws, 50K
# imp_1pct_01   the same with [0, 1] inputs (the paper's)
# fashion       imp_1pct on Fashion-MNIST
# criteria      every criterion at global scope (the methods' own), 3 reinit draws, the schedule
#               that passes the early-stop rule (50K), with random and magnitude pruning at init
# liu           Liu et al.'s setting: SGD with momentum at lr 0.1 and 0.01, Scratch-E and Scratch-B
#               (the four points, two rates x two budgets, train side by side as one program)
# stability     linear mode connectivity, 30 points on the path, 3 initializations (trials) x 3 data
#               orders (2 twins per ticket), with rewinding to k in {0, 500, 2000}, and
#               the same for the random-reinit and random-mask controls (twin_reinit, twin_random_mask)
#
# Afterwards, on the dev machine: unpack into workdirs/, `python -m experiments.report
# --workdir=... --out=results/<name>`, commit the records and figures, and quote them in
# RESULTS.md as claims (`python -m experiments.report --results=results`).
set -u
OUT=${OUT:-reviewer_out}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export LTJAX_DATA_DIR=${LTJAX_DATA_DIR:-$PWD/.gpudata} PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
W=${WORKROOT:-/tmp/reviewer}
if [ "${TINY:-0}" = 1 ]; then  # a toy size that exercises every command on a CPU in minutes
  S=400; T=2; D=1; EVAL=100; ROUNDS=2; K1=100; K2=200; LIMIT=600
else
  S=50000; T=5; D=3; EVAL=100; ROUNDS=20; K1=500; K2=2000; LIMIT=${LIMIT:-1800}
fi
SIZE="--config.train.steps=$S --config.trials=$T --config.reinit_draws=$D --config.train.eval_every=$EVAL"

lottery() {  # name, then lottery flags
  local name=$1; shift
  local t0; t0=$(date +%s)
  timeout "$LIMIT" "$PY" -m experiments.lottery --config=lenet_mnist $SIZE --config.prune.rounds=$ROUNDS \
    --workdir="$W/$name" "$@" 2>&1 | tail -n 40 > "$OUT/$name.log"
  echo "$name wall seconds: $(( $(date +%s) - t0 ))" | tee -a "$OUT/$name.log"
  "$PY" -m experiments.report --workdir="$W/$name" --out="$W/$name/report" >> "$OUT/$name.log" 2>&1
  tar czf "$OUT/$name.tgz" -C "$W" --exclude=checkpoints "$name"
}

run() {
  case $1 in
    imp_1pct) lottery imp_1pct ;;
    imp_1pct_01) lottery imp_1pct_01 --config.normalization=none ;;
    fashion) lottery fashion --config.dataset=fashion_mnist ;;
    criteria)
      local t0; t0=$(date +%s)
      timeout "$LIMIT" "$PY" -m experiments.criteria --workdir="$W/criteria" --steps=$S --trials=$T \
        --reinit_draws=$D --scope=global 2>&1 | tail -n 40 > "$OUT/criteria.log"
      echo "criteria wall seconds: $(( $(date +%s) - t0 ))" | tee -a "$OUT/criteria.log"
      tar czf "$OUT/criteria.tgz" -C "$W" --exclude=checkpoints criteria ;;
    liu)
      local t0; t0=$(date +%s)
      timeout "$LIMIT" "$PY" -m experiments.sweep --config=lenet_mnist --workdir="$W/liu" \
        --set.train.steps=$S --set.trials=$T --set.reinit_draws=$D --set.prune.rounds=$ROUNDS \
        --set.train.optimizer=sgd --set.train.momentum=0.9 --set.controls='(reinit,scratch)' \
        --sweep.train.lr=0.1,0.01 --sweep.scratch.steps_scale=1,2 2>&1 | tail -n 40 > "$OUT/liu.log"
      echo "liu wall seconds: $(( $(date +%s) - t0 ))" | tee -a "$OUT/liu.log"
      tar czf "$OUT/liu.tgz" -C "$W" --exclude=checkpoints liu ;;
    stability)
      local t0; t0=$(date +%s)
      timeout "$LIMIT" "$PY" -m experiments.sweep --config=lenet_mnist --workdir="$W/stability" \
        --set.train.steps=$S --set.trials=3 --set.prune.rounds=$ROUNDS --set.stability.twins=2 \
        --set.controls='(reinit,random_mask,twin,twin_reinit,twin_random_mask)' --set.stability.points=30 --sweep.prune.rewind_step=0,$K1,$K2 2>&1 \
        | tail -n 40 > "$OUT/stability.log"
      echo "stability wall seconds: $(( $(date +%s) - t0 ))" | tee -a "$OUT/stability.log"
      tar czf "$OUT/stability.tgz" -C "$W" --exclude=checkpoints stability ;;
    *) echo "unknown run $1 (imp_1pct imp_1pct_01 fashion criteria liu stability all)"; exit 2 ;;
  esac
}

for name in "$@"; do
  if [ "$name" = all ]; then
    for n in imp_1pct imp_1pct_01 fashion criteria liu stability; do run $n; done
  else
    run "$name"
  fi
done
ls -la "$OUT"
