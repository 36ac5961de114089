"""Vectorised kernels written for any array module (NumPy here, CuPy on a GPU).

The convolution is im2col and one matrix product: the padded input, shifted by (r*D, s*D) and strided by S for
every kernel tap (r, s), is copied into the rows of one (C*R*S, H'W') matrix per image, and

    out[n] = b + W (K, C*R*S) @ cols[n] (C*R*S, H'W')                     # kq,nqL->nkL

so each layer is one large product (on a GPU, one cuBLAS call instead of one per tap, and a depth of C*R*S
instead of C keeps it busy). Images go in chunks whose im2col matrices fit ``COLUMNS_BYTES``; a 1x1
stride-1 convolution needs no copy at all. Its transpose, the input gradient, is the product with W^T and a
col2im: each tap's rows are added back at their shifted positions. Signatures: see ``minixai.kernels``.
"""
from minixai.backend import array_module

from .reference import gated_gradient
from .sizes import conv_output_size, pool_output_size

COLUMNS_BYTES = 1 << 29          # im2col matrices of one chunk of images: 512 MiB at most


def _pad(x, padding, value=0.0):
    xp = array_module(x)
    ph, pw = padding
    return xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def _shift(xpad, r, s, out_hw, stride, dilation):
    """The strided view xpad[:, :, r*D + i*S, s*D + j*S] for all output positions (i, j)."""
    (OH, OW), (sh, sw), (dh, dw) = out_hw, stride, dilation
    return xpad[:, :, r * dh: r * dh + sh * (OH - 1) + 1: sh, s * dw: s * dw + sw * (OW - 1) + 1: sw]


def _out_hw(x_shape, w_shape, stride, padding, dilation):
    return (conv_output_size(x_shape[2], w_shape[2], stride[0], padding[0], dilation[0]),
            conv_output_size(x_shape[3], w_shape[3], stride[1], padding[1], dilation[1]))


