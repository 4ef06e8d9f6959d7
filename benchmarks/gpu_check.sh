#!/usr/bin/env bash
# The GPU checks, in one run on a machine with CUDA: the CUDA tests, then every benchmark's
# GPU numbers, most important first, each under its own time limit.
#
# Usage (from the repository root): bash benchmarks/gpu_check.sh [OUTDIR]
# STEPS=tests,bench_iic bash benchmarks/gpu_check.sh runs only the steps named.
# Python packages this machine lacks (POT, mlxtend) may be given as wheels in .whl/; they
# are installed into a temporary folder, not into the environment.
set -u
out=${1:-${OUT:-_build/gpu_check}}
mkdir -p "$out"
log="$out/gpu_check.log"
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" >/dev/null; then
    $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi

step() {  # step SECONDS NAME COMMAND...: run, log, and go on whatever happens
    local limit=$1 name=$2
    shift 2
    [[ -z ${STEPS:-} || ",$STEPS," == *",$name,"* ]] || return 0
    echo "=== $name ($(date -u +%H:%M:%S), limit ${limit}s)" | tee -a "$log"
    local start=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee -a "$log"
    echo "=== $name: exit ${PIPESTATUS[0]} after $((SECONDS - start)) s" | tee -a "$log"
}

step 30 environment bash -c "nvidia-smi -L; nproc; $py -c 'import torch, ot, infoclust; print(torch.__version__, torch.version.cuda, ot.__version__, infoclust.__file__)'"
step 150 tests $py -m pytest -q -p no:cacheprovider --noconftest tests/test_gpu.py tests/test_iic.py
step 60 bench_wasserstein $py benchmarks/bench_wasserstein.py
step 200 bench_iic $py benchmarks/bench_iic.py --device cuda --max-time 90
step 60 bench_perturb $py benchmarks/bench_perturb.py --devices cuda
step 60 bench_kmeans $py benchmarks/bench_kmeans.py --repeats 1
step 60 bench_dim $py benchmarks/bench_dim.py
cp _build/benchmarks/*.json "$out"/ 2>/dev/null
echo "=== done ($(date -u +%H:%M:%S))" | tee -a "$log"
