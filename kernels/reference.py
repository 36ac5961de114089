"""Naive convolution and pooling: loops that read like the definitions.

This is the teaching version and the oracle of the tests; it is slow, use it on tiny inputs.
Signatures and conventions: see ``minixai.kernels``.
"""
import numpy as np

from .sizes import conv_output_size, pool_output_size


def _window(r_out, stride, dilation, kernel):
    """Input positions read by output position r_out (in padded coordinates)."""
    start = r_out * stride
    return slice(start, start + dilation * (kernel - 1) + 1, dilation)


def conv2d_forward(x, w, b, stride, padding, dilation, scale=None, relu=False, residual=None):
    """out[n, k, i, j] = b[k] + sum_{c, r, s} w[k, c, r, s] * xpad[n, c, i*S + r*D, j*S + s*D];
    with `scale` the sum is multiplied by scale[k] first, `residual` is added next, and `relu` clips the
    result at 0."""
    N, C, H, W = x.shape
    K, _, R, S = w.shape
    OH = conv_output_size(H, R, stride[0], padding[0], dilation[0])
    OW = conv_output_size(W, S, stride[1], padding[1], dilation[1])
    xpad = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    out = np.zeros((N, K, OH, OW), dtype=x.dtype)
    for n in range(N):
        for k in range(K):
            for i in range(OH):
                for j in range(OW):
                    patch = xpad[n, :, _window(i, stride[0], dilation[0], R), _window(j, stride[1], dilation[1], S)]
                    total = np.sum(w[k] * patch) * (scale[k] if scale is not None else 1)
                    out[n, k, i, j] = total + (b[k] if b is not None else 0)
    if residual is not None:
        out = out + residual
    return np.maximum(out, 0) if relu else out



def conv2d_backward_input(dout, w, x_shape, stride, padding, dilation, scale=None, gate=None, clip=False,
                          residual=None):
    """dx = d out / d x contracted with dout: every output spreads w * dout[n, k, i, j] back over its window
    (plus `residual`, if given)."""
    dout = gated_gradient(dout, scale, gate, clip)
    N, C, H, W = x_shape
    K, _, R, S = w.shape
    _, _, OH, OW = dout.shape
    dxpad = np.zeros((N, C, H + 2 * padding[0], W + 2 * padding[1]), dtype=dout.dtype)
    for n in range(N):
        for k in range(K):
            for i in range(OH):
                for j in range(OW):
                    rows, cols = _window(i, stride[0], dilation[0], R), _window(j, stride[1], dilation[1], S)
                    dxpad[n, :, rows, cols] += w[k] * dout[n, k, i, j]
    dx = dxpad[:, :, padding[0]:padding[0] + H, padding[1]:padding[1] + W]
    return dx if residual is None else dx + residual


def conv2d_backward_weight(dout, x, w_shape, stride, padding, dilation):
    """dw[k, c, r, s] = sum_{n, i, j} dout[n, k, i, j] * xpad[n, c, i*S + r*D, j*S + s*D]."""
    K, C, R, S = w_shape
    _, _, OH, OW = dout.shape
    xpad = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    dw = np.zeros(w_shape, dtype=dout.dtype)
    for n in range(x.shape[0]):
        for k in range(K):
            for i in range(OH):
                for j in range(OW):
                    patch = xpad[n, :, _window(i, stride[0], dilation[0], R), _window(j, stride[1], dilation[1], S)]
                    dw[k] += dout[n, k, i, j] * patch
    return dw


def maxpool2d_forward(x, kernel, stride, padding, dilation, ceil_mode):
    """out = max over each window (padding counts as -inf); argmax = flat index h*W + w of the winner."""
    N, C, H, W = x.shape
    OH = pool_output_size(H, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    OW = pool_output_size(W, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    out = np.empty((N, C, OH, OW), dtype=x.dtype)
    argmax = np.empty((N, C, OH, OW), dtype=np.int64)
    for n in range(N):
        for c in range(C):
            for i in range(OH):
                for j in range(OW):
                    best, best_index = -np.inf, -1
                    for r in range(kernel[0]):
                        for s in range(kernel[1]):
                            h = i * stride[0] - padding[0] + r * dilation[0]
                            v = j * stride[1] - padding[1] + s * dilation[1]
                            if 0 <= h < H and 0 <= v < W:
                                value = x[n, c, h, v]
                                if value > best or best_index < 0 or np.isnan(value):
                                    best, best_index = value, h * W + v
                                    if np.isnan(value):
                                        break
                        if np.isnan(best):
                            break
                    out[n, c, i, j] = best
                    argmax[n, c, i, j] = best_index
    return out, argmax


def maxpool2d_backward(dout, argmax, x_shape):
    """Each output's gradient goes to the one input pixel that won its window (none if the window lay
    wholly in the padding: argmax -1)."""
    N, C, H, W = x_shape
    dx = np.zeros((N, C, H * W), dtype=dout.dtype)
    for n in range(N):
        for c in range(C):
            for index, g in zip(argmax[n, c].ravel(), dout[n, c].ravel()):
                if index >= 0:
                    dx[n, c, index] += g
    return dx.reshape(x_shape)


def relu_forward(x):
    """out = max(x, 0)."""
    return np.maximum(x, 0)


def relu_backward(dout, out):
    """dx = dout where the ReLU passed its input (out > 0), else 0."""
    return np.where(out > 0, dout, 0).astype(dout.dtype, copy=False)


def gated_gradient(dout, scale, gate, clip=False):
    """dout * scale[k] where gate > 0, else 0 (scale: a batch norm's, gate: a ReLU's output; either None);
    with `clip` dout's negative part is dropped first (the ReLU of guided backprop and DeconvNet)."""
    if clip:
        dout = dout * (dout > 0)
    if scale is not None:
        dout = dout * scale[:, None, None]
    if gate is not None:
        dout = dout * (gate > 0)
    return dout


def linear_forward(x, w, b):
    """out[n, o] = b[o] + sum_i w[o, i] * x[n, i]."""
    out = np.einsum("oi,ni->no", w, x)
    return out + b if b is not None else out


def linear_backward_input(dout, w):
    """dx[n, i] = sum_o dout[n, o] * w[o, i]."""
    return np.einsum("no,oi->ni", dout, w)


def channel_affine(x, scale, shift):
    """out[n, c, i, j] = x[n, c, i, j] * scale[c] + shift[c] (an inference batch norm)."""
    return x * scale[:, None, None] + shift[:, None, None]


def add_relu(a, b):
    """max(a + b, 0): a residual join and the ReLU after it."""
    return np.maximum(a + b, 0)


def add(a, b):
    """a + b: where a residual branch's gradient rejoins the main path's."""
    return a + b
