"""minixai (numba backend) against PyTorch CPU on VGG-16 and ResNet-50, same weights, same thread count.

    python benchmarks/engine.py                      # time table + peak memory (a few minutes)
    python benchmarks/engine.py --rounds 7 --batches 1 8 --archs vgg16 resnet50
    python benchmarks/engine.py --start              # cold vs warm start (empty vs populated Numba cache)

Timed passes, at 224x224:
    forward     logits for a batch (torch under inference_mode);
    input grad  forward + gradient of one logit per image with respect to the input (torch: autograd.grad
                with respect to the input only; parameters do not require gradients).
Both engines run in the same process, alternating pass by pass, for several rounds; the table gives the
median time of each and the ratio minixai / torch (below 1: minixai is faster). The machine is shared and
noisy: trust the ratios of one run more than absolute times across runs.
Peak memory of the input-gradient pass is measured in a fresh subprocess per engine: peak resident memory
(VmHWM) during the pass minus the resident memory just before it (a fresh model loaded after a warm-up pass
of another copy, freed memory returned to the system).
"""
import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from _memory import release_freed_memory, status_kb  # benchmarks/ is on sys.path when run as a script

THREADS = int(os.environ.get("NUMBA_NUM_THREADS", os.cpu_count() or 1))   # numba's default, given to torch
TARGET = 7          # the explained logit


def build(arch, seed=0):
    """(torchvision model, minixai model) with the same random weights, both in inference mode."""
    import torch
    import torchvision

    from minixai import models

    torch.manual_seed(seed)
    net = getattr(torchvision.models, arch)(weights=None).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    return net, getattr(models, arch)(weights=state)


def images(batch, seed=0):
    import numpy as np
    return np.random.default_rng(seed).standard_normal((batch, 3, 224, 224)).astype(np.float32)


# ---- one pass of each engine ----------------------------------------------------------------------------
def mx_forward(model, x):
    return model(x)


def mx_input_grad(model, x):
    import numpy as np
    logits = model(x)
    g = np.zeros_like(logits)
    g[:, TARGET] = 1
    return model.backward(g)


def torch_forward(net, x):
    import torch
    with torch.inference_mode():
        return net(x)


def torch_input_grad(net, x):
    import torch
    x = x.clone().requires_grad_(True)
    return torch.autograd.grad(net(x)[:, TARGET].sum(), x)[0]


PASSES = {"forward": (mx_forward, torch_forward), "input grad": (mx_input_grad, torch_input_grad)}


# ---- timing ---------------------------------------------------------------------------------------------
def check_same_output(net, model, x):
    """Logits and input gradients agree (relative L2 error; a near-tie in a max-pool window may send one
    pixel's gradient elsewhere, so no elementwise bound on the gradient)."""
    import numpy as np
    import torch
    rel = lambda a, b: float(np.linalg.norm(a - b) / np.linalg.norm(b))          # noqa: E731
    err = rel(mx_forward(model, x), torch_forward(net, torch.from_numpy(x)).numpy())
    g_err = rel(mx_input_grad(model, x), torch_input_grad(net, torch.from_numpy(x)).numpy())
    if err > 1e-4 or g_err > 5e-2:
        raise RuntimeError(f"minixai and torch disagree: logits {err:.2e}, input gradient {g_err:.2e}")
    return err, g_err


def time_table(archs, batches, rounds):
    import torch
    torch.set_num_threads(THREADS)
    rows = []
    for arch in archs:
        net, model = build(arch)
        for batch in batches:
            x = images(batch)
            xt = torch.from_numpy(x)
            err, g_err = check_same_output(net, model, x)            # also the warm-up of both engines
            print(f"  {arch} batch {batch}: relative L2 difference logits {err:.1e}, input gradient {g_err:.1e}",
                  file=sys.stderr, flush=True)
            times = {(name, engine): [] for name in PASSES for engine in ("mx", "torch")}
            for _ in range(rounds):
                for name, (mx_pass, torch_pass) in PASSES.items():
                    for engine, run, args in (("mx", mx_pass, (model, x)), ("torch", torch_pass, (net, xt))):
                        gc.collect()
                        start = time.perf_counter()
                        run(*args)
                        times[name, engine].append(time.perf_counter() - start)
            for name in PASSES:
                mx, th = statistics.median(times[name, "mx"]), statistics.median(times[name, "torch"])
                rows.append((arch, batch, name, mx, th))
                print(f"  {arch} batch {batch} {name}: minixai {mx * 1e3:.0f} ms, torch {th * 1e3:.0f} ms",
                      file=sys.stderr, flush=True)
        del net, model
    return rows


