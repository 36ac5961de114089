"""minixai against PyTorch with each engine in its own process (fresh interpreter per measurement).

    python benchmarks/engine_separate.py                 # vgg16 and resnet50, batch 1 and 8
    python benchmarks/engine_separate.py --rounds 5 --archs resnet50 --batches 1
    python benchmarks/engine_separate.py --archs inception_v3 --rounds 3     # at 299x299, its input size

Why a second engine benchmark: in one process, Numba's OpenMP runtime and torch's share the two cores
and slow each other down (torch's ResNet-50 forward went from 0.06 s alone to 2.4 s beside minixai's
threads), which flatters minixai. Here each (engine, model, batch) runs in a fresh subprocess that only
imports its own engine, 2 threads each; the subprocesses alternate, and the table gives the median of
the per-process medians. Timed: forward, and forward + gradient of logit 0 w.r.t. the input. Input size:
224x224, 299x299 for Inception v3 (both engines, random weights; torchvision's Inception3 in eval mode skips
its auxiliary head, as minixai's does). A line before a row says so when minixai's threads did not spin
between kernels in its processes (a busy machine, or OMP_WAIT_POLICY / GOMP_SPINCOUNT set: see
minixai.backend.THREAD_WAIT); PyTorch's OpenMP reads the same variables.
"""
import argparse
import json
import statistics
import subprocess
import sys

MINIXAI = """
import json, sys, time, numpy as np
import minixai as mx
from minixai import models
arch, n, reps, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
model = getattr(models, arch)(seed=0)
x = np.random.default_rng(0).standard_normal((n, 3, size, size)).astype(np.float32)
mx.saliency(model, x, 0)
fwd, grad = [], []
for _ in range(reps):
    t = time.perf_counter(); model(x); fwd.append(time.perf_counter() - t)
    t = time.perf_counter(); mx.saliency(model, x, 0); grad.append(time.perf_counter() - t)
from minixai import backend
print(json.dumps({"forward": sorted(fwd)[len(fwd) // 2], "input grad": sorted(grad)[len(grad) // 2],
                  "threads wait": backend.THREAD_WAIT}))
"""

TORCH = """
import json, sys, time, torch, torchvision
torch.set_num_threads(2)
arch, n, reps, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
options = {"init_weights": True} if arch == "inception_v3" else {}        # (without: a FutureWarning)
model = getattr(torchvision.models, arch)(**options).eval()
for p in model.parameters():
    p.requires_grad_(False)
x = torch.randn(n, 3, size, size)
def gradient():
    xx = x.clone().requires_grad_(True)
    return torch.autograd.grad(model(xx)[:, 0].sum(), xx)[0]
with torch.inference_mode():
    model(x)
gradient()
fwd, grad = [], []
for _ in range(reps):
    with torch.inference_mode():
        t = time.perf_counter(); model(x); fwd.append(time.perf_counter() - t)
    t = time.perf_counter(); gradient(); grad.append(time.perf_counter() - t)
print(json.dumps({"forward": sorted(fwd)[len(fwd) // 2], "input grad": sorted(grad)[len(grad) // 2]}))
"""


SIZE = {"inception_v3": 299}            # input size per architecture, 224 otherwise


def run(code, arch, batch, reps):
    size = str(SIZE.get(arch, 224))
    result = subprocess.run([sys.executable, "-c", code, arch, str(batch), str(reps), size], capture_output=True,
                            text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["vgg16", "resnet50"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--rounds", type=int, default=3, help="processes per engine (alternating)")
    parser.add_argument("--reps", type=int, default=3, help="timed passes per process")
    args = parser.parse_args()
    blas = subprocess.run([sys.executable, "-c", "from minixai.kernels import cpu_blas; "
                           "print(cpu_blas.BLAS, '--', cpu_blas.BLAS_REASON); "
                           "print('on' if cpu_blas.TILED else 'off', '--', cpu_blas.TILED_REASON)"],
                          capture_output=True, text=True, check=True).stdout.strip().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"CPU: {cpu}; minixai's tiled GEMM: {blas[1]} (MINIXAI_GEMM=tiled|blas forces it); its BLAS: {blas[0]} "
          f"(MINIXAI_BLAS=openblas|openblas-avx512|mkl forces one)")
    print("| model | batch | pass | minixai | torch | minixai/torch |")
    print("|---|---|---|---|---|---|")
    for arch in args.archs:
        for batch in args.batches:
            ours, theirs = [], []
            for _ in range(args.rounds):
                ours.append(run(MINIXAI, arch, batch, args.reps))
                theirs.append(run(TORCH, arch, batch, args.reps))
            waits = sorted({r["threads wait"].split(" (")[0] for r in ours})
            if any(not wait.startswith("spin") for wait in waits):    # a process found the machine busy
                print(f"(minixai's threads in these {arch} batch-{batch} processes: {'; '.join(waits)})")
            for key in ("forward", "input grad"):
                a = statistics.median(r[key] for r in ours)
                b = statistics.median(r[key] for r in theirs)
                print(f"| {arch} | {batch} | {key} | {a * 1000:.0f} ms | {b * 1000:.0f} ms | {a / b:.2f} |",
                      flush=True)


if __name__ == "__main__":
    main()
