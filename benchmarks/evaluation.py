"""minixai.evaluation against Quantus 0.6: pixel flipping, ROAD and the randomisation test on the same
ResNet-18 (one state dict, the torch twin built from it), the same images and maps and the same number of
forward passes, each library in a process of its own.

    flock -x /tmp/minixai-cpu.lock python benchmarks/evaluation.py            # about six minutes, 2 cores
    python benchmarks/evaluation.py --images 2 --size 120 --repeats 1          # a quick look

Setup, in this process: ResNet-18 with seeded random weights (minixai's initialiser; torchvision's ImageNet
weights need a download) written once as a .npz state dict; N images of the shapes world resized to S x S;
one map per image, max_k |saliency| of that model. Every (library, task) then runs in a fresh child process
(`--child LIBRARY TASK DIR`) that loads the model, warms up (one call on the first image: Numba's kernels,
torch's allocator) and times the task `--repeats` times; the table gives the best time and the ratio
minixai / Quantus (below 1: minixai is faster). float32 on both sides, all cores.

- forward: the model alone, 48 passes of the N images (what pixel flipping costs without the metric).
- pixel flipping: 48 steps of S^2 / 48 pixels, logits, the per-image minimum as the baseline (Quantus's
  "black"). Quantus: features_in_step = 3 S^2 / 48 (S must make S^2 / 48 whole: 240 does; 224 cannot, as
  224^2 is not a multiple of 3). minixai also scores the unperturbed image (49 points to Quantus's 48).
- ROAD: percentages 10, 20, ..., 90, noise 0.01, on grey (one-channel) images with a one-channel ResNet-18
  (conv1's weights summed over the colours: the same network on grey input), because Quantus's ROAD fails
  on a map shared by three colour channels (see minixai/evaluation/road.py).
- randomisation: cascading from the output down ("top_down"), all 41 layers with parameters (batch norms
  included, as Quantus), the plain gradient (torch autograd for Quantus), Spearman on |map|. Both explain
  42 times: the trained model once and once per step (Quantus is given its map of the trained model).
- defaults: each library's pixel flipping as its users run it. Quantus: features_in_step=1 (3 S^2 passes),
  softmax; timed on its first --default-passes passes and extrapolated (a full run takes hours at 240 x 240).
  minixai: pixel_flipping(...) with its defaults (20 steps, 21 passes, batch_size 32).
"""
import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TASKS = ("forward", "pixel_flipping", "road", "randomization", "defaults")
PF_STEPS = 48
PERCENTAGES = list(range(10, 100, 10))


# ---- setup (parent process) ---------------------------------------------------------------------
def prepare(folder, n, size):
    """Write the shared state dict, images and maps to `folder`."""
    import minixai as mx
    from minixai import models
    from minixai.images import resize_bilinear
    model = models.resnet18(weights=None, seed=0)
    np.savez(folder / "resnet18.npz", **model.state_dict())
    x = resize_bilinear(mx.data.shapes.generate(n, seed=2).images, (size, size)).astype(np.float32)
    y = model(x).argmax(axis=1)                       # explain the predicted class (random weights)
    maps = np.abs(mx.saliency(model, x, y)).max(axis=1)
    grey = x.mean(axis=1, keepdims=True)
    grey_model = minixai_model(folder, grey=True)
    grey_maps = np.abs(mx.saliency(grey_model, grey, y)).max(axis=1)
    np.savez(folder / "data.npz", x=x, y=y, maps=maps, grey=grey, grey_maps=grey_maps)


def minixai_model(folder, grey=False):
    from minixai import models
    from minixai.layers import Conv2d
    from minixai.model import Model
    model = models.resnet18(weights=str(folder / "resnet18.npz"))
    if not grey:
        return model
    conv = Conv2d(1, 64, 7, stride=2, padding=3, bias=False)
    conv.weight = np.ascontiguousarray(model["conv1"].weight.sum(axis=1, keepdims=True))
    model.root.layers["conv1"] = conv                  # the same network on grey input
    return Model(model.root, model.spec, "resnet18")


def torch_model(folder, grey=False):
    import torch
    import torchvision
    net = torchvision.models.resnet18()
    state = np.load(folder / "resnet18.npz")
    net.load_state_dict({k: torch.from_numpy(state[k]) for k in state.files}, strict=False)
    if grey:
        conv = torch.nn.Conv2d(1, 64, 7, stride=2, padding=3, bias=False)
        conv.weight.data = net.conv1.weight.data.sum(dim=1, keepdim=True)
        net.conv1 = conv
    return net.eval()


# ---- the tasks, one function per (library, task) --------------------------------------------------
def minixai_task(task, folder, data):
    """(callable running the task once, forward passes of N images it makes)."""
    from minixai import evaluation as ev
    from minixai.evaluation.randomization import parameter_layers
    x, y, maps = data["x"], data["y"], data["maps"]
    if task == "road":
        model, grey, grey_maps = minixai_model(folder, grey=True), data["grey"], data["grey_maps"]
        return (lambda: ev.road(model, grey, y, grey_maps, percentages=PERCENTAGES, noise=0.01, progress=False),
                len(PERCENTAGES))
    model = minixai_model(folder)
    if task == "forward":
        return lambda: [model(x) for _ in range(PF_STEPS)], PF_STEPS
    if task == "pixel_flipping":
        return (lambda: ev.pixel_flipping(model, x, y, maps, steps=PF_STEPS, baseline="minimum", progress=False),
                PF_STEPS + 1)
    if task == "randomization":
        return (lambda: ev.randomization(model, x, y, "saliency", similarity="spearman", progress=False),
                1 + len(parameter_layers(model)))
    return lambda: ev.pixel_flipping(model, x, y, maps, progress=False), 21


