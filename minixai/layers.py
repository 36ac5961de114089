"""Layers with an explicit forward and backward.

Each layer's ``forward(x)`` caches exactly what its gradient needs, and ``grad(dout)`` is the chain
rule for that forward, written line by line below it. ``backward(dout, rule)`` is what models call: with
no rule it is ``grad``; a rule (``minixai.rules``) may replace the gradient by another backward pass
(guided backprop, LRP, DeepLIFT...). In training mode ``grad`` also stores the parameter gradients
(``dweight``, ``dbias``); while explaining they are never computed.

Arrays are NCHW; ``out``/``dout`` are the layer's output and the gradient arriving at it.
"""
import numpy as np

from .backend import array_module, kernels


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


class Layer:
    """Base class: a named node of a model with forward, grad and an optional capture of its output/gradient."""
    training = False
    keep_input = False     # rules that need more than the gradient does (DeepLIFT, LRP) switch this on

    def __init__(self):
        self.name = ""             # full dotted name, set by the model ("features.28", "layer4.2.conv3")
        self.capture = False       # when set, forward stores `captured_output` and backward `captured_grad`

    def __call__(self, *inputs):
        return self.record(self.forward(*inputs))

    def record(self, out):
        """Keep `out` as this layer's captured output if asked; returns it."""
        if self.capture:
            self.captured_output = out
        return out

    def backward(self, dout, rule=None):
        """Gradient (or, under `rule`, relevance) with respect to this layer's input."""
        if self.capture:
            self.captured_grad = dout
        if rule is None:
            return self.grad(dout)
        return rule.backward(self, dout)

    def children(self):
        """Sub-layers by their local name (containers override this)."""
        return {}

    def parameters(self):
        """Names of the trainable arrays this layer holds."""
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

    def forward(self, x):
        self.x = x
        return self.apply(x, self.weight, self.bias)

    def grad(self, dout):
        if self.training:
            self.dweight = kernels().conv2d_backward_weight(dout, self.x, self.weight.shape, self.stride,
                                                            self.padding, self.dilation)
            self.dbias = dout.sum(axis=(0, 2, 3)) if self.bias is not None else None
        return self.apply_transposed(dout, self.weight)

    def forward_fused(self, x, bn=None, relu=False):
        """forward, then the inference batch norm `bn` and a ReLU, in the convolution's own output pass:
        out = max((W * x) * scale + (b * scale + shift), 0). The backward pass is unchanged: each layer
        keeps what its gradient needs (this layer x, the ReLU its output)."""
        self.x = x
        weight = self.weight.astype(x.dtype, copy=False)
        bias = self.bias.astype(x.dtype, copy=False) if self.bias is not None else None
        scale = None
        if bn is not None:
            scale, shift = bn.scale_shift(x.dtype)
            bias = shift if bias is None else bias * scale + shift
        return kernels().conv2d_forward(x, weight, bias, self.stride, self.padding, self.dilation,
                                        scale=scale, relu=relu)

    def grad_fused(self, dout, bn=None, gate=None, clip=False):
        """The input gradient of conv -> `bn` -> ReLU (inference) in one kernel call: the ReLU's step
        (keep dout where gate > 0, after dropping its negative part if `clip`) and the batch norm's scale
        are applied as the transposed convolution reads dout."""
        scale = bn.scale_shift(dout.dtype)[0] if bn is not None else None
        return kernels().conv2d_backward_input(dout, self.weight.astype(dout.dtype, copy=False),
                                               self._input_shape(dout), self.stride, self.padding, self.dilation,
                                               scale=scale, gate=gate, clip=clip)

    def apply(self, x, weight, bias=None):
        """The convolution with any weights (LRP rules call this with modified weights)."""
        weight = weight.astype(x.dtype, copy=False)
        bias = bias.astype(x.dtype, copy=False) if bias is not None else None
        return kernels().conv2d_forward(x, weight, bias, self.stride, self.padding, self.dilation)

    def apply_transposed(self, dout, weight):
        """Its transpose: the input gradient for the given weights."""
        weight = weight.astype(dout.dtype, copy=False)
        return kernels().conv2d_backward_input(dout, weight, self._input_shape(dout), self.stride, self.padding,
                                               self.dilation)

    def _input_shape(self, dout):
        """The shape of the input for a gradient of dout's batch size (DeepLIFT sends half its batch)."""
        return (dout.shape[0], *self.x.shape[1:])

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

    def forward(self, x):
        self.x = x
        return self.apply(x, self.weight, self.bias)

    def grad(self, dout):
        if self.training:
            self.dweight = dout.T @ self.x                      # no,ni->oi
            self.dbias = dout.sum(axis=0) if self.bias is not None else None
        return self.apply_transposed(dout, self.weight)

    def apply(self, x, weight, bias=None):
        weight = weight.astype(x.dtype, copy=False)
        bias = bias.astype(x.dtype, copy=False) if bias is not None else None
        k = kernels()
        if hasattr(k, "linear_forward"):
            # the CPU backend splits W over Numba's threads: BLAS's own threads would keep spinning after
            # x @ W^T and slow down the next Numba kernel by up to 2x
            return k.linear_forward(x, weight, bias)
        out = x @ weight.T
        return out + bias if bias is not None else out

    def apply_transposed(self, dout, weight):
        weight = weight.astype(dout.dtype, copy=False)
        k = kernels()
        if hasattr(k, "linear_backward_input"):
            return k.linear_backward_input(dout, weight)
        return dout @ weight

    def __repr__(self):
        return f"Linear({self.in_features}, {self.out_features})"


