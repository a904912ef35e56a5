#!/usr/bin/env bash
# Issue 21's method comparison: LeNet-300-100 at the IMP ladder's densities nearest 10%, 5% and 2%
# (rounds 10, 13 and 18 of fc 20% / output 10% pruning: 10.83%, 5.57%, 1.85% of the weights),
# [0, 1] inputs (the paper's), 5 seeds, 20K iterations per round, no controls. Each method writes
# its workdir under $W/<dataset>_<method>; records go to results/ through experiments.report.
#
#   bash experiments/comparison_runs.sh mnist                 # every method on MNIST
#   bash experiments/comparison_runs.sh fashion_mnist set rigl
#   TINY=1 bash experiments/comparison_runs.sh mnist          # a toy size that runs in minutes
#
# Methods: imp (IMP ticket, reset to theta_0), oneshot (magnitude, of the trained dense net), gmp
# (Zhu & Gupta), set, rigl, static (ERK random, never updated), snip (at init, global), ste
# (straight-through: dense weights through a magnitude mask on GMP's schedule), units (GMP by
# hidden units: the density is the fraction of units kept, so its weight density differs; see
# RESULTS.md), units_imp (IMP by hidden units, 20% of each hidden layer's units per round, the
# classes kept), rigl5x and set5x (RigL and SET at ~1.9% with 5x the iterations, Evci et al.'s
# longer schedule, so their training FLOPs approach GMP's and IMP's; their round 0 is the dense
# network trained 5x as long), imp_1k and imp_500 (the IMP ticket at 1/20 and 1/40 of the iterations
# per round, 20 validations a round: at ~1.9% their training FLOPs are about GMP's and RigL 5x's,
# so IMP is compared with them at equal cost), imp_1k_masks (imp_1k's masks, found by the short rounds,
# trained for the full iterations from the same θ0: run imp_1k first), mnist_masks (on Fashion-MNIST:
# MNIST's imp_1k masks trained the same way, beside the layerwise-shuffled mask; a transferred
# ticket, Morcos et al. 2019). Round 0 of every other run is the same dense network.
set -u
DATASET=${1:?dataset: mnist or fashion_mnist}; shift
METHODS=${*:-imp oneshot gmp set rigl static snip ste units units_imp}
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python}
W=${WORKROOT:-workdirs/comparison}
if [ "${TINY:-0}" = 1 ]; then
  S=300; T=2; EVAL=100; ROUNDS=2; DENS="(0.5,0.2)"; UNITS="(0.7,0.45)"; EVERY=50; LOW="(0.2,)"
  IMP_DENS="(0.8004,0.6406)"  # the IMP rounds' own densities
else
  S=20000; T=5; EVAL=100; ROUNDS=18; DENS="(0.1083,0.0557,0.0185)"; UNITS="(0.12,0.062,0.0207)"; EVERY=100
  LOW="(0.0185,)"; IMP_DENS=$DENS
fi
COMMON="--config=lenet_mnist --config.dataset=$DATASET --config.normalization=none --config.controls=()
  --config.trials=$T"
SPARSE="--config.prune.densities=$DENS --config.prune.update_every=$EVERY"

for m in $METHODS; do
  case $m in
    imp|imp_1k|imp_500) flags="--config.prune.rounds=$ROUNDS" ;;
    imp_1k_masks) flags="--config.prune.mode=given --config.prune.masks_from=$W/${DATASET}_imp_1k
      --config.prune.densities=$IMP_DENS" ;;
    mnist_masks) flags="--config.prune.mode=given --config.prune.masks_from=$W/mnist_imp_1k
      --config.prune.densities=$IMP_DENS --config.controls=(random_mask,)" ;;
    oneshot) flags="--config.prune.mode=oneshot --config.prune.densities=$DENS" ;;
    gmp|set|rigl|static) flags="--config.prune.mode=$m $SPARSE" ;;
    rigl5x|set5x) flags="--config.prune.mode=${m%5x} --config.prune.densities=$LOW --config.prune.update_every=$EVERY" ;;
    ste) flags="--config.prune.mode=ste --config.prune.densities=$DENS" ;;  # its own ΔT: every step
    snip) flags="--config.prune.mode=at_init --config.prune.score=snip --config.prune.densities=$DENS" ;;
    units_imp) flags="--config.prune.rounds=$ROUNDS --config.prune.sparsity_type=units" ;;
    units) flags="--config.prune.mode=gmp --config.prune.sparsity_type=units --config.prune.densities=$UNITS
      --config.prune.update_every=$EVERY" ;;
    *) echo "unknown method $m (imp oneshot gmp set rigl static snip ste units units_imp rigl5x set5x imp_1k imp_500
       imp_1k_masks mnist_masks)"
       exit 2 ;;
  esac
  case $m in *5x) steps=$((5 * S)) ;; imp_1k) steps=$((S / 20)) ;; imp_500) steps=$((S / 40)) ;; *) steps=$S ;; esac
  case $m in imp_1k|imp_500) eval_every=$(( steps / 20 > 0 ? steps / 20 : 1 )) ;; *) eval_every=$EVAL ;; esac
  wd="$W/${DATASET}_$m"; mkdir -p "$W"
  t0=$(date +%s)
  # shellcheck disable=SC2086
  "$PY" -m experiments.lottery $COMMON --config.train.steps=$steps --config.train.eval_every=$eval_every $flags --workdir="$wd" > "$wd.log" 2>&1 || { tail -n 5 "$wd.log"; exit 1; }
  echo "$DATASET $m wall seconds: $(( $(date +%s) - t0 ))"
done
