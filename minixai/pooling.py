"""Pooling layers: max, average and adaptive average (same conventions as ``minixai.layers``)."""
from .backend import array_module, kernels
from .kernels.sizes import conv_output_size
from .layers import Layer, _pair


class MaxPool2d(Layer):
    """Max over each window; the gradient goes to the pixel that won (its index kept by the forward)."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride if stride is not None else kernel_size)
        self.padding, self.dilation, self.ceil_mode = _pair(padding), _pair(dilation), ceil_mode

    def forward(self, ctx, x):
        ctx.x_shape = x.shape
        if ctx.keep_inputs:
            ctx.x = x                      # for DeepLIFT's max-pool rule
        out, ctx.argmax = kernels(x).maxpool2d_forward(x, self.kernel_size, self.stride, self.padding,
                                                      self.dilation, self.ceil_mode)
        return out

    def grad(self, ctx, dout):
        return self.unpool(dout, ctx.argmax, ctx.x_shape)

    def unpool(self, dout, argmax, x_shape):
        """dx of shape x_shape: each output's dout added to the input pixel argmax names (windows may share one)."""
        return kernels(dout).maxpool2d_backward(dout, argmax, x_shape)

    def __repr__(self):
        return f"MaxPool2d(kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding})"


class AvgPool2d(Layer):
    """Mean over each window, zero padding included in the count (torch's default)."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride if stride is not None else kernel_size)
        self.padding = _pair(padding)

    def forward(self, ctx, x):
        ctx.x_shape = x.shape
        if ctx.keep_inputs:
            ctx.x = x                      # for LRP's proportional split
        N, C, H, W = x.shape
        OH, OW = (conv_output_size(size, k, s, p, 1)
                  for size, k, s, p in zip((H, W), self.kernel_size, self.stride, self.padding))
        out = kernels(x).conv2d_forward(x.reshape(N * C, 1, H, W), self._box(x), None, self.stride,
                                       self.padding, (1, 1))
        return out.reshape(N, C, OH, OW)

    def grad(self, ctx, dout):
        _, C, H, W = ctx.x_shape
        N = dout.shape[0]
        d = dout.reshape(N * C, 1, *dout.shape[2:])
        return kernels(d).conv2d_backward_input(d, self._box(dout), (N * C, 1, H, W), self.stride,
                                               self.padding, (1, 1)).reshape(N, C, H, W)

    def _box(self, like):
        """Averaging is a convolution with a constant 1/(R*S) kernel on every channel separately (made on
        the device of `like`, in its dtype)."""
        R, S = self.kernel_size
        return array_module(like).full((1, 1, R, S), 1.0 / (R * S), dtype=like.dtype)

    def __repr__(self):
        return f"AvgPool2d(kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding})"


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

    def forward(self, ctx, x):
        xp = array_module(x)
        ctx.x_shape = x.shape
        if ctx.keep_inputs:
            ctx.x = x
        out = xp.empty((*x.shape[:2], *self.output_size), dtype=x.dtype)
        for i, j, rows, cols in self._windows(*x.shape[2:]):
            out[:, :, i, j] = x[:, :, rows, cols].mean(axis=(2, 3))
        return out

    def grad(self, ctx, dout):
        xp = array_module(dout)
        dx = xp.zeros((dout.shape[0], *ctx.x_shape[1:]), dtype=dout.dtype)
        for i, j, rows, cols in self._windows(*ctx.x_shape[2:]):
            area = (rows.stop - rows.start) * (cols.stop - cols.start)
            dx[:, :, rows, cols] += dout[:, :, i, j][:, :, None, None] / area
        return dx

    def __repr__(self):
        return f"AdaptiveAvgPool2d({self.output_size})"
