"""Attribution methods: f(model, x, target, **options) -> array shaped like x (the CAMs: (N, H, W))."""
from .backprop import deconvnet, guided_backprop
from .cam import gradcam, guided_gradcam
from .cam_gradients import gradcam_plus_plus, hirescam, layercam, xgradcam
from .cam_perturbation import ablationcam, scorecam
from .eigencam import eigencam
from .gradients import gradient_x_input, saliency, smoothgrad, vargrad
from .integrated import integrated_gradients
from .occlusion import occlusion
from .relevance import deeplift, lrp
from .rise import rise
from .segments import segments
from .shap_gradients import deeplift_shap, gradient_shap
from .shapley import kernel_shap
from .surrogate import lime

METHODS = {
    "saliency": saliency,
    "gxi": gradient_x_input,
    "smoothgrad": smoothgrad,
    "ig": integrated_gradients,
    "guided": guided_backprop,
    "deconvnet": deconvnet,
    "gradcam": gradcam,
    "guided_gradcam": guided_gradcam,
    "gradcam++": gradcam_plus_plus,
    "xgradcam": xgradcam,
    "hirescam": hirescam,
    "layercam": layercam,
    "scorecam": scorecam,
    "ablationcam": ablationcam,
    "eigencam": eigencam,
    "lrp": lrp,
    "deeplift": deeplift,
    "occlusion": occlusion,
    "rise": rise,
    "lime": lime,
    "kernel_shap": kernel_shap,
    "gradient_shap": gradient_shap,
    "deeplift_shap": deeplift_shap,
}

__all__ = ["METHODS", "saliency", "gradient_x_input", "smoothgrad", "vargrad", "integrated_gradients",
           "guided_backprop", "deconvnet", "gradcam", "guided_gradcam", "lrp", "deeplift",
           "gradcam_plus_plus", "xgradcam", "hirescam", "layercam", "scorecam", "ablationcam", "eigencam",
           "occlusion", "rise", "segments", "lime", "kernel_shap", "gradient_shap", "deeplift_shap"]
