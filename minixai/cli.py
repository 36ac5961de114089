"""The `minixai` command.

    minixai demo                                    the main job on the embedded shapes model, offline
    minixai explain IMAGE --model shapes --method saliency,ig,gradcam --out figure.png
    minixai weights list | fetch NAME | convert FILE.pth --arch NAME | info FILE

IMAGE is an image file, or `shapes:N` for the N-th image of the shapes world's held-out set.
Errors print one line and exit with status 1 (2 for a wrong command line).
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

DEMO_METHODS = "saliency,gxi,smoothgrad,ig,guided,gradcam,lrp,deeplift"


class CLIError(Exception):
    """A user error: shown as one line, exit status 1."""


def _load_model(name, weights):
    from minixai import models
    return models.load(name, weights="pretrained" if weights is None else weights)


def _load_image(source, spec):
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


def _methods(names):
    import minixai as mx
    chosen = [m.strip() for m in names.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in mx.METHODS]
    if unknown or not chosen:
        shown = ", ".join(repr(m) for m in unknown) or repr(names)
        raise CLIError(f"unknown method {shown}; valid: {', '.join(mx.METHODS)}")
    return chosen


def _target(label, spec, logits):
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
    options = {"smoothgrad": {"seed": seed, "progress": progress}, "ig": {"progress": progress}}
    return {name: mx.METHODS[name](model, x, target, **options.get(name, {})) for name in methods}


def _figure(x, maps, spec, title, path):
    from minixai import viz
    path.parent.mkdir(parents=True, exist_ok=True)
    viz.save(viz.panel(x, {k: v[0:1] for k, v in maps.items()}, spec=spec, title=title), path)
    return path


def cmd_explain(args):
    model = _load_model(args.model, args.weights)
    x, label = _load_image(args.image, model.spec)
    logits = model(x)
    target = _target(args.target, model.spec, logits)
    maps = explain(model, x, _methods(args.method), target, args.seed, progress=not args.json)
    names = model.spec.class_names
    title = f"{label}: explaining '{names[target] if target < len(names) else target}' ({args.model})"
    out = _figure(x, maps, model.spec, title, Path(args.out))
    report = {"image": label, "model": args.model, "target": target, "figure": str(out),
              "top5": [{"class": i, "name": n, "probability": p} for i, n, p in top_k(logits, names)]}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{label} ({args.model}), top-5 predictions:")
        for i, n, p in top_k(logits, names):
            print(f"  {p:7.2%}  {n} ({i})")
        print(f"explained class {target}; figure written to {out}")


def cmd_demo(args):
    import minixai as mx
    from minixai.data import shapes
    from minixai.train_shapes import TEST_SEED
    model = _load_model("shapes", None)
    batch = shapes.generate(args.n, seed=TEST_SEED)
    out_dir = Path(args.out)
    written, rows = [], []
    for i in range(args.n):
        x = batch.images[i:i + 1]
        logits = model(x)
        predicted = int(logits[0].argmax())
        maps = explain(model, x, _methods(DEMO_METHODS), predicted, args.seed, progress=False)
        title = (f"shapes:{i}  true: {batch.class_names[batch.labels[i]]}  "
                 f"predicted: {batch.class_names[predicted]} ({top_k(logits, batch.class_names, 1)[0][2]:.0%})")
        written.append(str(_figure(x, maps, model.spec, title, out_dir / f"demo_{i}.png")))
        rows.append({"image": f"shapes:{i}", "true": batch.class_names[batch.labels[i]],
                     "predicted": batch.class_names[predicted]})
        if not args.json:
            print(f"shapes:{i}: true {rows[-1]['true']:<8} predicted {rows[-1]['predicted']:<8} -> {written[-1]}")
    if args.json:
        print(json.dumps({"figures": written, "images": rows, "backend": mx.get_backend()}, indent=2))
    else:
        print(f"wrote {len(written)} figures to {out_dir.resolve()}")


def cmd_weights(args):
    from minixai import weights
    if args.action == "list":
        for ckpt in weights.list_known():
            print(f"{ckpt.name:<10} {ckpt.filename:<28} {ckpt.url}")
        return
    if args.action == "fetch":
        print(f"stored {weights.fetch(args.name)}")
    elif args.action == "convert":
        if not args.arch:
            raise CLIError("weights convert needs --arch (e.g. --arch resnet50)")
        out = args.out or Path(args.name).with_suffix(".npz")
        print(f"wrote {weights.convert(args.name, out, args.arch)}")
    elif args.action == "info":
        print(json.dumps(weights.info(args.name), indent=2, default=str))


def build_parser():
    parser = argparse.ArgumentParser(prog="minixai", description="Explain the decisions of CNNs.")
    parser.add_argument("--backend", choices=["reference", "numba", "numpy", "cupy"], help="kernels to use")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("explain", help="explain one image: top-5 predictions and a figure of attributions")
    p.add_argument("image", help="an image file, or shapes:N for the N-th held-out shapes image")
    p.add_argument("--model", default="shapes", help="shapes (default), vgg11, vgg16, alexnet, resnet18/34/50")
    p.add_argument("--weights", help="a .npz/.pth file (default: the model's pretrained weights)")
    p.add_argument("--method", default="saliency,ig,gradcam", help="comma-separated, from: " + DEMO_METHODS)
    p.add_argument("--target", help="class index or name (default: the predicted class)")
    p.add_argument("--out", default="explanation.png", help="where to write the figure")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=cmd_explain)

    p = sub.add_parser("demo", help="explain a few shapes-world images with every method, offline")
    p.add_argument("--out", default="minixai-demo", help="folder for the figures")
    p.add_argument("-n", type=int, default=3, help="number of images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_demo)

    p = sub.add_parser("weights", help="list, fetch, convert or inspect weights")
    p.add_argument("action", choices=["list", "fetch", "convert", "info"])
    p.add_argument("name", nargs="?", help="checkpoint name (fetch) or file (convert, info)")
    p.add_argument("--arch", help="architecture of the file to convert")
    p.add_argument("--out", type=Path, help="output .npz (convert)")
    p.set_defaults(run=cmd_weights)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command == "weights" and args.action != "list" and not args.name:
        print(f"minixai: error: weights {args.action} needs a name or file", file=sys.stderr)
        return 2
    try:
        import minixai as mx
        if args.backend:
            mx.set_backend(args.backend)
        args.run(args)
    except (CLIError, ValueError, TypeError, OSError, KeyError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"minixai: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("minixai: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
