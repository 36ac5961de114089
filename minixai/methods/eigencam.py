"""Eigen-CAM (Muhammad & Yeasin 2020): the first principal component of a layer's activations.

    V   = A reshaped to (h*w, K), each column centred (minus its mean over the positions)
    V   = U S W^T                       (singular value decomposition)
    L   = ReLU(V w_1)                   projection on the first right-singular vector, back to (h, w)

No gradient and no class: the map shows what dominates the layer's activations, whatever the target.
"""
import numpy as np

from ..backend import array_module, to_device, to_host
from ..kernels.cpu_blas import single_threaded_blas
from ._cam import activations, finish, setup
from ._common import returns_like_input


def first_component(A_n):
    """A_n (K, h, w) -> (h, w): the centred activations projected on their first principal direction. The
    sign of a singular vector is arbitrary; this is the one LAPACK's gesdd returns (numpy.linalg.svd), as in
    pytorch-grad-cam, so the ReLU that follows may keep the smaller half of the map. The small SVD runs on
    the CPU for activations on a GPU too (copied there and back): the same sign on every device."""
    K, h, w = A_n.shape
    V = A_n.reshape(K, h * w).T
    V = V - V.mean(axis=0)
    with single_threaded_blas():           # a small SVD: 0.75 s on numpy's two OpenBLAS threads here, 8 ms on one
        _, _, Wt = np.linalg.svd(to_host(V), full_matrices=False)
    return (V @ to_device(Wt[0], like=V)).reshape(h, w)


@returns_like_input
def eigencam(model, x, target=None, layer=None, upsample=True):
    """Eigen-CAM map (N, H, W), (N, h, w) with upsample=False. `target` is checked but does not change the map
    (the method is class-agnostic). pytorch-grad-cam's EigenCAM gives the same map before its rescaling,
    in float32."""
    x, _, layer = setup(model, x, target, layer, "Eigen-CAM")
    A = activations(model, x, layer, "Eigen-CAM")
    cams = array_module(A).stack([first_component(A[n]) for n in range(A.shape[0])])
    return finish(cams, x, upsample)
