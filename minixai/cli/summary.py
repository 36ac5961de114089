"""`minixai summary`: a model's layers with output shapes, parameters and multiply-adds (seed 004, task 1)."""
from .common import CLIError


def cmd_summary(args):
    from minixai import models
    if args.model not in models.ARCHITECTURES:
        raise CLIError(f"unknown model {args.model!r}; valid: {', '.join(models.ARCHITECTURES)}")
    # the architecture needs no trained weights: seeded random ones unless --weights names a file
    model = models.load(args.model, weights=args.weights)
    shape = None
    if args.input_size is not None:
        size = _size(args.input_size)
        shape = (1, model.in_channels, *size)
    print(model.summary(shape, depth=args.depth))


def _size(text):
    """'224' -> (224, 224), '299x299' -> (299, 299)."""
    parts = text.lower().split("x")
    if len(parts) not in (1, 2) or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise CLIError(f"--input-size must be N or HxW with positive integers, got {text!r}")
    return (int(parts[0]), int(parts[-1]))


def register(sub):
    p = sub.add_parser("summary", help="every layer of a model: type, output shape, parameters, multiply-adds")
    p.add_argument("--model", default="shapes", help="shapes (default), vgg11, vgg16, alexnet, resnet18/34/50, "
                                                      "inception_v3")
    p.add_argument("--weights", help="a .npz/.pth file (default: seeded random weights; the shapes do not "
                                     "depend on them)")
    p.add_argument("--input-size", help="N or HxW (default: the model's input size)")
    p.add_argument("--depth", type=int, help="list layers down to this level of the tree only (0: top level)")
    p.set_defaults(run=cmd_summary)
