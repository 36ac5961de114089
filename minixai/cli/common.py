"""What the subcommands share: loading a model and an image, choosing methods and the target class, the
figure of maps, and the one error type that the command line prints as one line."""
from pathlib import Path

import numpy as np

DEMO_METHODS = ("saliency,gxi,smoothgrad,ig,guided,gradcam,lrp,deeplift,"
                "occlusion,rise,lime,kernel_shap,gradient_shap,deeplift_shap")


class CLIError(Exception):
    """A user error: shown as one line, exit status 1."""


def load_model(name, weights):
    from minixai import models
    return models.load(name, weights="pretrained" if weights is None else weights)


def load_image(source, spec):
    import minixai as mx
    if source.startswith("shapes:"):
        from minixai.data import shapes
        from minixai.train_shapes import TEST_SEED
        try:
            index = int(source.split(":", 1)[1])
        except ValueError:
            raise CLIError(f"{source!r}: expected shapes:N with an integer N") from None
        if not 0 <= index < 10000:
            raise CLIError(f"{source!r}: N must be in [0, 10000)")
        batch = shapes.generate(1, seed=TEST_SEED, start=index)
        return batch.images, f"shapes:{index} ({batch.class_names[batch.labels[0]]})"
    if not Path(source).is_file():
        raise CLIError(f"image not found: {source}")
    return mx.images.load(source, spec=spec), Path(source).name


def methods(names):
    import minixai as mx
    chosen = [m.strip() for m in names.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in mx.METHODS]
    if unknown or not chosen:
        shown = ", ".join(repr(m) for m in unknown) or repr(names)
        raise CLIError(f"unknown method {shown}; valid: {', '.join(mx.METHODS)}")
    return chosen


def target_class(label, spec, logits):
    if label is None:
        return int(logits[0].argmax())
    try:
        index = spec.class_index(int(label) if label.lstrip("-").isdigit() else label)
    except ValueError as e:
        raise CLIError(str(e)) from None
    if not 0 <= index < logits.shape[1]:
        raise CLIError(f"class {label} is out of range: the model has {logits.shape[1]} classes")
    return index


def top_k(logits, class_names, k=5):
    """[(class index, name, probability)] of the k most likely classes of the first image."""
    z = logits[0] - logits[0].max()
    p = np.exp(z) / np.exp(z).sum()
    order = np.argsort(-p)[:k]
    return [(int(i), class_names[i] if i < len(class_names) else str(i), float(p[i])) for i in order]


def explain(model, x, methods, target, seed=0, progress=True):
    """{method name: map for the first image} for the target class."""
    import minixai as mx
    options = {"smoothgrad": {"seed": seed, "progress": progress}, "ig": {"progress": progress},
               **perturbation_options(x, seed, progress)}
    options.update({name: {"progress": progress} for name in ("scorecam", "ablationcam")})
    return {name: mx.METHODS[name](model, x, target, **options.get(name, {})) for name in methods}


def perturbation_options(x, seed, progress):
    """Budgets for the perturbation methods that keep a 224-px ImageNet model near a minute each: occlusion
    with windows of 1/8 of the image side (8 px at least: the function's default on the 64-px shapes images)
    and half that stride, 225 positions; RISE with 1000 masks; LIME and KernelSHAP with 1000 coalitions
    (KernelSHAP sampled, on about 50 superpixels)."""
    C, H, W = x.shape[1:]
    window = tuple(min(size, max(8, size // 8)) for size in (H, W))
    stride = tuple(max(1, w // 2) for w in window)
    return {"occlusion": {"window": (C, *window), "stride": (C, *stride), "progress": progress},
            "rise": {"n": 1000, "seed": seed, "progress": progress},
            "lime": {"n": 1000, "seed": seed, "progress": progress},
            "kernel_shap": {"n": 1000, "seed": seed, "progress": progress},
            "gradient_shap": {"seed": seed, "progress": progress},
            "deeplift_shap": {"progress": progress}}


def figure(x, maps, spec, title, path):
    """Draw the maps and save them; returns the path really written (see output_path)."""
    from minixai import viz
    path = output_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    viz.save(viz.panel(x, {k: v[0:1] for k, v in maps.items()}, spec=spec, title=title), path)
    return path


def output_path(out):
    """The file a figure saved as `out` really lands in: matplotlib adds its default format's suffix to a
    name without one (`a` -> `a.png`); a suffix matplotlib cannot write is refused with the valid ones."""
    import matplotlib
    from matplotlib.backend_bases import FigureCanvasBase
    path = Path(out)
    if path.is_dir():
        raise CLIError(f"--out {out} is a directory; give a file name such as {path / 'figure.png'}")
    suffix = path.suffix.lower().lstrip(".")
    if not suffix:
        return path.with_name(f"{path.name}.{matplotlib.rcParams['savefig.format']}")
    formats = FigureCanvasBase.get_supported_filetypes()
    if suffix not in formats:
        raise CLIError(f"--out {out}: unknown figure format '.{suffix}'; valid: {', '.join(sorted(formats))}")
    return path


def model_options(p):
    p.add_argument("--model", default="shapes", help="shapes (default), vgg11, vgg16, alexnet, resnet18/34/50")
    p.add_argument("--weights", help="a .npz/.pth file (default: the model's pretrained weights)")


def held_out_shapes(model_name, count, why, instead):
    """The first `count` held-out images of the shapes world, for the commands that need the world itself
    (`why`: what for; `instead`: what to do for another model)."""
    if model_name != "shapes":
        raise CLIError(f"{why}, so only --model shapes works here; for {model_name}, {instead}")
    if count <= 0:
        raise CLIError(f"--images must be a positive integer, got {count}")
    from minixai.data import shapes
    from minixai.train_shapes import TEST_SEED
    return shapes.generate(count, seed=TEST_SEED)
