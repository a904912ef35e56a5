#!/usr/bin/env bash
# Issue 20's reviewer runs, by name, each to $OUT/<name>.tgz (records, curves, masks, config and
# report; no checkpoints), so a GPU session can spend its minutes on one of them per call:
#
#   bash experiments/reviewer_runs.sh imp_1pct                  # on a lent GPU (benchmarks/accelerator.sh's
#                                                               # header: carrying wheels and MNIST)
#   TINY=1 bash experiments/reviewer_runs.sh all                # every run at a toy size, on a CPU
#   CPU=1 bash experiments/reviewer_runs.sh fashion criteria    # the CPU schedule (below), resumable
#
# imp_1pct      LeNet IMP to 1.2% (20 prunings), standardized inputs, 5 trials, 3 reinit draws, 50K
# imp_1pct_01   the same with [0, 1] inputs (the paper's)
# fashion       imp_1pct on Fashion-MNIST
# criteria      every criterion at init at global scope (the methods' own; IMP, one-shot and
#               early-bird keep IMP's layerwise rates), 3 reinit draws, the schedule that passes the
#               early-stop rule (50K; 20K with CPU=1), with random and magnitude pruning at init
# liu           Liu et al.'s setting: SGD with momentum 0.9 and weight decay 1e-4 at lr 0.1 and 0.01,
#               divided by 10 at 50% and 75% of the budget (Scratch-B's own, stretched), with
#               random reinit and Scratch-B (the two rates side by side as one program)
# liu_e         the same tickets again beside Scratch-E (same seed: the same lineages as liu's)
# stability     linear mode connectivity, 30 points on the path, 3 initializations (trials) x 3 data
#               orders (2 twins per ticket), with rewinding to k in {0, 500, 2000}, and
#               the same for the random-reinit and random-mask controls (twin_reinit, twin_random_mask;
#               one reinit draw, the one with twins)
# studies       the quick-scale studies of RESULTS.md (3 trials, 2,000 iterations: too few and too
#               short for the early-stop rule) again at this size: 5 trials and the schedule below,
#               each study's own points, rounds and controls (ltjax/runs/studies.py), one workdir
#               per study under studies/ (STUDIES="resetting ..." picks some); the scratch study is
#               liu's, and stability's is the stability run
#
# CPU=1 is the schedule a 2-core CPU can carry and that passes the early-stop rule for tickets and
# reinit (lenet_01_20k_cpu: tickets stop by 10,200 of 20,000, reinit passes the rule down to 3.5%):
# 20,000 iterations (fashion at the paper's [0, 1] inputs, beside lenet_01_20k_cpu; the others at
# ltjax's standardized ones, lenet_mnist's default), no timeout, workdirs under workdirs/reviewer_cpu
# (rerunning a name resumes it where it was killed), and the IMP runs without the random-mask
# control (its sparse masks stop as late as 34,000 in the 50K records). Hours per name on 2 cores.
#
# A run that cannot finish in one sitting is carried over as records (each workdir's lineage.npz is
# what its next round starts from; no checkpoints):
#
#   CPU=1 bash experiments/reviewer_runs.sh --keep stability   # $W/stability -> results/unfinished/
#   CPU=1 bash experiments/reviewer_runs.sh stability          # elsewhere, later: continues from there
#
# (a name whose workdir is missing starts from results/unfinished/<name> where that exists).
#
# A finished run goes into results/ as its records, configs and figures (no lineage files), in the
# layout of the committed studies, before RESULTS.md quotes it:
#
#   CPU=1 bash experiments/reviewer_runs.sh --publish liu liu_20k_cpu               # lr=0.1.results.jsonl, ...
#   CPU=1 bash experiments/reviewer_runs.sh --publish liu_e liu_20k_cpu scratch_e_  # scratch_e_lr=0.1...
#   CPU=1 bash experiments/reviewer_runs.sh --publish studies/resetting study_resetting_20k_cpu
#
# (`studies` skips a study already published as results/study_NAME_20k_cpu, or _50k_gpu on a GPU,
# and `--keep studies` leaves it out).
#
# Afterwards, on the dev machine: unpack into workdirs/, `python -m experiments.report
# --workdir=... --out=results/<name>`, commit the records and figures, and quote them in
# RESULTS.md as claims (`python -m experiments.report --results=results`).
set -u
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export LTJAX_DATA_DIR=${LTJAX_DATA_DIR:-$PWD/.gpudata} PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
W=${WORKROOT:-/tmp/reviewer}
IMP_FLAGS=(); FASHION_FLAGS=(); STUDY_FLAGS=()
if [ "${TINY:-0}" = 1 ]; then  # a toy size that exercises every command on a CPU in minutes
  S=400; T=2; D=1; EVAL=100; ROUNDS=2; K1=100; K2=200; LIMIT=600
  STUDY_FLAGS=(--set.prune.rounds=2)  # the studies' own 8-13 rounds (not pruning_rate's: its points set them)
