"""torchvision models as Captum needs them to compute the method it names: shared by the parity tests
(tests/test_parity_methods.py, whose docstring explains each change and what it measured) and by
benchmarks/methods.py.

- `captum_ready(net)`: one ReLU module per call site (torchvision's Bottleneck calls its `relu` three
  times), none inplace, and every max-pool reading a copy of its input (so a ReLU's hook and the max-pool's
  hook sit on different tensors). Same function, same gradient.
- `captum_maxpool2d_summing`: Captum's DeepLIFT max-pool rule, unpooling with a sum where windows overlap
  (Captum's `F.max_unpool2d` assigns, so an input that wins two windows keeps one share).
"""
import torch
import torchvision


class SeparateReLUBottleneck(torchvision.models.resnet.Bottleneck):
    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _clone_input(module, args):
    return tuple(a.clone() for a in args)


def captum_ready(net):
    """`net` with no ReLU module called twice, none inplace, and every max-pool reading a copy of its input."""
    for block in net.modules():
        if type(block) is torchvision.models.resnet.Bottleneck:
            block.__class__ = SeparateReLUBottleneck
            block.relu1, block.relu2 = torch.nn.ReLU(), torch.nn.ReLU()
    for m in net.modules():
        if isinstance(m, torch.nn.ReLU):
            m.inplace = False
        if isinstance(m, torch.nn.MaxPool2d):
            m.register_forward_pre_hook(_clone_input)      # before Captum's hooks, which come and go
    return net


def _unpool_summing(values, indices, kernel_size, stride, padding, output_size):
    """F.max_unpool2d, but summing where windows overlap: max_unpool2d assigns, so when an input is the
    maximum of several windows only one window's value survives."""
    N, C, H, W = output_size
    out = values.new_zeros(N, C, H * W)
    return out.scatter_add_(2, indices.flatten(2), values.flatten(2)).view(N, C, H, W)


def captum_maxpool2d_summing(module, ins, outs, grad_in, grad_out, eps=1e-10):
    """Captum's DeepLIFT max-pool rule with its unpooling summing; install it in
    ``captum.attr._core.deep_lift.SUPPORTED_NON_LINEAR[torch.nn.MaxPool2d]``."""
    from captum.attr._core import deep_lift
    return deep_lift.maxpool(module, torch.nn.functional.max_pool2d, _unpool_summing, ins, outs, grad_in,
                             grad_out, eps=eps)
