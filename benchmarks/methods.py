"""minixai's attribution methods (numba backend) against their peers on VGG-16 and ResNet-50: same weights,
same input, same thread count, CPU, 224x224, batch 1.

    python benchmarks/methods.py --rounds 3                          # the full table + IG peak memory (long)
    python benchmarks/methods.py --models resnet50 --methods saliency gradcam --rounds 1 --no-memory
    python benchmarks/methods.py --memory-only --models resnet50     # only the IG memory table
    python benchmarks/methods.py --separate --rounds 3 --no-memory   # each engine timed in its own processes

Peers: Captum for saliency (Saliency, abs=False), gxi (InputXGradient), smoothgrad (NoiseTunnel over Saliency,
same n, stdevs = sigma * (max x - min x) as minixai), ig (IntegratedGradients, gausslegendre, same steps),
guided (GuidedBackprop), deconvnet (Deconvolution), deeplift (DeepLift, Rescale), gradcam (LayerGradCam +
bilinear LayerAttribution.interpolate, as mx.gradcam upsamples) and guided_gradcam (GuidedGradCam, bilinear);
Zennit for lrp (EpsilonPlusFlat, ResNetCanonizer / VGGCanonizer); pytorch-grad-cam's GradCAM as a second
gradcam row. Baselines: black (minixai's default), the same array given to Captum. Targets: the top class.
The Grad-CAM family (gradcam++, xgradcam, hirescam, layercam, scorecam, ablationcam, eigencam) runs against
pytorch-grad-cam's class of the same name at mx's default layer, both maps scaled to [0, 1] as that library
scales them; ScoreCAM and AblationCAM with pytorch-grad-cam's batch sizes (16 and 32) and minixai's
--cam-batch (32). On ResNet-50 each of them runs 2048 passes per call: they get no warm-up call (the kernels
are warm from the other rows), and the agreement column compares their first round.

The torch model is prepared by tests/torch_peers.py, as for tests/test_parity_methods.py (read its
docstring): one ReLU module per call site and none inplace (Captum's DeepLift refuses torchvision's ResNet
otherwise), a copy of each max-pool's input (Captum's ReLU would rescale the plain max-pool gradient), and
Captum's DeepLIFT max-pool rule sums where windows overlap. These change nothing in the forward pass and
cost a few copies.

Both engines run in one process, alternating method by method (minixai, then its peer) for several rounds
after a warm-up call of each (with --separate, the warm-up calls there give the agreement column, and the
timing runs in fresh processes, one engine each, alternating, --rounds of each, as engine_separate.py does:
each process times every row's calls of its engine, the median of up to 3 after a warm-up); the table gives medians and the ratio minixai / peer (below 1: minixai is
faster), and the relative L2 difference of the two results from the warm-up call (float32, so the ReLU-kink
flips of tests/test_parity_torch.py show up at the 1e-3 level; SmoothGrad's noise differs, so none there).
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
import warnings

from _memory import release_freed_memory, status_kb  # benchmarks/ is on sys.path when run as a script

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests"))  # torch_peers

THREADS = int(os.environ.get("NUMBA_NUM_THREADS", os.cpu_count() or 1))   # numba's default, given to torch
MODELS = ("vgg16", "resnet50")
METHOD_NAMES = ("saliency", "gxi", "smoothgrad", "ig", "guided", "deconvnet", "deeplift", "gradcam",
                "guided_gradcam", "lrp", "occlusion", "lime", "kernel_shap", "gradient_shap",
                "deeplift_shap", "gradcam++", "xgradcam", "hirescam", "layercam", "scorecam",
                "ablationcam", "eigencam")                    # mx.METHODS, in the table's order
CAM_CLASSES = {"gradcam++": "GradCAMPlusPlus", "xgradcam": "XGradCAM", "hirescam": "HiResCAM",
               "layercam": "LayerCAM", "scorecam": "ScoreCAM", "ablationcam": "AblationCAM",
               "eigencam": "EigenCAM"}                       # pytorch-grad-cam's class for each
SLOW = ("scorecam", "ablationcam")                            # a network pass per channel
RANDOM = ("smoothgrad", "lime", "kernel_shap", "gradient_shap")   # noise differs: no agreement column


# ---- the models -----------------------------------------------------------------------------------------
def build(arch, seed=0):
    """(torch model, minixai model, x (1, 3, 224, 224) float32, black baseline, top class), inference mode."""
    import numpy as np
    import torch
    import torchvision

    from torch_peers import captum_ready

    from minixai import models

    torch.manual_seed(seed)
    net = getattr(torchvision.models, arch)(weights=None).eval()
    model = models.from_torchvision(net)
    net = captum_ready(net)
    for p in net.parameters():
        p.requires_grad_(False)
    x = model.spec.normalize(np.random.default_rng(seed).uniform(0, 1, (1, 3, 224, 224)).astype(np.float32))
    black = model.spec.normalize(np.zeros_like(x))
    with torch.no_grad():
        target = int(net(torch.from_numpy(x)).argmax())       # torch's: minixai's model holds no activations yet
    return net, model, x, black, target


# ---- one call of each engine ----------------------------------------------------------------------------
def rows(arch, net, model, x, black, target, args):
    """[(method, peer name, minixai call, peer call, compare)], each call returning a numpy array."""
    import torch
    from captum import attr

    import minixai as mx

    xt = torch.from_numpy(x)
    layer_name = {"vgg16": "features.29", "resnet50": "layer4"}[arch]      # mx.gradcam's default layer
    layer = net.get_submodule(layer_name)
    sigma = 0.15

    def inputs():
        return xt.clone().requires_grad_()

    def captum(explainer, **options):
        return lambda: explainer.attribute(inputs(), target=target, **options).detach().numpy()

    def gradcam_captum():
        cam = attr.LayerGradCam(net, layer).attribute(inputs(), target=target, relu_attributions=True)
        return attr.LayerAttribution.interpolate(cam, x.shape[2:], interpolate_mode="bilinear")[:, 0].detach().numpy()

    def gradcam_pgc():
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
        with GradCAM(model=net, target_layers=[layer]) as cam:
            return cam(input_tensor=inputs(), targets=[ClassifierOutputTarget(target)])

    def lrp_zennit():
        from zennit.attribution import Gradient
        from zennit.composites import EpsilonPlusFlat
        from zennit.torchvision import ResNetCanonizer, VGGCanonizer
        canonizer = ResNetCanonizer() if arch.startswith("resnet") else VGGCanonizer()
        one_hot = torch.zeros(1, model.num_outputs)
        one_hot[0, target] = 1
        with Gradient(model=net, composite=EpsilonPlusFlat(canonizers=[canonizer])) as attributor:
            return attributor(xt.clone(), lambda out: one_hot * out.detach())[1].numpy()

    def normalised(cam):            # pytorch-grad-cam's min-max scaling, for the comparison only
        cam = cam - cam.min(axis=(1, 2), keepdims=True)
        return cam / (1e-7 + cam.max(axis=(1, 2), keepdims=True))

    n, steps, bs = args.samples, args.steps, args.batch_size
    stdevs = float(sigma * (x.max() - x.min()))
    table = [
        ("saliency", "Captum", lambda: mx.saliency(model, x, target), captum(attr.Saliency(net), abs=False)),
        ("gxi", "Captum", lambda: mx.gradient_x_input(model, x, target), captum(attr.InputXGradient(net))),
        ("smoothgrad", "Captum",
         lambda: mx.smoothgrad(model, x, target, n=n, sigma=sigma, batch_size=bs, progress=False),
         captum(attr.NoiseTunnel(attr.Saliency(net)), nt_type="smoothgrad", nt_samples=n, stdevs=stdevs,
                nt_samples_batch_size=bs, abs=False)),
        ("ig", "Captum",
         lambda: mx.integrated_gradients(model, x, target, baseline=black, steps=steps, batch_size=bs,
                                         progress=False),
         captum(attr.IntegratedGradients(net), baselines=torch.from_numpy(black), n_steps=steps,
                method="gausslegendre", internal_batch_size=bs)),
        ("guided", "Captum", lambda: mx.guided_backprop(model, x, target), captum(attr.GuidedBackprop(net))),
        ("deconvnet", "Captum", lambda: mx.deconvnet(model, x, target), captum(attr.Deconvolution(net))),
        ("deeplift", "Captum", lambda: mx.deeplift(model, x, target, baseline=black),
         captum(attr.DeepLift(net), baselines=torch.from_numpy(black))),
        ("gradcam", "Captum", lambda: mx.gradcam(model, x, target), gradcam_captum),
        ("gradcam", "pytorch-grad-cam", lambda: normalised(mx.gradcam(model, x, target)), gradcam_pgc),
        ("guided_gradcam", "Captum", lambda: mx.guided_gradcam(model, x, target),
         captum(attr.GuidedGradCam(net, layer), interpolate_mode="bilinear")),
        ("lrp", "Zennit", lambda: mx.lrp(model, x, target, composite="epsilon_plus_flat"), lrp_zennit),
    ] + perturbation_rows(net, model, x, target, args, captum) + cam_rows(
        net, model, x, target, layer, normalised, args)
    return [row for row in table if row[0] in args.methods]


def perturbation_rows(net, model, x, target, args, captum):
    """The perturbation and Shapley methods with the same number of model evaluations on both sides:
    occlusion with side x side windows of 224 / side pixels, not overlapping (side^2 + 1 passes), LIME and
    KernelSHAP on a side x side grid of segments with `evaluations` coalitions (KernelSHAP: plus the empty and
    the full one, which Captum counts in n_samples), GradientSHAP with `gradient_samples` samples and
    DeepLiftShap with `gradient_samples` / 2 baselines, both from mx's default background (black and noise:
    the input is noise, so superpixels would be one segment). Perturbed images go `perturbation_batch` at a
    time through both networks (Captum's perturbations_per_eval); GradientSHAP and DeepLiftShap all at once
    (Captum's have no batch option)."""
    import numpy as np
    import torch
    from captum import attr

    import minixai as mx
    from minixai.methods.shap_gradients import background

    side, n, bs = args.grid, args.evaluations, args.perturbation_batch
    window = stride = x.shape[2] // side
    row, col = (np.arange(size) * side // size for size in x.shape[2:])
    grid = row[:, None] * side + col[None, :]                            # side x side blocks, ids row by row
    mask = torch.from_numpy(grid)[None, None]
    zeros = torch.zeros_like(torch.from_numpy(x))
    shap_baselines = background(x, model.spec, count=max(2, args.gradient_samples // 2))
    return [
        ("occlusion", "Captum",
         lambda: mx.occlusion(model, x, target, window=(3, window, window), stride=(3, stride, stride),
                              batch_size=bs, progress=False),
         captum(attr.Occlusion(net), sliding_window_shapes=(3, window, window),
                strides=(3, stride, stride), baselines=zeros, perturbations_per_eval=bs)),
        ("lime", "Captum",
         lambda: mx.lime(model, x, target, segments=grid, n=n, batch_size=bs, progress=False),
         captum(attr.Lime(net), baselines=zeros, feature_mask=mask, n_samples=n,
                perturbations_per_eval=bs)),
        ("kernel_shap", "Captum",
         lambda: mx.kernel_shap(model, x, target, segments=grid, n=n - 2, batch_size=bs, progress=False),
         captum(attr.KernelShap(net), baselines=zeros, feature_mask=mask, n_samples=n,
                perturbations_per_eval=bs)),
        ("gradient_shap", "Captum",
         lambda: mx.gradient_shap(model, x, target, shap_baselines, n=args.gradient_samples, progress=False),
         captum(attr.GradientShap(net), baselines=torch.from_numpy(shap_baselines),
                n_samples=args.gradient_samples)),
        ("deeplift_shap", "Captum",
         lambda: mx.deeplift_shap(model, x, target, shap_baselines, progress=False),
         captum(attr.DeepLiftShap(net), baselines=torch.from_numpy(shap_baselines))),
    ]


def cam_rows(net, model, x, target, layer, normalised, args):
    """The Grad-CAM family against pytorch-grad-cam, (method, peer, minixai call, peer call) as in `rows`."""
    import torch
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    import minixai as mx

    def ours(name):
        options = {"batch_size": args.cam_batch, "progress": False} if name in SLOW else {}
        return lambda: normalised(mx.METHODS[name](model, x, target, **options))

    def theirs(name):
        def call():
            with getattr(pytorch_grad_cam, CAM_CLASSES[name])(model=net, target_layers=[layer]) as cam:
                return cam(input_tensor=torch.from_numpy(x).requires_grad_(), targets=[ClassifierOutputTarget(target)])
        return call

    return [(name, "pytorch-grad-cam", ours(name), theirs(name)) for name in CAM_CLASSES]


def relative_l2(ours, theirs):
    import numpy as np
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64).reshape(np.shape(ours))
    return float(np.linalg.norm(ours - theirs) / np.linalg.norm(theirs))


def time_table(args):
    import torch
    torch.set_num_threads(THREADS)
    warnings.filterwarnings("ignore", message="Setting forward, backward hooks")     # Captum's DeepLift notice
    from captum.attr._core import deep_lift
    from torch_peers import captum_maxpool2d_summing
    deep_lift.SUPPORTED_NON_LINEAR[torch.nn.MaxPool2d] = captum_maxpool2d_summing
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
    import torch
    torch.set_num_threads(THREADS)
    warnings.filterwarnings("ignore")
    from captum.attr._core import deep_lift
    from torch_peers import captum_maxpool2d_summing
    deep_lift.SUPPORTED_NON_LINEAR[torch.nn.MaxPool2d] = captum_maxpool2d_summing
    arch = args.models[0]
    net, model, x, black, target = build(arch)
    table = rows(arch, net, model, x, black, target, args)
    calls = [(f"{method}|{peer}", ours if engine == "mx" else theirs) for method, peer, ours, theirs in table]

    def timed(call):
        gc.collect()
        start = time.perf_counter()
        call()
        return time.perf_counter() - start

    times = {}
    time.sleep(1.0)                             # torch's threads, busy while building, go idle
    for key, call in calls:
        slow = key.split("|")[0] in SLOW        # minutes per call: one call, no warm-up
        if not slow:
            call()                              # warm-up
        runs = [timed(call)]
        while not slow and len(runs) < 3 and sum(runs) < 2.0:
            runs.append(timed(call))
        times[key] = statistics.median(runs)
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
    print(f"threads: {THREADS} (numba and torch), minixai's tiled GEMM {'on' if cpu_blas.TILED else 'off'}, BLAS {cpu_blas.BLAS}, "
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