elif [ "${CPU:-0}" = 1 ]; then
  S=20000; T=5; D=3; EVAL=100; ROUNDS=20; K1=500; K2=2000; LIMIT=0  # timeout 0: none
  PUBLISHED=_20k_cpu  # where --publish puts a finished study (study_NAME_20k_cpu)
  W=${WORKROOT:-workdirs/reviewer_cpu}
  IMP_FLAGS=("--config.controls=('reinit',)")
  # criteria without IMP: its tickets and reinit draws would be lenet_std_20k_cpu's record for
  # record on the machine kind that made it (AVX2; same seed and settings, and the other controls
  # in a program change no key); on an AVX-512 machine the same theta_0 and data order with other
  # rounding, so the two sides pair by seed, not bit for bit (BUILD_NOTES). 1.5 h of 7 saved
  CRITERIA=oneshot,snip,grasp,synflow,early_bird,random_init,magnitude_init
  FASHION_FLAGS=(--config.normalization=none)  # beside lenet_01_20k_cpu and comparison_fashion
  LIU_ROUNDS=12; LIU_D=1; STAB_ROUNDS=8  # to 7.0% and to 16.9%: hours, not days, on 2 cores
else
  # A lent GPU runs a command for at most 10 minutes: each run stops at LIMIT and still writes its
  # report and tarball (the records of its finished rounds; a later call resumes from a carried
  # workdir, or the CPU schedule finishes it)
  S=50000; T=5; D=3; EVAL=100; ROUNDS=20; K1=500; K2=2000; LIMIT=${LIMIT:-480}; PUBLISHED=_50k_gpu
fi
OUT=${OUT:-$W/out}  # the tarballs and each run's whole log
mkdir -p "$OUT"
LIU_ROUNDS=${LIU_ROUNDS:-$ROUNDS}; LIU_D=${LIU_D:-$D}; STAB_ROUNDS=${STAB_ROUNDS:-$ROUNDS}
SIZE="--config.train.steps=$S --config.trials=$T --config.reinit_draws=$D --config.train.eval_every=$EVAL"

