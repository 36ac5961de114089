"""minixai's attribution methods (numba backend) against their peers on VGG-16 and ResNet-50: same weights,
same input, same thread count, CPU, 224x224, batch 1.

    python benchmarks/methods.py --rounds 3                          # the full table + IG peak memory (long)
    python benchmarks/methods.py --models resnet50 --methods saliency gradcam --rounds 1 --no-memory
    python benchmarks/methods.py --memory-only --models resnet50     # only the IG memory table
    python benchmarks/methods.py --separate --rounds 3 --no-memory   # each engine timed in its own processes

Peers, and how the torch model is prepared: see method_pairs.py.

Both engines run in one process, alternating method by method (minixai, then its peer) for several rounds
after a warm-up call of each (with --separate, the warm-up calls there give the agreement column, and the
timing runs in fresh processes, one engine each, alternating, --rounds of each, as engine_separate.py does:
each process times every row's calls of its engine, the median of up to 3 after a warm-up); the table gives
medians and the ratio minixai / peer (below 1: minixai is faster), and the relative L2 difference of the two
results from the warm-up call (float32, so the ReLU-kink flips of tests/test_parity_torch.py show up at the
1e-3 level; SmoothGrad's noise differs, so none there).
The machine may be shared and noisy: trust the ratios of one run more than absolute times across runs.

IG peak memory (50 steps by default): a fresh subprocess per measurement; peak resident memory (VmHWM)
during one IG call minus the resident memory just before it, the model loaded and warmed up (on a copy) and
freed memory returned to the system. minixai batch_size=None runs all steps at once; batch_size=10 bounds the
images per pass, as Captum's internal_batch_size does.
"""
import argparse
import copy
import gc
import json
import os
import statistics
import subprocess
import sys
import time

from _memory import release_freed_memory, status_kb  # benchmarks/ is on sys.path when run as a script
from method_pairs import METHOD_NAMES, MODELS, SLOW, THREADS, build, rows, torch_setup

RANDOM = ("smoothgrad", "lime", "kernel_shap", "gradient_shap")   # noise differs: no agreement column


def relative_l2(ours, theirs):
    import numpy as np
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64).reshape(np.shape(ours))
    return float(np.linalg.norm(ours - theirs) / np.linalg.norm(theirs))


def time_table(args):
    torch_setup()
    results = []
    for arch in args.models:
        net, model, x, black, target = build(arch)
        table = rows(arch, net, model, x, black, target, args)
        agreement = {}
        for method, peer, ours, theirs in table:                 # warm-up, and the agreement column
            if method in SLOW:
                continue                                          # minutes per call: round 1 compares them
            agreement[method, peer] = None if method in RANDOM else relative_l2(ours(), theirs())
            print(f"  {arch} {method} ({peer}): warm, relative L2 difference {agreement[method, peer]}",
                  file=sys.stderr, flush=True)
        times = {(method, peer, engine): [] for method, peer, _, _ in table for engine in ("mx", "peer")}
        if args.separate:                                         # the timing in fresh processes, one engine each
            for r in range(args.rounds):
                for engine in ("mx", "peer") if r % 2 == 0 else ("peer", "mx"):
                    for (method, peer), seconds in engine_process(engine, arch, args).items():
                        times[method, peer, engine].append(seconds)
                print(f"  {arch} round {r + 1}: " + ", ".join(
                    f"{method} ({peer}) {times[method, peer, 'mx'][-1]:.2f} / {times[method, peer, 'peer'][-1]:.2f} s"
                    for method, peer, _, _ in table), file=sys.stderr, flush=True)
        for r in range(0 if args.separate else args.rounds):
            for method, peer, ours, theirs in table:
                outputs = {}
                for engine, call in (("mx", ours), ("peer", theirs)):
                    gc.collect()
                    start = time.perf_counter()
                    outputs[engine] = call()
                    times[method, peer, engine].append(time.perf_counter() - start)
                if (method, peer) not in agreement:
                    agreement[method, peer] = relative_l2(outputs["mx"], outputs["peer"])
                print(f"  {arch} round {r + 1} {method} ({peer}): minixai {times[method, peer, 'mx'][-1]:.2f} s, "
                      f"peer {times[method, peer, 'peer'][-1]:.2f} s", file=sys.stderr, flush=True)
        for method, peer, _, _ in table:
            mx_s = statistics.median(times[method, peer, "mx"])
            peer_s = statistics.median(times[method, peer, "peer"])
            results.append((method, arch, peer, mx_s, peer_s, agreement[method, peer]))
        del net, model, table
        gc.collect()
    return results


