#!/usr/bin/env bash
# The accelerator checks in one call: the paper's full LeNet schedule through the lottery binary,
# then the throughput, one-ticket, round and inference benchmarks. For a machine with JAX but no registry:
# wheels for what it lacks in .whl/, prepared MNIST in .gpudata/, both listed in .git/info/exclude.
# Filled on a machine with a registry, for a Python 3.12 x86-64 target:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 -d .whl \
#     tensorflow-datasets array_record dm-tree immutabledict simple-parsing tensorflow-metadata \
#     termcolor toml ml_collections importlib_resources docstring_parser googleapis-common-protos
#   (cd .whl && pip wheel --no-deps promise)          # promise has no wheel on PyPI
#   mkdir -p .gpudata && cp -r $LTJAX_DATA_DIR/mnist .gpudata/
# Results go to $OUT (default ./accelerator_out).
#
#   bash benchmarks/accelerator.sh [seconds for the full schedule, default 330]
set -u
OUT=${OUT:-accelerator_out}
mkdir -p "$OUT"
FULL_S=${1:-330}
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export LTJAX_DATA_DIR=${LTJAX_DATA_DIR:-$PWD/.gpudata} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import jax, flax, optax, orbax.checkpoint, tensorflow_datasets, ml_collections
print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())" || exit 1

echo "== throughput"
timeout 100 python3 -m benchmarks.throughput --tickets=1,16,64 --layouts=single:0 2>&1 \
  | tee "$OUT/throughput.jsonl"

echo "== full lenet_mnist schedule (17 rounds x 50K steps, 5 trials, 3 reinit draws)"
t0=$(date +%s)
timeout "$FULL_S" python3 -m experiments.lottery --config=lenet_mnist --workdir=/tmp/lenet_mnist_gpu \
  2>&1 | tee "$OUT/lenet_mnist_gpu.log"
echo "full schedule wall seconds: $(( $(date +%s) - t0 ))" | tee -a "$OUT/lenet_mnist_gpu.log"
tar czf "$OUT/lenet_mnist_gpu.tgz" -C /tmp --exclude=checkpoints lenet_mnist_gpu

echo "== one ticket, whole process, against the hand-written loop"
timeout 100 python3 -m benchmarks.one_ticket --steps=5000 --repeats=1 2>&1 | tee "$OUT/one_ticket.jsonl"

echo "== round"
timeout 90 python3 -m benchmarks.round --preset=lenet_quick --trials=5 --steps=5000 --layouts=auto 2>&1 \
  | tee "$OUT/round.jsonl"

echo "== inference: do tickets run faster on the accelerator? (issue 21; CPU figures in README)"
timeout 60 python3 -m benchmarks.inference --rounds=0,7,16,20 2>&1 | tee "$OUT/inference_lenet.jsonl"
timeout 60 python3 -m benchmarks.inference --sparsity_type=units --rounds=0,7,10,18 2>&1 \
  | tee "$OUT/inference_lenet_units.jsonl"
timeout 90 python3 -m benchmarks.inference --model=conv6 --sparsity_type=units --rounds=0,5,8,12 \
  --batches=1,1000 --repeats=10 2>&1 | tee "$OUT/inference_conv6_units.jsonl"