UNFINISHED=${UNFINISHED:-results/unfinished}
records_in() { find "$1" -name results.jsonl -exec cat {} + 2>/dev/null | wc -l; }
carried_in() {  # a run's workdir from what an earlier machine kept, unless this machine's is as far
  [ -d "$UNFINISHED/$1" ] || return 0
  if [ -e "$W/$1" ]; then
    [ "$(records_in "$UNFINISHED/$1")" -gt "$(records_in "$W/$1")" ] || return 0
    mv "$W/$1" "$W/$1.behind.$(date +%s)"
  fi
  cp -r "$UNFINISHED/$1" "$W/$1" && echo "$1: continuing from $UNFINISHED/$1" | tee -a "$OUT/$1.log"
}
published() {  # study $1 is in results/ at this schedule: done, neither run nor carried again
  [ -n "${PUBLISHED:-}" ] && [ -f "results/study_$1$PUBLISHED/sweep.json" ]
}
keep() {  # records, curves, masks and lineage files of a run (live or not), to commit: the lineage
          # files first, so that the records beside them are never older than they are
  [ -d "$W/$1" ] || { echo "--keep: no workdir $W/$1"; exit 2; }
  local part="$UNFINISHED/$1.part"
  rm -rf "$part" && mkdir -p "$part" &&
    (cd "$W/$1" && find . -name 'lineage*.npz' -print0 | tar cf - --null -T -) | tar xf - -C "$part" &&
    tar cf - -C "$W/$1" --exclude=checkpoints --exclude=tensorboard --exclude=.lock --exclude=report \
      --exclude='lineage*.npz' --exclude='.*.tmp' . | tar xf - -C "$part" || exit 2
  if [ "$1" = studies ]; then
    for d in "$part"/*/; do
      ! published "$(basename "$d")" || rm -rf "$d"
    done
  fi
  rm -rf "${UNFINISHED:?}/$1" && mv "$part" "$UNFINISHED/$1" && du -sh "$UNFINISHED/$1"
}
publish() {  # a finished run's records into results/$2 in the committed layout (POINT.results.jsonl
             # and POINT.config.json per sweep point, the sweep's sweep.json; $3 before each name),
             # then its figures; refuses an unfinished run and never overwrites
  [ -d "$W/$1" ] || { echo "--publish: no workdir $W/$1"; exit 2; }
  "$PY" - "$W/$1" "results/$2" "${3:-}" <<'EOF' || exit 2
import json, pathlib, shutil, sys
from ltjax.reports.analysis import planned_rounds
src, dst, prefix = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
sweep = src / "sweep.json"
points = ([(p["name"], src / p["name"]) for p in json.loads(sweep.read_text())["points"]]
          if sweep.is_file() else [(src.name, src)])
names = [f"{prefix}{n}.{f}" for n, _ in points for f in ("results.jsonl", "config.json")]
names += [f"{prefix}sweep.json"] if sweep.is_file() else []
for name, d in points:
  if not (d / "config.json").is_file() or not (d / "results.jsonl").is_file():
    sys.exit(f"--publish: {d} is not a lottery workdir (no config.json and results.jsonl) nor a sweep's root")
  want = planned_rounds(json.loads((d / "config.json").read_text())["config"])
  got = {json.loads(x)["round"] for x in (d / "results.jsonl").read_text().splitlines() if x.strip()}
  if len(got) < want:
    sys.exit(f"--publish: {d} has {len(got)} of its {want} rounds: not finished")
if clash := [n for n in names if (dst / n).exists()]:
  sys.exit(f"--publish: {dst / clash[0]} exists")
dst.mkdir(parents=True, exist_ok=True)
for name, d in points:
  for f in ("results.jsonl", "config.json"):
    shutil.copyfile(d / f, dst / f"{prefix}{name}.{f}")
if sweep.is_file():
  shutil.copyfile(sweep, dst / f"{prefix}sweep.json")
print(f"published {len(points)} record set(s) of {src} to {dst}")
EOF
  "$PY" -m experiments.report --records="results/$2"
}
if [ "${1:-}" = --publish ]; then  # --publish NAME DIR [PREFIX]
  [ $# -ge 3 ] || { echo "usage: reviewer_runs.sh --publish NAME DIR [PREFIX]"; exit 2; }
  publish "$2" "$3" "${4:-}"; exit $?
fi
if [ "${1:-}" = --keep ]; then
  shift
  for name in "$@"; do
    keep "$name"
  done
  exit 0
fi

left() {  # seconds of LIMIT left since $1 (0: no limit), for a name's second command
  [ "$LIMIT" = 0 ] && { echo 0; return; }
  local l=$(( LIMIT - ($(date +%s) - $1) )); echo $(( l > 1 ? l : 1 ))
}

lottery() {  # name, then lottery flags
  local name=$1; shift
  local t0; t0=$(date +%s)
  timeout "$LIMIT" "$PY" -m experiments.lottery --config=lenet_mnist $SIZE --config.prune.rounds=$ROUNDS \
    --workdir="$W/$name" "$@" >> "$OUT/$name.log" 2>&1
  echo "$name wall seconds: $(( $(date +%s) - t0 ))" | tee -a "$OUT/$name.log"
  "$PY" -m experiments.report --workdir="$W/$name" --out="$W/$name/report" >> "$OUT/$name.log" 2>&1
  tar czf "$OUT/$name.tgz" -C "$W" --exclude=checkpoints "$name"
}

run() {
  case $1 in
    imp_1pct) lottery imp_1pct "${IMP_FLAGS[@]}" ;;
    imp_1pct_01) lottery imp_1pct_01 --config.normalization=none "${IMP_FLAGS[@]}" ;;
    fashion) lottery fashion --config.dataset=fashion_mnist "${IMP_FLAGS[@]}" "${FASHION_FLAGS[@]}" ;;
    criteria)
      local t0; t0=$(date +%s)
      mkdir -p "$W/criteria"  # what scoring costs, in training steps, for the cost figure (seconds)
      if [ ! -s "$W/criteria/scoring_cost.jsonl" ]; then
        timeout 300 "$PY" -m benchmarks.criteria --scope=global > "$W/criteria/scoring_cost.part" \
          2>> "$OUT/criteria.log" && mv "$W/criteria/scoring_cost.part" "$W/criteria/scoring_cost.jsonl" \
          || echo "criteria: scoring cost not measured (benchmarks.criteria failed; see the log)" | tee -a "$OUT/criteria.log"
      fi
      timeout "$(left "$t0")" "$PY" -m experiments.criteria --workdir="$W/criteria" --steps=$S --trials=$T \
        --reinit_draws=$D --scope=global ${CRITERIA:+--criteria=$CRITERIA} >> "$OUT/criteria.log" 2>&1
      echo "criteria wall seconds: $(( $(date +%s) - t0 ))" | tee -a "$OUT/criteria.log"
      tar czf "$OUT/criteria.tgz" -C "$W" --exclude=checkpoints criteria ;;
    liu|liu_e)  # Scratch-B beside the tickets and reinit (liu); then Scratch-E beside the same tickets
                # again (liu_e: the same seed, so the same lineages), rather than both budgets in one
                # program whose every round runs Scratch-B's length for all (a third more compute)
      local t0; t0=$(date +%s)
      local sgd=(--config=lenet_mnist --set.train.steps=$S --set.trials=$T --set.prune.rounds=$LIU_ROUNDS
                 --set.train.optimizer=sgd --set.train.momentum=0.9 --set.train.weight_decay=1e-4
                 --set.train.milestones="($((S / 2)),$((S * 3 / 4)))" --sweep.train.lr=0.1,0.01)
      if [ "$1" = liu ]; then
        timeout "$LIMIT" "$PY" -m experiments.sweep "${sgd[@]}" --workdir="$W/liu" --set.reinit_draws=$LIU_D \
          --set.controls='(reinit,scratch)' --set.scratch.steps_scale=2 >> "$OUT/liu.log" 2>&1
      else
        timeout "$LIMIT" "$PY" -m experiments.sweep "${sgd[@]}" --workdir="$W/liu_e" \
          --set.controls='(scratch,)' --set.scratch.steps_scale=1 >> "$OUT/liu_e.log" 2>&1
      fi
      echo "$1 wall seconds: $(( $(date +%s) - t0 ))" | tee -a "$OUT/$1.log"
      tar czf "$OUT/$1.tgz" -C "$W" --exclude=checkpoints "$1" ;;
    stability)
      local t0; t0=$(date +%s)
      timeout "$LIMIT" "$PY" -m experiments.sweep --config=lenet_mnist --workdir="$W/stability" \
        --set.train.steps=$S --set.trials=3 --set.reinit_draws=1 --set.prune.rounds=$STAB_ROUNDS --set.stability.twins=2 \
        --set.controls='(reinit,random_mask,twin,twin_reinit,twin_random_mask)' --set.stability.points=30 --sweep.prune.rewind_step=0,$K1,$K2 \
        >> "$OUT/stability.log" 2>&1
      echo "stability wall seconds: $(( $(date +%s) - t0 ))" | tee -a "$OUT/stability.log"
      tar czf "$OUT/stability.tgz" -C "$W" --exclude=checkpoints stability ;;
    studies)
      local t0; t0=$(date +%s)
      for st in ${STUDIES:-resetting initialization learning_rate network_size normalization pruning_rate}; do
        published "$st" && { echo "studies: $st is in results/study_${st}$PUBLISHED" | tee -a "$OUT/studies.log"; continue; }
        local own=("${STUDY_FLAGS[@]}"); [ "$st" != pruning_rate ] || own=()
        timeout "$(left "$t0")" "$PY" -m experiments.sweep --study="$st" --workdir="$W/studies/$st" \
          --set.train.steps=$S --set.trials=$T --set.train.eval_every=$EVAL "${own[@]}" \
          >> "$OUT/studies.log" 2>&1 || { echo "studies: $st stopped (rc $?)" | tee -a "$OUT/studies.log"; break; }
      done
      echo "studies wall seconds: $(( $(date +%s) - t0 ))" | tee -a "$OUT/studies.log"
      [ ! -d "$W/studies" ] || tar czf "$OUT/studies.tgz" -C "$W" --exclude=checkpoints studies ;;
    *) echo "unknown run $1 (imp_1pct imp_1pct_01 fashion criteria liu liu_e stability studies all)"; exit 2 ;;
  esac
}

for name in "$@"; do
  if [ "$name" = all ]; then
    for n in imp_1pct imp_1pct_01 fashion criteria liu liu_e stability studies; do
      carried_in $n; run $n
    done
  else
    carried_in "$name"; run "$name"
  fi
done
ls -la "$OUT"