# ---- peak memory (one subprocess per measurement) -------------------------------------------------------
def memory_probe(engine, arch, batch):
    """Run in a subprocess: MB of resident memory the input-gradient pass adds at its peak."""
    import torch
    torch.set_num_threads(THREADS)
    x = images(batch)

    def fresh_pass():
        net, model = build(arch)
        if engine == "mx":
            del net
            return lambda: mx_input_grad(model, x)
        del model
        xt = torch.from_numpy(x)
        return lambda: torch_input_grad(net, xt)

    fresh_pass()()                       # warm-up (kernels compiled/loaded) on a model that is then dropped
    run = fresh_pass()                   # a fresh model: it holds no activations of the warm-up
    release_freed_memory()
    with open("/proc/self/clear_refs", "w") as f:                                    # reset VmHWM to VmRSS
        f.write("5")
    before = status_kb("VmRSS")
    run()
    return (status_kb("VmHWM") - before) / 1024


def memory_table(archs, batches):
    rows = {}
    for arch in archs:
        for batch in batches:
            for engine in ("mx", "torch"):
                out = subprocess.run([sys.executable, __file__, "--memory-probe", engine, arch, str(batch)],
                                     check=True, capture_output=True, text=True).stdout
                rows[arch, batch, engine] = json.loads(out.splitlines()[-1])
    return rows


# ---- cold / warm start ----------------------------------------------------------------------------------
START_SCRIPT = """
import time
start = time.perf_counter()
import numpy as np
from minixai import models
model = models.resnet50(weights=None)
x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
built = time.perf_counter()
model(x)
first = time.perf_counter()
model(x)
second = time.perf_counter()
print(built - start, first - built, second - first)
"""


def start_table():
    """Seconds to import + build ResNet-50, first forward, second forward: Numba cache empty, then populated."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        results = []
        for label in ("cold (empty Numba cache)", "warm (populated cache)"):
            out = subprocess.run([sys.executable, "-c", START_SCRIPT], env=env, check=True,
                                 capture_output=True, text=True).stdout
            results.append((label, *map(float, out.split())))
    print("| start | import + build | first forward | second forward |")
    print("|---|---|---|---|")
    for label, build_s, first, second in results:
        print(f"| {label} | {build_s:.2f} s | {first:.2f} s | {second:.2f} s |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", default=["vgg16", "resnet50"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--start", action="store_true", help="only measure cold vs warm start")
    parser.add_argument("--memory-probe", nargs=3, metavar=("ENGINE", "ARCH", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_probe:
        engine, arch, batch = args.memory_probe
        print(json.dumps(memory_probe(engine, arch, int(batch))))
        return
    if args.start:
        start_table()
        return
    import torch
    from minixai.kernels import cpu_blas
    print(f"threads: {THREADS} (numba and torch), minixai's tiled GEMM {'on' if cpu_blas.TILED else 'off'}, BLAS {cpu_blas.BLAS}, torch {torch.__version__}, "
          f"{args.rounds} rounds, medians")
    rows = time_table(args.archs, args.batches, args.rounds)
    memory = {} if args.no_memory else memory_table(args.archs, args.batches)
    print("| model | batch | pass | minixai | torch | minixai/torch | peak MB minixai | peak MB torch | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for arch, batch, name, mx, th in rows:
        mem = ""
        if name == "input grad" and memory:
            m, t = memory[arch, batch, "mx"], memory[arch, batch, "torch"]
            mem = f"{m:.0f} | {t:.0f} | {m / t:.2f}"
        else:
            mem = " | | "
        print(f"| {arch} | {batch} | {name} | {mx * 1e3:.0f} ms | {th * 1e3:.0f} ms | {mx / th:.2f} | {mem} |")


if __name__ == "__main__":
    main()
