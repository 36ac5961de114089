"""`minixai trace`: where a method's relevance goes, layer by layer (a table and a figure)."""
from .common import CLIError, load_image, load_model, model_options, output_path, target_class

METHODS = ("lrp", "deeplift", "gradient")


def cmd_trace(args):
    import minixai as mx
    from minixai import composites, viz
    if args.composite not in composites.COMPOSITES:
        raise CLIError(f"unknown composite {args.composite!r}; valid: {', '.join(composites.COMPOSITES)}")
    if args.baseline is not None and args.method != "deeplift":
        raise CLIError(f"--baseline is DeepLIFT's reference input; --method {args.method} takes none")
    model = load_model(args.model, args.weights)
    x, label = load_image(args.image, model.spec)
    target = target_class(args.target, model.spec, model(x))
    rule = {"lrp": args.composite, "deeplift": "deeplift", "gradient": "gradient"}[args.method]
    t = mx.trace(model, x, target, rule=rule, baseline=args.baseline)
    print(t.table(0, model.spec.class_names))
    maps = [name.strip() for name in args.maps.split(",") if name.strip()] if args.maps else None
    out = output_path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    names = model.spec.class_names
    title = f"{label}, class '{names[target] if target < len(names) else target}': {t.method} ({args.model})"
    viz.save(t.plot(maps=maps, title=title), out)
    print(f"figure written to {out}")


def register(sub):
    p = sub.add_parser("trace", help="where a method's relevance goes, layer by layer: a table and a figure")
    p.add_argument("image", help="an image file, or shapes:N for the N-th held-out shapes image")
    model_options(p)
    p.add_argument("--method", default="lrp", choices=METHODS, help="what to trace (default lrp)")
    p.add_argument("--composite", default="epsilon_plus_flat", help="the LRP composite (with --method lrp)")
    p.add_argument("--baseline", help="DeepLIFT's reference: black (default), white, gray, zeros, blur, uniform")
    p.add_argument("--target", help="class index or name (default: the predicted class)")
    p.add_argument("--maps", help="comma-separated layers whose maps the figure shows (default: a few)")
    p.add_argument("--out", default="trace.png", help="where to write the figure")
    p.set_defaults(run=cmd_trace)
