"""The `minixai` command.

    minixai demo                                    the main job on the embedded shapes model, offline
    minixai explain IMAGE --model shapes --method saliency,ig,gradcam --out figure.png
    minixai weights list | fetch NAME | convert FILE.pth --arch NAME | info FILE
    minixai counterfactual IMAGE --model shapes --target CLASS --lr 0.01 --steps 500 --out cf.png
    minixai filters --model shapes --layer features.6 --count 64 --steps 30 --out filters.png
    minixai summit --layers features.4,features.7,features.10 --clusters 8 --steps 16 --images 32 --out graph.html

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


def cmd_summit(args):
    import minixai as mx
    from minixai import viz
    from minixai.data import shapes
    from minixai.train_shapes import TEST_SEED
    if args.model != "shapes":
        raise CLIError(f"summit runs on the shapes world's images, so only --model shapes works here; "
                       f"for {args.model}, call mx.summit(model, images, layers) from Python")
    if args.images <= 0:
        raise CLIError(f"--images must be a positive integer, got {args.images}")
    out = Path(args.out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise CLIError(f"--out must be an .html file (the drawing goes next to it as .png), got {out}")
    model = _load_model("shapes", None)
    batch = shapes.generate(args.images, seed=TEST_SEED)
    layers = [name.strip() for name in args.layers.split(",") if name.strip()]
    graph = mx.summit(model, batch.images, layers, clusters=args.clusters, steps=args.steps, seed=args.seed,
                      progress=not args.json)
    graph.to_html(out, images=batch.pixels)
    png = viz.save(graph.plot(), out.with_suffix(".png"))
    gaps = [abs(n.delta) for n in graph.nodes if n.delta is not None]
    strongest = graph.prune(top_k=5).edges
    if args.json:
        print(json.dumps({"html": str(out), "png": str(png), "max_completeness_gap": max(gaps, default=0.0),
                          "graph": json.loads(graph.to_json())}, indent=2))
        return
    print(f"SUMMIT graph of {args.images} held-out shapes images: {len(graph.nodes)} nodes in "
          f"{len(layers)} layers, {len(graph.edges)} edges (largest completeness gap {max(gaps, default=0.0):.2g})")
    for e in sorted(strongest, key=lambda e: -abs(e.weight)):
        print(f"  {e.source:>16} -> {e.target:<16} w = {e.weight:+.4g}")
    print(f"wrote {out} and {png}")


def cmd_counterfactual(args):
    import minixai as mx
    from minixai import viz
    from minixai.counterfactual import compare_figure
    if args.method not in mx.METHODS:
        raise CLIError(f"unknown method {args.method!r}; valid: {', '.join(mx.METHODS)}")
    model = _load_model(args.model, args.weights)
    x, label = _load_image(args.image, model.spec)
    target = _target(args.target, model.spec, model(x))
    result = mx.counterfactual(model, x, target, lr=args.lr, steps=args.steps, threshold=args.threshold,
                               progress=not args.json)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    viz.save(compare_figure(model, result, method=args.method), out)
    names = model.spec.class_names
    report = {"image": label, "model": args.model, "target": target, "target_name": names[target],
              "success": result.success, "steps": result.steps,
              "probability": float(result.probabilities[target]), "l1_distance": result.distance["l1"],
              "l2_distance": result.distance["l2"], "figure": str(out)}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{label} -> {names[target]} ({args.model}, lr {args.lr:g}): "
          f"{'success' if result.success else 'NOT reached'} after {result.steps} steps")
    print(f"  p({names[target]}) = {report['probability']:.2%}  (threshold {args.threshold:g})")
    print(f"  L1 distance: mean |change| = {result.distance['l1']:.4f} of the pixel range "
          f"(= {255 * result.distance['l1']:.2f} / 255)")
    print(f"figure written to {out}")


def cmd_filters(args):
    import minixai as mx
    from minixai import viz
    if args.count <= 0:
        raise CLIError(f"--count must be a positive integer, got {args.count}")
    model = _load_model(args.model, args.weights)
    results = mx.maximize_filters(model, args.layer, range(args.count), steps=args.steps, lr=args.lr,
                                  seed=args.seed, size=args.size, batch_size=args.batch_size,
                                  progress=not args.json)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    title = f"{args.model} {args.layer}: filters 0-{args.count - 1}, {args.steps} steps of gradient ascent"
    viz.save(viz.filter_grid(results, title=title), out)
    start = np.array([r.history[0] for r in results])
    final = np.array([r.history[-1] for r in results])
    if args.json:
        print(json.dumps({"model": args.model, "layer": args.layer, "steps": args.steps, "figure": str(out),
                          "filters": [{"filter": r.filter, "start": float(r.history[0]),
                                       "final": float(r.history[-1])} for r in results]}, indent=2))
        return
    print(f"{args.count} filters of {args.layer} ({args.model}), {args.steps} steps: mean activation "
          f"(median over filters) {np.median(start):.3g} -> {np.median(final):.3g}; "
          f"{int((final > start).sum())}/{args.count} filters raised")
    print(f"grid written to {out}")


def _model_options(p):
    p.add_argument("--model", default="shapes", help="shapes (default), vgg11, vgg16, alexnet, resnet18/34/50")
    p.add_argument("--weights", help="a .npz/.pth file (default: the model's pretrained weights)")


def build_parser():
    parser = argparse.ArgumentParser(prog="minixai", description="Explain the decisions of CNNs.")
    parser.add_argument("--backend", choices=["reference", "numba", "numpy", "cupy"], help="kernels to use")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("explain", help="explain one image: top-5 predictions and a figure of attributions")
    p.add_argument("image", help="an image file, or shapes:N for the N-th held-out shapes image")
    _model_options(p)
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

    p = sub.add_parser("summit", help="SUMMIT attribution graph of the shapes model: HTML page and PNG drawing")
    p.add_argument("--model", default="shapes", help="shapes (the graph is computed on shapes-world images)")
    p.add_argument("--layers", default="features.4,features.7,features.10", help="comma-separated, forward order")
    p.add_argument("--clusters", type=int, default=8, help="nodes per layer")
    p.add_argument("--steps", type=int, default=16, help="integration steps of IG")
    p.add_argument("--images", type=int, default=32, help="number of held-out shapes images")
    p.add_argument("--out", default="summit.html", help="the HTML page; the drawing is written next to it (.png)")
    p.add_argument("--seed", type=int, default=0, help="k-means++ seed")
    p.add_argument("--json", action="store_true", help="machine-readable output (with the whole graph)")
    p.set_defaults(run=cmd_summit)

    p = sub.add_parser("counterfactual", help="change an image until the model predicts another class")
    p.add_argument("image", help="an image file, or shapes:N for the N-th held-out shapes image")
    _model_options(p)
    p.add_argument("--target", required=True, help="the class to reach: index or name")
    p.add_argument("--lr", type=float, default=0.01, help="Adam's learning rate (seed 003: 0.01 vs 0.1)")
    p.add_argument("--steps", type=int, default=500, help="at most this many steps")
    p.add_argument("--threshold", type=float, default=0.9, help="stop when p(target) reaches this")
    p.add_argument("--method", default="saliency", help="attribution method of the figure's maps")
    p.add_argument("--out", default="counterfactual.png", help="where to write the comparison figure")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=cmd_counterfactual)

    p = sub.add_parser("filters", help="feature visualisation: the input each filter of a layer likes most")
    _model_options(p)
    p.add_argument("--layer", required=True, help="layer name, e.g. features.6 (shapes) or layer3 (resnet)")
    p.add_argument("--count", type=int, default=64, help="visualise filters 0..count-1")
    p.add_argument("--steps", type=int, default=30, help="gradient-ascent steps")
    p.add_argument("--lr", type=float, default=10.0, help="step length (L2 norm of each step)")
    p.add_argument("--size", type=int, help="input size in pixels (default: the model's)")
    p.add_argument("--batch-size", type=int, help="filters per pass (default: all at once)")
    p.add_argument("--seed", type=int, default=0, help="seed of the start noise")
    p.add_argument("--out", default="filters.png", help="where to write the grid")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=cmd_filters)
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