class ReLU(Layer):
    """out = max(x, 0); the gradient passes where x > 0."""

    def forward(self, x):
        self.x = x if self.keep_input else None      # the pre-activation, for DeepLIFT
        self.out = kernels().relu_forward(x)         # out > 0 exactly where x > 0; the next layer keeps it anyway
        return self.out

    @property
    def mask(self):
        """Where the gradient passes: x > 0."""
        return self.out > 0

    def grad(self, dout):
        return kernels().relu_backward(dout, self.out)       # dout where out > 0, else 0

    def take_fused(self, out):
        """Adopt `out`, computed by a convolution that fused this ReLU (nothing kept the pre-activation)."""
        self.x, self.out = None, out
        return self.record(out)


class MaxPool2d(Layer):
    """Max over each window; the gradient goes to the pixel that won (argmax stored in forward)."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride if stride is not None else kernel_size)
        self.padding, self.dilation, self.ceil_mode = _pair(padding), _pair(dilation), ceil_mode

    def forward(self, x):
        self.x_shape = x.shape
        self.x = x if self.keep_input else None
        out, self.argmax = kernels().maxpool2d_forward(x, self.kernel_size, self.stride, self.padding,
                                                       self.dilation, self.ceil_mode)
        return out

    def grad(self, dout):
        return kernels().maxpool2d_backward(dout, self.argmax, self.x_shape)

    def __repr__(self):
        return f"MaxPool2d(kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding})"


class AvgPool2d(Layer):
    """Mean over each window, zero padding included in the count (torch's default)."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride if stride is not None else kernel_size)
        self.padding = _pair(padding)

    def forward(self, x):
        self.x, self.x_shape = x, x.shape
        C = x.shape[1]
        return kernels().conv2d_forward(x.reshape(-1, 1, *x.shape[2:]), self._box(x.dtype), None,
                                        self.stride, self.padding, (1, 1)).reshape(x.shape[0], C, *self._hw(x))

    def grad(self, dout):
        _, C, H, W = self.x_shape
        N = dout.shape[0]
        d = dout.reshape(N * C, 1, *dout.shape[2:])
        return kernels().conv2d_backward_input(d, self._box(dout.dtype), (N * C, 1, H, W), self.stride,
                                               self.padding, (1, 1)).reshape(N, C, H, W)

    def _box(self, dtype):
        """Averaging is a convolution with a constant 1/(R*S) kernel on every channel separately."""
        R, S = self.kernel_size
        return np.full((1, 1, R, S), 1.0 / (R * S), dtype=dtype)

    def _hw(self, x):
        from minixai.kernels import conv_output_size
        return (conv_output_size(x.shape[2], self.kernel_size[0], self.stride[0], self.padding[0], 1),
                conv_output_size(x.shape[3], self.kernel_size[1], self.stride[1], self.padding[1], 1))


class AdaptiveAvgPool2d(Layer):
    """Mean over the windows [floor(i H / h), ceil((i+1) H / h)) that tile the input into an h x w grid."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = _pair(output_size)

    def _windows(self, H, W):
        h, w = self.output_size
        for i in range(h):
            for j in range(w):
                rows = slice(i * H // h, -(-(i + 1) * H // h))
                cols = slice(j * W // w, -(-(j + 1) * W // w))
                yield i, j, rows, cols

    def forward(self, x):
        xp = array_module(x)
        self.x, self.x_shape = x, x.shape
        out = xp.empty((*x.shape[:2], *self.output_size), dtype=x.dtype)
        for i, j, rows, cols in self._windows(*x.shape[2:]):
            out[:, :, i, j] = x[:, :, rows, cols].mean(axis=(2, 3))
        return out

    def grad(self, dout):
        xp = array_module(dout)
        dx = xp.zeros((dout.shape[0], *self.x_shape[1:]), dtype=dout.dtype)
        for i, j, rows, cols in self._windows(*self.x_shape[2:]):
            area = (rows.stop - rows.start) * (cols.stop - cols.start)
            dx[:, :, rows, cols] += dout[:, :, i, j][:, :, None, None] / area
        return dx

    def __repr__(self):
        return f"AdaptiveAvgPool2d({self.output_size})"


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W)."""

    def forward(self, x):
        self.x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def grad(self, dout):
        return dout.reshape(dout.shape[0], *self.x_shape[1:])


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
        scale = self.weight.astype(np.float64) / np.sqrt(self.running_var.astype(np.float64) + self.eps)
        shift = self.bias - self.running_mean * scale
        return scale.astype(dtype), shift.astype(dtype)

    def forward(self, x):
        self.x = x if self.training else None          # only the weight gradient needs it
        scale, shift = self.scale_shift(x.dtype)
        return _affine(x, scale, shift)

    def grad(self, dout):
        scale, shift = self.scale_shift(dout.dtype)
        if self.training:
            xhat = (self.x - self.running_mean[:, None, None]) / np.sqrt(self.running_var[:, None, None] + self.eps)
            self.dweight = (dout * xhat).sum(axis=(0, 2, 3))
            self.dbias = dout.sum(axis=(0, 2, 3))
        return _affine(dout, scale, np.zeros_like(shift))

    def __repr__(self):
        return f"BatchNorm2d({self.num_features})"


def _affine(x, scale, shift):
    """x * scale[c] + shift[c] over the channel axis 1 (one fused pass where the backend has one)."""
    k = kernels()
    if hasattr(k, "channel_affine") and x.ndim == 4:
        return k.channel_affine(x, scale, shift)
    return x * scale[:, None, None] + shift[:, None, None]


class Dropout(Layer):
    """Identity at inference. In training mode: zero each value with probability p, scale the rest by 1/(1-p)."""

    def __init__(self, p=0.5, seed=0):
        super().__init__()
        self.p = p
        self.rng = np.random.default_rng(seed)

    def forward(self, x):
        if not self.training or self.p == 0:
            self.keep = None
            return x
        self.keep = (self.rng.random(x.shape) >= self.p) / (1 - self.p)
        return x * self.keep.astype(x.dtype)

    def grad(self, dout):
        return dout if self.keep is None else dout * self.keep.astype(dout.dtype)

    def __repr__(self):
        return f"Dropout(p={self.p})"


class Add(Layer):
    """The residual join: out = a + b; the gradient is copied to both inputs."""

    def forward(self, a, b):
        self.inputs = (a, b) if self.keep_input else None   # for the proportional split of LRP
        return a + b

    def forward_relu(self, a, b):
        """max(a + b, 0) in one pass, for a ReLU that follows (`ReLU.take_fused` adopts the result)."""
        self.inputs = (a, b) if self.keep_input else None
        k = kernels()
        return k.add_relu(a, b) if hasattr(k, "add_relu") else array_module(a).maximum(a + b, 0)

    def grad(self, dout):
        return dout, dout


def forward_chain(layers, x):
    """Apply `layers` in order. In inference, Conv2d -> BatchNorm2d -> ReLU (or any prefix of it longer
    than one layer) runs as one fused kernel call unless an intermediate output is wanted: captured, or
    kept for DeepLIFT (the ReLU's input). Same numbers, one pass over the output instead of three."""
    i = 0
    while i < len(layers):
        conv, bn, relu = layers[i], None, None
        if isinstance(conv, Conv2d) and not conv.training and not conv.capture:
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if isinstance(nxt, BatchNorm2d) and not nxt.training:
                bn = nxt
            nxt = layers[i + 1 + (bn is not None)] if i + 1 + (bn is not None) < len(layers) else None
            if isinstance(nxt, ReLU) and not nxt.keep_input and not (bn is not None and bn.capture):
                relu = nxt
        if bn is None and relu is None:
            x = conv(x)
            i += 1
            continue
        x = conv.forward_fused(x, bn, relu is not None)
        if bn is not None:
            bn.x = None
            x = bn.record(x)
        if relu is not None:
            x = relu.take_fused(x)
        i += 1 + (bn is not None) + (relu is not None)
    return x


def plain_gate(relu):
    """The gradient's ReLU step for a fused backward (`Gradient.fused_gate`): keep dout where the ReLU's
    output is positive, no clipping; no ReLU: keep it everywhere."""
    return (relu.out if relu is not None else None), False


def backward_chain(layers, dout, rule=None):
    """Backward through `layers` (in forward order) from the last to the first. In inference, ReLU ->
    BatchNorm2d -> Conv2d (read backwards; either of the first two may be missing) is one kernel call
    when the rule allows it (the plain gradient, guided backprop, DeconvNet: `Gradient.fused_gate`), unless
    the gradient at the conv's or the batch norm's output is captured."""
    i = len(layers) - 1
    while i >= 0:
        relu = layers[i] if isinstance(layers[i], ReLU) else None
        j = i - (relu is not None)
        bn = layers[j] if j >= 0 and isinstance(layers[j], BatchNorm2d) else None
        k = j - (bn is not None)
        conv = layers[k] if k >= 0 and isinstance(layers[k], Conv2d) else None
        wanted = [layer for layer in (conv, bn) if layer is not None and layer.capture]
        gate = None
        if conv is not None and k < i and not wanted and not any(
                layer.training for layer in (conv, bn, relu) if layer is not None):
            gate = plain_gate(relu) if rule is None else (
                rule.fused_gate(relu) if hasattr(rule, "fused_gate") else None)
        if gate is None:
            dout = layers[i].backward(dout, rule)
            i -= 1
            continue
        if relu is not None and relu.capture:
            relu.captured_grad = dout
        dout = conv.grad_fused(dout, bn, *gate)
        i = k - 1
    return dout


class Sequential(Layer):
    """Layers applied one after the other; backward visits them in reverse."""

    def __init__(self, *layers, names=None):
        super().__init__()
        names = names or [str(i) for i in range(len(layers))]
        self.layers = dict(zip(names, layers))

    def children(self):
        return self.layers

    def forward(self, x):
        return forward_chain(list(self.layers.values()), x)

    def backward(self, dout, rule=None):
        if self.capture:
            self.captured_grad = dout
        return backward_chain(list(self.layers.values()), dout, rule)

    def __getitem__(self, key):
        return self.layers[str(key)]

    def __len__(self):
        return len(self.layers)

    def __repr__(self):
        inner = "\n".join(f"  ({k}): {v!r}".replace("\n", "\n  ") for k, v in self.layers.items())
        return f"Sequential(\n{inner}\n)"


def fold_batchnorm(conv, bn):
    """A Conv2d computing bn(conv(x)) in one step: w' = w * scale, b' = b * scale + shift."""
    scale, shift = bn.scale_shift(np.float64)
    folded = Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation)
    folded.weight = (conv.weight * scale[:, None, None, None]).astype(conv.weight.dtype)
    bias = conv.bias if conv.bias is not None else 0.0
    folded.bias = (bias * scale + shift).astype(conv.weight.dtype)
    folded.name = conv.name
    return folded