def engine_process(engine, arch, args):
    """{(method, peer): seconds} of each row's `engine` ("mx" or "peer"): the median of up to 3 calls after a
    warm-up call (fewer once they add up to 2 s; Score-CAM and Ablation-CAM one call, no warm-up), in a
    fresh process that runs no kernel of the other engine (it builds both models: the weights and the target
    come from torch). The rows of `args.methods` on `arch`, with the same options."""
    command = [sys.executable, os.path.abspath(__file__), "--time-engine", engine, "--models", arch,
               "--methods", *args.methods, "--steps", str(args.steps), "--samples", str(args.samples),
               "--evaluations", str(args.evaluations), "--grid", str(args.grid),
               "--gradient-samples", str(args.gradient_samples), "--perturbation-batch", str(args.perturbation_batch),
               "--cam-batch", str(args.cam_batch)]
    if args.batch_size is not None:
        command += ["--batch-size", str(args.batch_size)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"the {engine} process for {arch} failed:\n{result.stderr[-3000:]}")
    return {tuple(key.split("|")): seconds for key, seconds in json.loads(result.stdout.splitlines()[-1]).items()}


def time_engine(engine, args):
    """The child of `engine_process`: {"method|peer": seconds}."""
    torch_setup()
    arch = args.models[0]
    table = rows(arch, *build(arch), args)

    def timed(call):
        gc.collect()
        start = time.perf_counter()
        call()
        return time.perf_counter() - start

    times = {}
    time.sleep(1.0)                             # torch's threads, busy while building, go idle
    for method, peer, ours, theirs in table:
        call, slow = (ours if engine == "mx" else theirs), method in SLOW   # slow: minutes a call, one, no warm-up
        if not slow:
            call()                              # warm-up
        runs = [timed(call)]
        while not slow and len(runs) < 3 and sum(runs) < 2.0:
            runs.append(timed(call))
        times[f"{method}|{peer}"] = statistics.median(runs)
    return times


# ---- IG peak memory (one subprocess per measurement) ----------------------------------------------------
def memory_probe(engine, arch, batch_size, steps):
    """Run in a subprocess: MB of resident memory one IG call adds at its peak."""
    import torch
    from captum import attr

    import minixai as mx
    torch.set_num_threads(THREADS)
    net, model, x, black, target = build(arch)

    def ig(m, n):
        if engine == "mx":
            return mx.integrated_gradients(m, x, target, baseline=black, steps=n, batch_size=batch_size,
                                           progress=False)
        return attr.IntegratedGradients(m).attribute(
            torch.from_numpy(x).requires_grad_(), baselines=torch.from_numpy(black), target=target, n_steps=n,
            method="gausslegendre", internal_batch_size=batch_size)

    subject = model if engine == "mx" else net
    del net, model
    warm = copy.deepcopy(subject)
    ig(warm, 2)                          # kernels compiled/loaded, on a copy that then goes with its caches
    del warm
    release_freed_memory()
    with open("/proc/self/clear_refs", "w") as f:                                    # reset VmHWM to VmRSS
        f.write("5")
    before = status_kb("VmRSS")
    ig(subject, steps)
    return (status_kb("VmHWM") - before) / 1024


def memory_table(models, steps):
    results = []
    for arch in models:
        for engine in ("mx", "captum"):
            for batch_size in ("None", "10"):
                out = subprocess.run([sys.executable, __file__, "--memory-probe", engine, arch, batch_size,
                                      str(steps)], check=True, capture_output=True, text=True).stdout
                mb = json.loads(out.splitlines()[-1])
                print(f"  IG memory {arch} {engine} batch {batch_size}: {mb:.0f} MB", file=sys.stderr, flush=True)
                results.append((arch, engine, batch_size, mb))
    return results


