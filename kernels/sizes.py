"""Output sizes of convolutions and pooling, the same formulas as torch's (shared by all kernels)."""


def conv_output_size(size, kernel, stride, padding, dilation):
    """H' = 1 + (H + 2P - D(K - 1) - 1) // S for one spatial axis."""
    out = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    if out < 1:
        raise ValueError(f"input size {size} is too small for kernel {kernel}, stride {stride}, "
                         f"padding {padding}, dilation {dilation}: the output would be empty")
    return out


def pool_output_size(size, kernel, stride, padding, dilation=1, ceil_mode=False):
    """Pooling output size; with ceil_mode the last window may hang over the edge but must start
    inside the input or its left padding (torch's rule)."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if span < 0:
        raise ValueError(f"input size {size} is smaller than the pooling window {kernel}")
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out