def quantus_task(task, folder, data, default_passes):
    import quantus
    x, y, maps = data["x"], data["y"], data["maps"]
    size = x.shape[2]
    if task == "road":
        net, grey = torch_model(folder, grey=True), data["grey"]
        metric = quantus.ROAD(percentages=PERCENTAGES, noise=0.01, disable_warnings=True)
        return lambda: metric(net, grey, y, a_batch=data["grey_maps"][:, None]), len(PERCENTAGES)
    net = torch_model(folder)
    if task == "forward":
        return lambda: [forward_no_grad(net, x) for _ in range(PF_STEPS)], PF_STEPS
    if task == "pixel_flipping":
        metric = quantus.PixelFlipping(features_in_step=3 * size * size // PF_STEPS, disable_warnings=True)
        return lambda: metric(net, x, y, a_batch=maps[:, None], softmax=False), PF_STEPS
    if task == "randomization":
        metric = quantus.MPRT(layer_order="top_down", disable_warnings=True)
        a = torch_saliency(net, x, y)
        layers = sum(1 for _, m in net.named_modules() if hasattr(m, "reset_parameters"))
        return lambda: metric(net, x, y, a_batch=a, explain_func=torch_saliency), 1 + layers
    counted = PassLimit(net, default_passes)                 # Quantus's defaults, stopped after a few passes
    metric = quantus.PixelFlipping(disable_warnings=True)
    return lambda: counted.run(lambda: metric(counted, x, y, a_batch=maps[:, None])), 3 * size * size


def forward_no_grad(net, x):
    import torch
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()


def torch_saliency(model, inputs, targets, **kwargs):
    """The plain gradient of the target logits, as Quantus's explain_func."""
    import torch
    x = torch.tensor(np.asarray(inputs), requires_grad=True)
    out = model(x)
    out[torch.arange(len(x)), torch.as_tensor(np.asarray(targets))].sum().backward()
    return x.grad.numpy()


class PassLimit:
    """A torch module that counts its forward passes and stops the metric after `limit` of them."""

    class Stop(Exception):
        pass

    def __new__(cls, net, limit):
        import torch

        class Limited(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.net, self.passes = net, 0

            def forward(self, x):
                self.passes += 1
                if self.passes > limit:
                    raise PassLimit.Stop
                return self.net(x)

            def run(self, call):
                self.passes = 0
                try:
                    call()
                except PassLimit.Stop:
                    pass
        return Limited().eval()


def child(library, task, folder, repeats, default_passes):
    """Time one task in this process; print JSON."""
    data = dict(np.load(folder / "data.npz"))
    warm = {k: v[:1] for k, v in data.items()}
    make = (lambda d: minixai_task(task, folder, d)) if library == "minixai" else \
        (lambda d: quantus_task(task, folder, d, default_passes))
    make(warm)[0]()                                          # compile / allocate on one image
    run, passes = make(data)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    measured = default_passes if (library == "quantus" and task == "defaults") else passes
    print(json.dumps({"seconds": min(seconds), "passes": passes, "measured_passes": measured}))


# ---- parent -------------------------------------------------------------------------------------------
def run_child(library, task, folder, args):
    command = [sys.executable, __file__, "--child", library, task, str(folder), "--repeats", str(args.repeats),
               "--default-passes", str(args.default_passes)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{library} {task} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--size", type=int, default=240, help="S: S^2 / 48 must be a whole number of pixels")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--default-passes", type=int, default=30, help="Quantus default run: passes timed")
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--child", nargs=3, metavar=("LIBRARY", "TASK", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        library, task, folder = args.child
        return child(library, task, Path(folder), args.repeats, args.default_passes)
    if (args.size * args.size) % PF_STEPS:
        parser.error(f"--size {args.size}: S^2 must be a multiple of {PF_STEPS}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        prepare(folder, args.images, args.size)
        print(f"{args.images} images {args.size}x{args.size}, ResNet-18, best of {args.repeats}; CPU: {cpu_name()}")
        print(f"{'task':<16}{'minixai s':>11}{'Quantus s':>11}{'ratio':>8}   forward passes (of N images)")
        for task in args.tasks:
            ours, theirs = run_child("minixai", task, folder, args), run_child("quantus", task, folder, args)
            q_seconds = theirs["seconds"]
            note = f"{ours['passes']} / {theirs['passes']}"
            if task == "defaults":
                q_seconds = theirs["seconds"] * theirs["passes"] / theirs["measured_passes"]
                note += f" (Quantus: {theirs['measured_passes']} timed, {theirs['seconds']:.1f} s, extrapolated)"
            print(f"{task:<16}{ours['seconds']:>11.1f}{q_seconds:>11.1f}{ours['seconds'] / q_seconds:>8.3f}   {note}",
                  flush=True)


def cpu_name():
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