# ---- main -----------------------------------------------------------------------------------------------
def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--methods", nargs="+", default=list(METHOD_NAMES), choices=METHOD_NAMES,
                        help="names from mx.METHODS (gradcam: both the Captum and the pytorch-grad-cam row)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50, help="IG steps (default: minixai's 50)")
    parser.add_argument("--samples", type=int, default=50, help="SmoothGrad n (default: minixai's 50)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="images per pass for IG/SmoothGrad in the time table, both engines (default: all)")
    parser.add_argument("--evaluations", type=int, default=50,
                        help="LIME/KernelSHAP coalitions per image, both engines (KernelSHAP: including the "
                             "empty and the full one)")
    parser.add_argument("--grid", type=int, default=7,
                        help="occlusion: grid^2 windows of 224/grid px (no overlap); LIME/KernelSHAP: "
                             "grid x grid segments")
    parser.add_argument("--gradient-samples", type=int, default=16,
                        help="GradientSHAP samples; DeepLiftShap gets half as many baselines")
    parser.add_argument("--perturbation-batch", type=int, default=16,
                        help="occluded/perturbed images per forward pass, both engines")
    parser.add_argument("--cam-batch", type=int, default=32,
                        help="masked/ablated images per pass for minixai's scorecam and ablationcam")
    parser.add_argument("--memory-steps", type=int, default=50)
    parser.add_argument("--no-memory", action="store_true", help="skip the IG peak-memory subprocesses")
    parser.add_argument("--memory-only", action="store_true", help="only the IG peak-memory table")
    parser.add_argument("--separate", action="store_true",
                        help="time each engine in fresh processes of its own (alternating, --rounds of each), as "
                             "engine_separate.py does, instead of both in this one")
    parser.add_argument("--time-engine", choices=("mx", "peer"), help=argparse.SUPPRESS)
    parser.add_argument("--memory-probe", nargs=4, metavar=("ENGINE", "ARCH", "BATCH", "STEPS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.time_engine:
        print(json.dumps(time_engine(args.time_engine, args)))
        return
    if args.memory_probe:
        engine, arch, batch_size, steps = args.memory_probe
        batch_size = None if batch_size == "None" else int(batch_size)
        print(json.dumps(memory_probe(engine, arch, batch_size, int(steps))))
        return
    from importlib.metadata import version

    from minixai.kernels import cpu_blas
    print(f"threads: {THREADS} (numba and torch), minixai's tiled GEMM {'on' if cpu_blas.TILED else 'off'}, "
          f"BLAS {cpu_blas.BLAS}, "
          f"torch {version('torch')}, captum {version('captum')}, "
          f"zennit {version('zennit')}, grad-cam {version('grad-cam')}, 224x224, batch 1, "
          f"{args.rounds} rounds, medians{' of one process per engine and round' if args.separate else ''}; "
          f"IG {args.steps} steps, SmoothGrad n={args.samples}, "
          f"batch_size {args.batch_size}")
    if not args.memory_only:
        results = time_table(args)
        print("| method | model | peer | minixai s | peer s | minixai/peer | rel. L2 diff |")
        print("|---|---|---|---|---|---|---|")
        for method, arch, peer, mx_s, peer_s, diff in results:
            shown = "-" if diff is None else f"{diff:.1e}"
            print(f"| {method} | {arch} | {peer} | {mx_s:.2f} | {peer_s:.2f} | {mx_s / peer_s:.2f} | {shown} |")
    if not args.no_memory:
        memory = memory_table(args.models, args.memory_steps)
        print(f"\nIG ({args.memory_steps} steps, gausslegendre) peak memory above the loaded model, MB:")
        print("| model | engine | batch | peak MB |")
        print("|---|---|---|---|")
        for arch, engine, batch_size, mb in memory:
            name = "minixai batch_size" if engine == "mx" else "Captum internal_batch_size"
            print(f"| {arch} | {name} | {batch_size} | {mb:.0f} |")


if __name__ == "__main__":
    main()
