"""The `minixai` command (one module per group of subcommands in this package).

    minixai demo                                    the main job on the embedded shapes model, offline
    minixai explain IMAGE --model shapes --method saliency,ig,gradcam --out figure.png
    minixai weights list | fetch NAME | convert FILE.pth --arch NAME | info FILE
    minixai counterfactual IMAGE --model shapes --target CLASS --lr 0.01 --steps 500 --out cf.png
    minixai filters --model shapes --layer features.6 --count 64 --steps 30 --out filters.png
    minixai summit --layers features.4,features.7,features.10 --clusters 8 --steps 16 --images 32 --out graph.html
    minixai evaluate --model shapes --methods saliency,gradcam --images 200 --out evaluation.png
    minixai trace IMAGE --model shapes --method lrp --composite epsilon_plus_flat --out trace.png
    minixai summary --model resnet50 --depth 1

IMAGE is an image file, or `shapes:N` for the N-th image of the shapes world's held-out set.
Errors print one line and exit with status 1 (2 for a wrong command line).
"""
import argparse
import sys

from . import evaluate, explain, optimise, summary, summit, trace, weights
from .common import CLIError

# each module adds its subcommands with register(sub)
COMMANDS = (explain, weights, summit, optimise, evaluate, trace, summary)


def build_parser():
    parser = argparse.ArgumentParser(prog="minixai", description="Explain the decisions of CNNs.")
    parser.add_argument("--backend", choices=["reference", "numba", "numpy", "cupy"], help="kernels to use")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
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
    except MemoryError:
        print("minixai: error: out of memory: the input or the model is too large for this machine", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("minixai: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
