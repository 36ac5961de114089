"""The pairs of calls benchmarks/methods.py times: each method of minixai beside its peer's, on the same weights,
input, baseline and target, and the torch set-up they need.

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
"""
import os
import sys
import warnings

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


def torch_setup():
    """Torch on THREADS threads, Captum's DeepLift notice silenced, its max-pool rule summing where windows
    overlap (tests/torch_peers.py)."""
    import torch
    from captum.attr._core import deep_lift
    from torch_peers import captum_maxpool2d_summing
    torch.set_num_threads(THREADS)
    warnings.filterwarnings("ignore", message="Setting forward, backward hooks")     # Captum's DeepLift notice
    deep_lift.SUPPORTED_NON_LINEAR[torch.nn.MaxPool2d] = captum_maxpool2d_summing


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
