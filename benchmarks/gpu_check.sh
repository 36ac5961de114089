#!/usr/bin/env bash
# The GPU checks in one go, on a machine with an NVIDIA GPU:
#   bash benchmarks/gpu_check.sh [OUT_DIR]
# installs minixai with its `gpu` and `test` extras (offline machines: without dependencies, using what is
# there), runs tests/test_devices.py (the device test class, rerun on CuPy: TestCuda) and benchmarks/gpu.py,
# and writes the GPU's name, the test report and the benchmark table to OUT_DIR (default gpu-check/).
# The CPU side of each comparison runs the vectorised NumPy kernels (MINIXAI_BACKEND=numpy): no Numba compile.
set -uo pipefail
out=${1:-gpu-check}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
python3 -m pip install -q --no-build-isolation -e '.[gpu,test]' 2>/dev/null \
    || python3 -m pip install -q --no-build-isolation --no-deps -e . \
    || exit 1
python3 -c "import cupy, numpy, torch; print('cupy', cupy.__version__, 'numpy', numpy.__version__, 'torch', torch.__version__)" \
    | tee -a "$out/gpu.txt"
MINIXAI_BACKEND=numpy python3 -m pytest -q -p no:cacheprovider -rs tests/test_devices.py 2>&1 | tee "$out/tests.txt"
python3 benchmarks/gpu.py 2>&1 | tee "$out/benchmark.txt"
