"""minixai: explain convolutional neural networks with an autograd-free NumPy engine."""
from . import composites, data, images, layers, rules
from .backend import get_backend, set_backend, use_backend
from .counterfactual import counterfactual
from .features import maximize_filter, maximize_filters
from .fusion import unfused
from .methods import (METHODS, deconvnet, deeplift, gradcam, gradient_x_input, guided_backprop, guided_gradcam,
                      integrated_gradients, lrp, saliency, smoothgrad, vargrad)
from .methods import ablationcam, eigencam, gradcam_plus_plus, hirescam, layercam, scorecam, xgradcam
from .methods import deeplift_shap, gradient_shap, kernel_shap, lime, occlusion, rise, segments
from .model import Model
from .spec import InputSpec
from .summit import summit
from .trace import trace

__version__ = "0.1.0"


def __getattr__(name):
    """`mx.viz`, `mx.models`, `mx.weights` and `mx.evaluation` load on first use: explaining needs neither
    matplotlib nor the model zoo nor the metrics. (A plain `from . import viz` here would call this function
    again, before the import.)"""
    if name in ("viz", "models", "weights", "evaluation"):
        import importlib
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'minixai' has no attribute {name!r}")


__all__ = ["layers", "data", "viz", "models", "weights", "evaluation", "rules", "composites", "images", "Model",
           "InputSpec",
           "get_backend", "set_backend", "use_backend", "unfused", "METHODS", "saliency", "gradient_x_input",
           "smoothgrad", "vargrad", "integrated_gradients", "guided_backprop", "deconvnet", "gradcam",
           "guided_gradcam", "lrp", "deeplift", "gradcam_plus_plus", "xgradcam", "hirescam", "layercam", "scorecam",
           "ablationcam", "eigencam", "occlusion", "rise", "segments", "lime", "kernel_shap", "gradient_shap",
           "deeplift_shap", "summit", "trace", "counterfactual", "maximize_filter", "maximize_filters"]
