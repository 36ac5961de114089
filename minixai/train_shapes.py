"""Train the shapes CNN with minixai alone and write the weights that ship with the package.

    python -m minixai.train_shapes                 # writes weights/shapes.npz (10-15 minutes, 2 cores)
    python -m minixai.train_shapes --quick         # a short run to see that the loss falls
    python -m minixai.train_shapes --evaluate      # held-out accuracy of the shipped weights
    python -m minixai.train_shapes --permute-labels     # writes weights/shapes_permuted.npz (about 6 minutes)

Seeded end to end: the training and held-out sets come from minixai.data.shapes with fixed seeds, the
initialisation and the mini-batch order from one numpy Generator. Adam, cross-entropy, parameter
gradients from each layer's own backward (minixai.training).

--permute-labels trains the same network on the same kind of images with their labels shuffled (one seeded
permutation), for the data randomisation test of Adebayo et al. 2018 (Sec. 5, after Zhang et al. 2017):
the network can only memorise, so an explanation that still outlines the shape does not depend on what the
network learned. Memorising is slow, so this run uses fewer images (2000) and more epochs, and no mirror
augmentation (a mirrored copy would be one more image to memorise); its report gives the accuracy on the
permuted training labels (memorisation) and on the held-out set (chance is 20%).
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from minixai.data import shapes
from minixai.models.initialisation import initialise
from minixai.models.shapes import shapes_cnn
from minixai.training import Adam, train_step
from minixai.weights import save_npz

TRAIN_SEED, TEST_SEED = 1, 2          # held-out set: shapes.generate(n, seed=TEST_SEED)
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "weights" / "shapes.npz"
PERMUTED_OUT = DEFAULT_OUT.with_name("shapes_permuted.npz")
PERMUTATION_SEED = 3                  # the shuffle of the training labels for --permute-labels


def accuracy(model, batch, batch_size=250, labels=None):
    """Share of batch.images classified as `labels` (default: batch.labels)."""
    labels = batch.labels if labels is None else labels
    correct = 0
    for i in range(0, len(batch), batch_size):
        logits = model(batch.images[i:i + batch_size])
        correct += int((logits.argmax(axis=1) == labels[i:i + batch_size]).sum())
    return correct / len(batch)


def permuted_labels(labels, seed=PERMUTATION_SEED):
    """The same labels in a seeded random order: each image gets the class of another (Zhang et al. 2017)."""
    return np.random.default_rng(seed).permutation(labels)


def train(n_train=16000, epochs=8, batch_size=64, lr=2e-3, seed=0, n_test=2000, progress=True,
          permute_labels=False):
    """Returns (model, report) with the held-out accuracy and the loss per epoch. permute_labels: train on
    shuffled labels without mirror augmentation (the data randomisation test; see the module docstring)."""
    rng = np.random.default_rng(seed)
    data = shapes.generate(n_train, seed=TRAIN_SEED)
    test = shapes.generate(n_test, seed=TEST_SEED)
    labels = permuted_labels(data.labels) if permute_labels else data.labels
    model = shapes_cnn(len(shapes.CLASS_NAMES), shapes.SPEC)
    initialise(model, seed=seed, linear="uniform")
    optimizer = Adam(model, lr=lr)
    losses, start = [], time.time()
    steps_per_epoch = n_train // batch_size
    for epoch in range(epochs):
        optimizer.lr = lr * 0.5 * (1 + np.cos(np.pi * epoch / epochs))     # cosine decay per epoch
        order = rng.permutation(n_train)
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{epochs}", disable=not progress)
        epoch_loss = []
        for step in bar:
            idx = order[step * batch_size:(step + 1) * batch_size]
            images = data.images[idx]
            flip = (rng.random(len(idx)) < 0.5) & (not permute_labels)   # shapes are mirror-symmetric classes
            images[flip] = images[flip, :, :, ::-1]
            epoch_loss.append(train_step(model, np.ascontiguousarray(images), labels[idx], optimizer))
            bar.set_postfix(loss=f"{np.mean(epoch_loss[-50:]):.3f}")
        losses.append(float(np.mean(epoch_loss)))
    model.eval()
    report = {"held_out_accuracy": accuracy(model, test), "n_test": n_test, "test_seed": TEST_SEED,
              "n_train": n_train, "train_seed": TRAIN_SEED, "epochs": epochs, "epoch_loss": losses,
              "seconds": round(time.time() - start, 1)}
    if permute_labels:
        report.update(permuted_labels=True, permutation_seed=PERMUTATION_SEED,
                      train_accuracy_on_permuted_labels=accuracy(model, data, labels=labels))
    return model, report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help=f"default {DEFAULT_OUT.name} ({PERMUTED_OUT.name} with "
                                                     "--permute-labels)")
    parser.add_argument("--quick", action="store_true", help="2000 images, 1 epoch: a smoke test")
    parser.add_argument("--epochs", type=int, help="default 8 (50 with --permute-labels)")
    parser.add_argument("--permute-labels", action="store_true",
                        help="train on shuffled labels (2000 images): the data randomisation test's model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--evaluate", action="store_true", help="only measure the held-out accuracy of --out")
    args = parser.parse_args(argv)
    args.out = args.out or (PERMUTED_OUT if args.permute_labels else DEFAULT_OUT)
    if args.evaluate:
        from minixai.models.shapes import shapes as shapes_model
        test = shapes.generate(2000, seed=TEST_SEED)
        print(f"held-out accuracy of {args.out}: {accuracy(shapes_model(weights=args.out), test):.1%} "
              f"(2000 images, seed {TEST_SEED})")
        return
    n_train, epochs = (2000, 50) if args.permute_labels else (16000, 8)
    n_train, epochs = (2000, 1) if args.quick else (n_train, args.epochs or epochs)
    model, report = train(n_train=n_train, epochs=epochs, seed=args.seed, permute_labels=args.permute_labels)
    print(json.dumps(report, indent=2))
    source = "python -m minixai.train_shapes" + (" --permute-labels" if args.permute_labels else "")
    meta = {"architecture": "shapes", "class_names": shapes.CLASS_NAMES, "source": source,
            "mean": list(shapes.SPEC.mean), "std": list(shapes.SPEC.std), "size": list(shapes.SPEC.size),
            "training": report}
    save_npz(args.out, model.state_dict(), meta)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
