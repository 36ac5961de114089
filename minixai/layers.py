"""Layers with an explicit forward and backward.

``forward(ctx, x)`` computes the output and stores in ``ctx`` (a ``minixai.tape.Context``, new on every
call) exactly what the gradient needs; ``grad(ctx, dout)``, written line by line below it, is the chain
rule for that forward. ``backward(ctx, dout, rule)`` is what containers and models call: it asks the
rule (``minixai.rules``), and the plain gradient rule answers with ``grad``; other rules replace it
(guided backprop, LRP, DeepLIFT...). In training mode ``grad`` also leaves the parameter gradients in the
context (``ctx.dweight``, ``ctx.dbias``); while explaining they are never computed.

Arrays are NCHW; ``out``/``dout`` are the layer's output and the gradient arriving at it. A layer can be
tried on its own: ``layer(x)`` is its output; ``tape = Tape(); tape.forward(layer, x);
tape.backward(layer, dout, Gradient())`` its input gradient. Pooling layers are in ``minixai.pooling``.
"""
import numpy as np

from .backend import array_module, kernels, to_device
from .tape import Context, Tape


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


class Layer:
    """Base class: a named node of a model. Subclasses define forward(ctx, ...) and grad(ctx, dout)."""
    training = False       # model.train() switches this on: dropout draws masks, grad computes ctx.dweight

    def __init__(self):
        self.name = ""     # full dotted name, set by the model ("features.28", "layer4.2.conv3")

    def __call__(self, *inputs):
        """The output for `inputs`, on a throwaway tape (nothing is kept for a backward pass)."""
        tape = Tape()                      # held here: a context refers to its tape weakly
        return self.forward(Context(tape), *inputs)

    def backward(self, ctx, dout, rule):
        """Gradient (or, under `rule`, relevance) with respect to this layer's input."""
        return rule.backward(self, ctx, dout)

    def children(self):
        """Sub-layers by their local name (containers override this)."""
        return {}

    def parameters(self):
        """Names of the trainable arrays this layer holds."""
        return ()

    def buffers(self):
        """Names of the other arrays of its state (batch norm's running statistics)."""
        return ()

    def __repr__(self):
        return f"{type(self).__name__}()"


class Conv2d(Layer):
    """2-D cross-correlation. x (N,C,H,W), weight (K,C,R,S), bias (K,) -> out (N,K,H',W'),
    H' = 1 + (H + 2P - D(R-1) - 1) // S."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 bias=True, groups=1):
        super().__init__()
        if groups != 1:
            raise ValueError(f"Conv2d supports groups=1 only, got groups={groups}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride, self.padding, self.dilation = _pair(stride), _pair(padding), _pair(dilation)
        self.weight = np.zeros((out_channels, in_channels, *self.kernel_size), np.float32)
        self.bias = np.zeros(out_channels, np.float32) if bias else None

    def parameters(self):
        return ("weight", "bias") if self.bias is not None else ("weight",)

    def forward(self, ctx, x):
        ctx.x = x
        return self.apply(x, self.weight, self.bias)

    def grad(self, ctx, dout):
        if self.training:
            ctx.dweight = kernels(dout).conv2d_backward_weight(dout, ctx.x, self.weight.shape, self.stride,
                                                           self.padding, self.dilation)
            ctx.dbias = dout.sum(axis=(0, 2, 3)) if self.bias is not None else None
        return self.apply_transposed(dout, self.weight, ctx.x.shape)

    def apply(self, x, weight, bias=None):
        """The convolution with any weights (LRP rules call this with modified weights)."""
        weight = weight.astype(x.dtype, copy=False)
        bias = bias.astype(x.dtype, copy=False) if bias is not None else None
        return kernels(x).conv2d_forward(x, weight, bias, self.stride, self.padding, self.dilation)

    def apply_transposed(self, dout, weight, x_shape):
        """Its transpose: the input gradient for the given weights. The batch size is dout's (DeepLIFT
        carries half of the batch that ran forward)."""
        weight = weight.astype(dout.dtype, copy=False)
        return kernels(dout).conv2d_backward_input(dout, weight, (dout.shape[0], *x_shape[1:]), self.stride,
                                               self.padding, self.dilation)

    def __repr__(self):
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation})")


class Linear(Layer):
    """out = x @ weight.T + bias. x (N, I), weight (O, I), bias (O,)."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = np.zeros((out_features, in_features), np.float32)
        self.bias = np.zeros(out_features, np.float32) if bias else None

    def parameters(self):
        return ("weight", "bias") if self.bias is not None else ("weight",)

    def forward(self, ctx, x):
        ctx.x = x
        return self.apply(x, self.weight, self.bias)

    def grad(self, ctx, dout):
        if self.training:
            ctx.dweight = dout.T @ ctx.x                        # no,ni->oi
            ctx.dbias = dout.sum(axis=0) if self.bias is not None else None
        return self.apply_transposed(dout, self.weight, ctx.x.shape)

    def apply(self, x, weight, bias=None):
        weight = weight.astype(x.dtype, copy=False)
        bias = bias.astype(x.dtype, copy=False) if bias is not None else None
        return kernels(x).linear_forward(x, weight, bias)           # x @ W^T + b

    def apply_transposed(self, dout, weight, x_shape=None):
        return kernels(dout).linear_backward_input(dout, weight.astype(dout.dtype, copy=False))   # dout @ W

    def __repr__(self):
        return f"Linear({self.in_features}, {self.out_features})"


