"""minixai on a GPU (CuPy) against PyTorch CUDA and Captum on the same GPU.

    python benchmarks/gpu.py                       # vgg16 and resnet50, batch 1 and 32; IG-50, SmoothGrad-50
    python benchmarks/gpu.py --archs resnet50 --batches 32 --reps 5

Timed, float32, 224x224, random weights, after warm-up calls; every time is the median of --reps calls,
each ended by a device synchronisation: the forward pass and forward + input gradient of one logit at
batch 1 and 32, and Integrated Gradients (50 Gauss-Legendre steps, black baseline) and SmoothGrad (50
samples) of one image against Captum's IntegratedGradients and NoiseTunnel(Saliency). PyTorch runs twice:
with its defaults (cuDNN may use TF32 tensor cores for convolutions, ~10 bits of mantissa) and with TF32
off (full float32, what CuPy's cuBLAS products compute here): the ratio against the second is the like-for-
like one. Prints the GPU's name and a markdown table of ratios (below 1: minixai is faster).
"""
import argparse
import statistics
import time

import numpy as np


def timed(fn, sync, reps):
    fn()
    sync()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def minixai_times(arch, batch, reps, with_methods):
    import cupy

    import minixai as mx
    from minixai import models
    sync = cupy.cuda.Device().synchronize
    model = getattr(models, arch)(seed=0, device="cuda")
    x = cupy.asarray(np.random.default_rng(0).standard_normal((batch, 3, 224, 224)).astype(np.float32))
    out = {"forward": timed(lambda: model(x), sync, reps),
           "forward + input grad": timed(lambda: mx.saliency(model, x, 0), sync, reps)}
    if with_methods:
        one = x[:1]
        out["IG-50"] = timed(lambda: mx.integrated_gradients(model, one, 0, steps=50, batch_size=25,
                                                             progress=False), sync, max(2, reps // 2))
        out["SmoothGrad-50"] = timed(lambda: mx.smoothgrad(model, one, 0, n=50, batch_size=25, progress=False),
                                     sync, max(2, reps // 2))
    return out


def torch_times(arch, batch, reps, with_methods, tf32):
    import torch
    import torchvision
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True
    sync = torch.cuda.synchronize
    net = getattr(torchvision.models, arch)().eval().cuda()
    for p in net.parameters():
        p.requires_grad_(False)
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((batch, 3, 224, 224)).astype(np.float32)).cuda()

    def forward():
        with torch.inference_mode():
            net(x)

    def gradient():
        xx = x.clone().requires_grad_(True)
        return torch.autograd.grad(net(xx)[:, 0].sum(), xx)[0]

    out = {"forward": timed(forward, sync, reps), "forward + input grad": timed(gradient, sync, reps)}
    if with_methods:
        from captum.attr import IntegratedGradients, NoiseTunnel, Saliency
        one = x[:1].clone()
        black = ((torch.zeros_like(one) - torch.tensor([0.485, 0.456, 0.406], device="cuda")[:, None, None])
                 / torch.tensor([0.229, 0.224, 0.225], device="cuda")[:, None, None])
        ig = IntegratedGradients(net)
        out["IG-50"] = timed(lambda: ig.attribute(one, black, target=0, n_steps=50, method="gausslegendre",
                                                  internal_batch_size=25), sync, max(2, reps // 2))
        stdev = float(0.15 * (one.max() - one.min()))
        nt = NoiseTunnel(Saliency(net))
        out["SmoothGrad-50"] = timed(lambda: nt.attribute(one, nt_type="smoothgrad", nt_samples=50,
                                                          nt_samples_batch_size=25, stdevs=stdev, target=0,
                                                          abs=False), sync, max(2, reps // 2))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["vgg16", "resnet50"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    import torch
    print(f"GPU: {torch.cuda.get_device_name()}")
    print("| model | batch | pass | minixai | PyTorch (TF32 off) | PyTorch default | minixai / TF32 off | "
          "minixai / default |")
    print("|---|---|---|---|---|---|---|---|")
    for arch in args.archs:
        for batch in args.batches:
            methods = batch == args.batches[0]
            ours = minixai_times(arch, batch, args.reps, methods)
            exact = torch_times(arch, batch, args.reps, methods, tf32=False)
            default = torch_times(arch, batch, args.reps, methods, tf32=True)
            for key in ours:
                single = key.startswith("forward")
                shown, rows = (key, batch) if single else (f"{key} (Captum)", 1)
                print(f"| {arch} | {rows} | {shown} | {ours[key] * 1e3:.1f} ms | "
                      f"{exact[key] * 1e3:.1f} ms | {default[key] * 1e3:.1f} ms | {ours[key] / exact[key]:.2f} | "
                      f"{ours[key] / default[key]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