def _chunks(n_images, image_bytes):
    """Slices of the batch whose im2col matrices take at most COLUMNS_BYTES (one image at least)."""
    per = max(1, COLUMNS_BYTES // max(image_bytes, 1))
    return [slice(i, min(i + per, n_images)) for i in range(0, n_images, per)]


def _direct(w_shape, stride, padding):
    """A 1x1 stride-1 convolution without padding is a product with the input itself: no im2col."""
    return tuple(w_shape[2:]) == (1, 1) and tuple(stride) == (1, 1) and tuple(padding) == (0, 0)


def _im2col(xpad, kernel, out_hw, stride, dilation):
    """cols (n, C*R*S, OH*OW): row (c, r, s) holds the tap (r, s) of channel c at every output position."""
    xp = array_module(xpad)
    n, C = xpad.shape[:2]
    R, S = kernel
    cols = xp.empty((n, C, R * S, *out_hw), dtype=xpad.dtype)
    for r in range(R):
        for s in range(S):
            cols[:, :, r * S + s] = _shift(xpad, r, s, out_hw, stride, dilation)
    return cols.reshape(n, C * R * S, out_hw[0] * out_hw[1])


def conv2d_forward(x, w, b, stride, padding, dilation, scale=None, relu=False, residual=None):
    xp = array_module(x)
    N, C = x.shape[:2]
    K, _, R, S = w.shape
    OH, OW = _out_hw(x.shape, w.shape, stride, padding, dilation)
    wmat = w.reshape(K, C * R * S)
    out = xp.empty((N, K, OH * OW), dtype=x.dtype)
    if _direct(w.shape, stride, padding):
        out[...] = wmat @ x.reshape(N, C, OH * OW)                              # kc,ncL->nkL
    else:
        for part in _chunks(N, C * R * S * OH * OW * x.dtype.itemsize):
            cols = _im2col(_pad(x[part], padding), (R, S), (OH, OW), stride, dilation)
            out[part] = wmat @ cols                                             # kq,nqL->nkL
    if scale is not None:
        out *= scale[None, :, None]
    if b is not None:
        out += b[None, :, None]
    if residual is not None:
        out += residual.reshape(N, K, OH * OW)
    if relu:
        xp.maximum(out, 0, out=out)
    return out.reshape(N, K, OH, OW)


def conv2d_backward_input(dout, w, x_shape, stride, padding, dilation, scale=None, gate=None, clip=False,
                          residual=None):
    dx = _backward_input(gated_gradient(dout, scale, gate, clip), w, x_shape, stride, padding, dilation)
    return dx if residual is None else dx + residual


def _backward_input(dout, w, x_shape, stride, padding, dilation):
    xp = array_module(dout)
    N, C, H, W = x_shape
    K, _, R, S = w.shape
    _, _, OH, OW = dout.shape
    wt = w.reshape(K, C * R * S).T                                              # (C*R*S, K)
    d = dout.reshape(N, K, OH * OW)
    if _direct(w.shape, stride, padding):
        return xp.ascontiguousarray((wt @ d).reshape(N, C, H, W))               # qk,nkL->nqL
    dxpad = xp.zeros((N, C, H + 2 * padding[0], W + 2 * padding[1]), dtype=dout.dtype)
    for part in _chunks(N, C * R * S * OH * OW * dout.dtype.itemsize):
        dcols = (wt @ d[part]).reshape(-1, C, R * S, OH, OW)                    # the transposed product
        for r in range(R):
            for s in range(S):
                # col2im: every output sends W[:, :, r, s]^T dout back to the pixel its tap read
                _shift(dxpad[part], r, s, (OH, OW), stride, dilation)[...] += dcols[:, :, r * S + s]
    return xp.ascontiguousarray(dxpad[:, :, padding[0]:padding[0] + H, padding[1]:padding[1] + W])


def conv2d_backward_weight(dout, x, w_shape, stride, padding, dilation):
    xp = array_module(dout)
    K, C, R, S = w_shape
    N, _, OH, OW = dout.shape
    xpad = _pad(x, padding)
    d = dout.reshape(N, K, OH * OW)
    dw = xp.empty(w_shape, dtype=dout.dtype)
    for r in range(R):
        for s in range(S):
            shifted = _shift(xpad, r, s, (OH, OW), stride, dilation).reshape(N, C, OH * OW)
            dw[:, :, r, s] = xp.tensordot(d, shifted, axes=([0, 2], [0, 2]))   # nkL,ncL->kc
    return dw


def maxpool2d_forward(x, kernel, stride, padding, dilation, ceil_mode):
    xp = array_module(x)
    N, C, H, W = x.shape
    OH = pool_output_size(H, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    OW = pool_output_size(W, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    # pad enough on the bottom/right for ceil_mode windows that hang over the edge
    extra_h = max(0, (OH - 1) * stride[0] + dilation[0] * (kernel[0] - 1) + 1 - (H + 2 * padding[0]))
    extra_w = max(0, (OW - 1) * stride[1] + dilation[1] * (kernel[1] - 1) + 1 - (W + 2 * padding[1]))
    xpad = xp.pad(x, ((0, 0), (0, 0), (padding[0], padding[0] + extra_h), (padding[1], padding[1] + extra_w)),
                  constant_values=-xp.inf)
    taps = xp.stack([_shift(xpad, r, s, (OH, OW), stride, dilation)
                     for r in range(kernel[0]) for s in range(kernel[1])])          # (RS, N, C, OH, OW)
    tap = xp.argmax(taps, axis=0)                       # first maximum wins ties; a NaN wins outright
    out = xp.take_along_axis(taps, tap[None], axis=0)[0]
    r, s = tap // kernel[1], tap % kernel[1]
    h = xp.arange(OH)[:, None] * stride[0] - padding[0] + r * dilation[0]
    v = xp.arange(OW)[None, :] * stride[1] - padding[1] + s * dilation[1]
    inside = (h >= 0) & (h < H) & (v >= 0) & (v < W)    # False only for a window wholly in the padding
    return out, xp.where(inside, h * W + v, -1).astype(xp.int64)


def maxpool2d_backward(dout, argmax, x_shape):
    xp = array_module(dout)
    N, C, H, W = x_shape
    dx = xp.zeros((N * C, H * W), dtype=dout.dtype)
    rows = xp.arange(N * C)[:, None]
    flat_index = argmax.reshape(N * C, -1)
    flat_dout = dout.reshape(N * C, -1) * (flat_index >= 0)    # argmax -1 (all padding): no pixel to send to
    flat_index = xp.maximum(flat_index, 0)
    xp.add.at(dx, (rows, flat_index), flat_dout)       # windows may overlap: accumulate (CuPy has add.at too)
    return dx.reshape(x_shape)


def relu_forward(x):
    return array_module(x).maximum(x, 0)


def relu_backward(dout, out):
    xp = array_module(dout)
    return xp.where(out > 0, dout, 0).astype(dout.dtype, copy=False)


def linear_forward(x, w, b):
    out = x @ w.T                                                             # ni,oi->no
    return out + b if b is not None else out


def linear_backward_input(dout, w):
    return dout @ w                                                           # no,oi->ni


def channel_affine(x, scale, shift):
    return x * scale[:, None, None] + shift[:, None, None]


def add_relu(a, b):
    return array_module(a).maximum(a + b, 0)


def add(a, b):
    return a + b