class ReLU(Layer):
    """out = max(x, 0); the gradient passes where x > 0."""

    def forward(self, ctx, x):
        ctx.out = kernels(x).relu_forward(x)     # out > 0 exactly where x > 0: the mask of the gradient
        if ctx.keep_inputs:
            ctx.x = x                           # the pre-activation, for DeepLIFT
        return ctx.out

    def grad(self, ctx, dout):
        return kernels(dout).relu_backward(dout, ctx.out)       # dout where out > 0, else 0


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W)."""

    def forward(self, ctx, x):
        ctx.x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def grad(self, ctx, dout):
        return dout.reshape(dout.shape[0], *ctx.x_shape[1:])


class BatchNorm2d(Layer):
    """Inference batch norm: out = (x - mean) / sqrt(var + eps) * gamma + beta = x * scale + shift.
    Training mode keeps the running statistics frozen (enough to fine-tune, not to train BN)."""

    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.num_features, self.eps = num_features, eps
        self.weight = np.ones(num_features, np.float32)
        self.bias = np.zeros(num_features, np.float32)
        self.running_mean = np.zeros(num_features, np.float32)
        self.running_var = np.ones(num_features, np.float32)

    def parameters(self):
        return ("weight", "bias")

    def buffers(self):
        return ("running_mean", "running_var")

    def scale_shift(self, dtype=np.float32):
        """The affine map this layer is: (scale, shift), each of shape (C,)."""
        xp = array_module(self.weight)
        scale = self.weight.astype(np.float64) / xp.sqrt(self.running_var.astype(np.float64) + self.eps)
        shift = self.bias - self.running_mean * scale
        return scale.astype(dtype), shift.astype(dtype)

    def forward(self, ctx, x):
        if self.training:
            ctx.x = x                               # only the weight gradient needs it
        scale, shift = self.scale_shift(x.dtype)
        return kernels(x).channel_affine(x, scale, shift)

    def grad(self, ctx, dout):
        scale, shift = self.scale_shift(dout.dtype)
        if self.training:
            xhat = (ctx.x - self.running_mean[:, None, None]) / np.sqrt(self.running_var[:, None, None] + self.eps)
            ctx.dweight = (dout * xhat).sum(axis=(0, 2, 3))
            ctx.dbias = dout.sum(axis=(0, 2, 3))
        return kernels(dout).channel_affine(dout, scale, np.zeros_like(shift))      # dout * scale

    def __repr__(self):
        return f"BatchNorm2d({self.num_features})"


class Dropout(Layer):
    """Identity at inference. In training mode: zero each value with probability p, scale the rest by 1/(1-p).
    The masks come from the layer's own seeded generator (training only; explaining never draws)."""

    def __init__(self, p=0.5, seed=0):
        super().__init__()
        self.p = p
        self.rng = np.random.default_rng(seed)

    def forward(self, ctx, x):
        ctx.keep = None
        if not self.training or self.p == 0:
            return x
        ctx.keep = to_device((self.rng.random(x.shape) >= self.p) / (1 - self.p), like=x)   # drawn here
        return x * ctx.keep.astype(x.dtype)

    def grad(self, ctx, dout):
        return dout if ctx.keep is None else dout * ctx.keep.astype(dout.dtype)

    def __repr__(self):
        return f"Dropout(p={self.p})"


class Add(Layer):
    """The residual join: out = a + b; the gradient is copied to both inputs."""

    def forward(self, ctx, a, b):
        if ctx.keep_inputs:
            ctx.a, ctx.b = a, b                     # for the proportional split of LRP
        return a + b

    def grad(self, ctx, dout):
        return dout, dout


class Sequential(Layer):
    """Layers applied one after the other; backward visits them in reverse."""

    def __init__(self, *layers, names=None):
        super().__init__()
        names = names or [str(i) for i in range(len(layers))]
        self.layers = dict(zip(names, layers))

    def children(self):
        return self.layers

    def forward(self, ctx, x):
        for layer in self.layers.values():
            x = ctx.forward(layer, x)
        return x

    def backward(self, ctx, dout, rule):
        for layer in reversed(self.layers.values()):
            dout = ctx.backward(layer, dout, rule)
        return dout

    def __getitem__(self, key):
        return self.layers[str(key)]

    def __len__(self):
        return len(self.layers)

    def __repr__(self):
        inner = "\n".join(f"  ({k}): {v!r}".replace("\n", "\n  ") for k, v in self.layers.items())
        return f"Sequential(\n{inner}\n)"


# The pooling layers live in minixai.pooling (built on Layer above) and are importable from here as well.
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d  # noqa: E402,F401
