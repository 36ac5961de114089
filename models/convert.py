"""Convert a live torchvision model (needs torch and torchvision) into the same minixai model.

    net = torchvision.models.resnet50(weights="IMAGENET1K_V2").eval()
    model = models.from_torchvision(net)            # same logits as net(x) for x in eval mode

The architecture is recognised by class (VGG, AlexNet, ResNet, Inception3) and depth, then every torchvision
module is compared with the minixai layer of the same name (type, channels, kernel, stride, padding, dilation,
...), so a ResNeXt, a dilated ResNet or a VGG with batch norm is refused instead of converted wrongly.
"""
import functools

from .alexnet import alexnet
from .inception import inception_v3
from .resnet import DEPTHS, resnet
from .vgg import CONFIGS, vgg

SUPPORTED = ("alexnet", *CONFIGS, *DEPTHS, "inception_v3")


def _import_torchvision():
    try:
        import torch
        import torchvision.models
    except ImportError as e:
        raise ImportError("from_torchvision needs torch and torchvision: pip install 'minixai[torch]'") from e
    return torch, torchvision.models


def detect_architecture(module):
    """The minixai name of a torchvision VGG / AlexNet / ResNet / Inception3 ("vgg16", "resnet50", ...)."""
    torch, tvm = _import_torchvision()
    arch, found = None, type(module).__name__
    if isinstance(module, tvm.AlexNet):
        arch = "alexnet"
    elif isinstance(module, tvm.Inception3):
        arch = "inception_v3"
    elif isinstance(module, tvm.VGG):
        convs = sum(isinstance(m, torch.nn.Conv2d) for m in module.features)
        batchnorm = any(isinstance(m, torch.nn.BatchNorm2d) for m in module.features)
        by_convs = {sum(v != "M" for v in config): name for name, config in CONFIGS.items()}
        arch = None if batchnorm else by_convs.get(convs)
        found = f"a VGG with {convs} convolutions" + (" and batch norm" if batchnorm else "")
    elif isinstance(module, tvm.ResNet):
        block = type(module.layer1[0]).__name__
        blocks = tuple(len(getattr(module, f"layer{i}")) for i in range(1, 5))
        by_depth = {(b.__name__, depths): name for name, (b, depths) in DEPTHS.items()}
        arch = by_depth.get((block, blocks))
        found = f"a ResNet of {block}s {blocks}"
    if arch is None:
        raise ValueError(f"cannot convert {found}: not one of the supported torchvision architectures "
                         f"({', '.join(SUPPORTED)})")
    return arch


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _hyperparameters(layer):
    """What must agree between a torch module and a minixai layer of the same name (types agree already)."""
    kind = type(layer).__name__
    if kind == "Conv2d":
        groups = getattr(layer, "groups", 1)
        mode = getattr(layer, "padding_mode", "zeros")
        return (layer.in_channels, layer.out_channels, _pair(layer.kernel_size), _pair(layer.stride),
                _pair(layer.padding), _pair(layer.dilation), groups, mode, layer.bias is not None)
    if kind == "MaxPool2d":
        return (_pair(layer.kernel_size), _pair(layer.stride), _pair(layer.padding), _pair(layer.dilation),
                layer.ceil_mode)
    if kind == "AdaptiveAvgPool2d":
        return _pair(layer.output_size)
    if kind == "Linear":
        return layer.in_features, layer.out_features, layer.bias is not None
    if kind == "BatchNorm2d":
        return layer.num_features, layer.eps
    return ()


def check_same_layout(module, model):
    """Raise if any torchvision module has no minixai twin of the same name, type and hyperparameters."""
    ours = dict(model.named_layers())
    problems = []
    for name, m in module.named_modules():
        if not name:
            continue
        if name not in ours:
            problems.append(f"{name} ({type(m).__name__}) has no counterpart")
        elif type(m).__name__ != type(ours[name]).__name__:
            problems.append(f"{name} is a {type(m).__name__}, expected {type(ours[name]).__name__}")
        elif _hyperparameters(m) != _hyperparameters(ours[name]):
            problems.append(f"{name}: {m} differs from {ours[name]!r}")
    if problems:
        raise ValueError(f"cannot convert {type(module).__name__} to minixai's {model.arch}: "
                         + "; ".join(problems[:10]) + (" ..." if len(problems) > 10 else ""))


def state_dict_to_numpy(module):
    """{torchvision key: float32 numpy array}, without the BN batch counters."""
    return {key: value.detach().cpu().float().numpy().copy()
            for key, value in module.state_dict().items() if not key.endswith("num_batches_tracked")}


def from_torchvision(module):
    """A minixai model computing what `module` (a torchvision VGG/AlexNet/ResNet/Inception3) computes in eval mode.

    The weights are copied (float32); the module is not modified. The head size follows the module's last
    Linear; with 1000 outputs the spec carries the ImageNet class names.
    """
    torch, _ = _import_torchvision()
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"from_torchvision expects a torch.nn.Module, got {type(module).__name__}")
    arch = detect_architecture(module)
    last_linear = [m for m in module.modules() if isinstance(m, torch.nn.Linear)][-1]
    num_classes = last_linear.out_features
    if arch == "alexnet":
        builder = alexnet
    elif arch == "inception_v3":            # its options, as the module has them
        builder = functools.partial(inception_v3, transform_input=module.transform_input,
                                    aux_logits=module.AuxLogits is not None, dropout=module.dropout.p)
    elif arch in CONFIGS:
        builder = functools.partial(vgg, arch)
    else:
        builder = functools.partial(resnet, arch)
    try:
        model = builder(weights=state_dict_to_numpy(module), num_classes=num_classes)
    except ValueError:
        check_same_layout(module, builder(num_classes=num_classes))   # name the layers that differ
        raise
    check_same_layout(module, model)          # equal shapes can still hide another stride or dilation
    return model
