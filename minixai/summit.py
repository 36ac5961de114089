"""SUMMIT: an attribution graph that summarises what a CNN does over a whole data set.

Seed 000, section 4 (eq. 6-7), after Hohman et al. 2019 ("Summit"), with the seed's clusters as nodes:

Nodes (4.3 a-d). For each chosen layer, every channel j gets a response profile over the n images,
    p_j = (mean_hw a_j(x_1), ..., mean_hw a_j(x_n))           (spatially pooled activation, one per image)
scaled to unit length (channels that fire on the same images look alike, whatever their gain); PCA of the
profiles (SVD), then k-means with a k-means++ start. The clusters partition the layer's channels, so no
channel (and no attribution) is left out of the graph.

Edges (eq. 7). From cluster u of layer l1 to cluster v of the next chosen layer l2:
    T_v(h)  = sum_{j in v} mean_hw [f(h)]_j              f = model.submodel(start=l1, end=l2)
    w(u, v) = E_x [ sum_{i in u} sum_hw a_i(x) * integral_0^1 dT_v(alpha a(x)) / da_i dalpha ]
i.e. Integrated Gradients in l1's activation space with the zero baseline. Eq. 7 sums the attributions of
every neuron j of v; the gradient is linear in the seed, so that sum is ONE IG run for T_v, its backward seeded
with dT_v/df = 1/(H W) on v's channels. Completeness: sum_u w(u, v) = E_x[T_v(a(x))] - T_v(0) up to the
quadrature error; `Node.delta` records the gap.

    graph = mx.summit(model, images, ["features.4", "features.7", "features.10"], clusters=8, steps=16)
    graph.prune(top_k=20).plot();  graph.to_html("graph.html", images=pixels)
"""
import json
from dataclasses import asdict, dataclass, field

import numpy as np
from tqdm.auto import tqdm

from .backend import array_module, to_host
from .methods._common import batches
from .methods.integrated import quadrature
from .validate import check_images, check_layer_name, check_positive

PCA_COMPONENTS = 5        # the profiles are reduced to this many principal components before k-means
KMEANS_ITERATIONS = 100   # Lloyd iterations at most ...
KMEANS_TOL = 1e-6         # ... or until no centre moves more than this
TOP_IMAGES = 6            # images kept per node: the ones whose cluster activation is highest
PATH_POINTS = 512         # default batch_size: path points (image x alpha) per forward/backward pass


# ------------------------------------------------------------------------------------------------ graph

@dataclass
class Node:
    """A cluster of channels of one layer. mean_activation = E_x[T(a(x))], the data-set mean of the sum
    over its channels of their spatially averaged activation; delta = sum of the incoming edge weights
    - (E_x[T(a(x))] - T(0)), the completeness gap (None in the first layer and with literal=True)."""
    id: str
    layer: str
    channels: list
    mean_activation: float
    top_images: list
    delta: float = None


@dataclass
class Edge:
    source: str
    target: str
    weight: float


@dataclass
class AttributionGraph:
    """Nodes in layer order, edges between clusters of consecutive chosen layers; `info` records how the
    graph was computed (images, clusters, steps, method, literal, seed)."""
    nodes: list
    edges: list
    layers: list
    info: dict = field(default_factory=dict)

    def node(self, node_id):
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(f"no node {node_id!r} in the graph")

    def prune(self, top_k=None, min_weight=None):
        """A smaller graph: the edges with |weight| >= min_weight, of those the top_k strongest by |weight|,
        and the nodes they touch. With neither given, a copy of the whole graph."""
        if top_k is None and min_weight is None:
            return AttributionGraph(list(self.nodes), list(self.edges), list(self.layers), dict(self.info))
        edges = list(self.edges)
        if min_weight is not None:
            if not np.isfinite(min_weight) or min_weight < 0:
                raise ValueError(f"min_weight must be a number >= 0, got {min_weight!r}")
            edges = [e for e in edges if abs(e.weight) >= min_weight]
        if top_k is not None:
            top_k = check_positive(top_k, "top_k")
            edges = sorted(edges, key=lambda e: -abs(e.weight))[:top_k]      # stable: ties keep their order
        kept = {e.source for e in edges} | {e.target for e in edges}
        nodes = [n for n in self.nodes if n.id in kept]
        order = {n.id: i for i, n in enumerate(self.nodes)}
        edges.sort(key=lambda e: (order[e.source], order[e.target]))
        return AttributionGraph(nodes, edges, list(self.layers), dict(self.info, pruned=True))

    def to_json(self, indent=None):
        return json.dumps({"layers": self.layers, "info": self.info,
                           "nodes": [asdict(n) for n in self.nodes],
                           "edges": [asdict(e) for e in self.edges]}, indent=indent)

    @classmethod
    def from_json(cls, text):
        d = json.loads(text)
        return cls([Node(**n) for n in d["nodes"]], [Edge(**e) for e in d["edges"]], d["layers"], d["info"])

    def plot(self, ax=None, title=None):
        """Matplotlib drawing: layers as columns, edge width ~ |weight|, red positive, blue negative."""
        from .summit_view import plot
        return plot(self, ax, title)

    def to_html(self, path, images=None, spec=None):
        """A self-contained interactive page (inline SVG/JS/CSS); click a node for its channels and top
        images. images: the data set given to summit, as pixels (N, H, W, 3) in [0, 1] (e.g. shapes
        `batch.pixels`), or model inputs (N, C, H, W) with the model's `spec` to denormalise them."""
        from .summit_view import write_html
        return write_html(self, path, images, spec)


# ------------------------------------------------------------------------------------------------ nodes

def channel_profiles(out):
    """A layer's output (N, C, H, W) or (N, C) -> (C, N): each channel's spatial mean, per image."""
    return out.reshape(*out.shape[:2], -1).mean(axis=2).T


def pca(X, components):
    """Rows of X (points, features) projected on the first `components` principal axes -> (points, k).
    Centre the columns, X_c = U S V^T, scores = U S. SVD fixes each axis only up to sign: we make the
    largest |loading| of every axis positive, so equal inputs give equal scores."""
    Xc = X - X.mean(axis=0)
    U, S, Vt = np.linalg.svd(Xc, full_matrices=False)
    k = min(components, len(S))
    signs = np.sign(Vt[np.arange(k), np.abs(Vt[:k]).argmax(axis=1)])
    signs[signs == 0] = 1
    return U[:, :k] * S[:k] * signs


def kmeans(X, k, seed=0, iterations=KMEANS_ITERATIONS, tol=KMEANS_TOL):
    """Labels (points,) of k non-empty clusters of the rows of X: k-means++ start, then Lloyd's iterations."""
    rng = np.random.default_rng(seed)
    centres = _kmeans_plus_plus(X, k, rng)
    for _ in range(iterations):
        labels = _assign(X, centres, k)
        new = np.stack([X[labels == c].mean(axis=0) for c in range(k)])
        moved = np.abs(new - centres).max()
        centres = new
        if moved <= tol:
            break
    return _assign(X, centres, k)


def _kmeans_plus_plus(X, k, rng):
    """First centre uniform, each next one drawn with probability ~ squared distance to the nearest chosen."""
    centres = [X[rng.integers(len(X))]]
    for _ in range(1, k):
        d2 = ((X[:, None, :] - np.array(centres)[None]) ** 2).sum(axis=2).min(axis=1)
        p = d2 / d2.sum() if d2.sum() > 0 else np.full(len(X), 1 / len(X))   # all points equal: uniform
        centres.append(X[rng.choice(len(X), p=p)])
    return np.array(centres)


def _assign(X, centres, k):
    """Nearest centre; a cluster left empty takes the point farthest from its centre among clusters of 2+."""
    d2 = ((X[:, None, :] - centres[None]) ** 2).sum(axis=2)
    labels = d2.argmin(axis=1)
    for c in range(k):
        if not (labels == c).any():
            sizes = np.bincount(labels, minlength=k)
            far = np.where(sizes[labels] > 1, d2[np.arange(len(X)), labels], -1.0)
            labels[far.argmax()] = c
    return labels


def cluster_channels(profiles, k, seed=0):
    """Partition the channels (rows of profiles (C, N)) into k lists of channel indices."""
    norms = np.linalg.norm(profiles, axis=1, keepdims=True)
    unit = np.divide(profiles, norms, out=np.zeros_like(profiles), where=norms > 0)   # silent channels stay 0
    labels = kmeans(pca(unit, PCA_COMPONENTS), k, seed)
    return [np.flatnonzero(labels == c) for c in range(k)]


# ------------------------------------------------------------------------------------------------ edges



def _cluster_seed(out, channels):
    """dT_v/d(out): 1/(H W) on the cluster's channels, 0 elsewhere (T_v = sum_j mean_hw out_j)."""
    xp = array_module(out)
    seed = xp.zeros_like(out)
    seed[:, xp.asarray(channels)] = 1.0 / np.prod(out.shape[2:], dtype=np.int64)
    return seed


def _edge_sums(sub, a, targets, alphas, weights, points, literal, bar):
    """(len(targets), C): for each target cluster v and source channel i,
    sum over the images and positions of a_i * sum_k w_k dT_v(alpha_k a)/da_i   (without a_i if literal).
    One forward per chunk of path points serves every target; then one backward per target."""
    B = len(a)
    sums = np.zeros((len(targets), a.shape[1]))
    for chunk in batches(len(alphas), max(1, points // B)):
        last = chunk.stop == len(alphas)
        xp = array_module(a)
        al = xp.asarray(alphas[chunk], dtype=a.dtype).reshape(-1, *([1] * a.ndim))
        tape = sub.record((al * a[None]).reshape(-1, *a.shape[1:]))          # (S*B, ...) path points
        for v, channels in enumerate(targets):
            g = sub.backward(_cluster_seed(tape.output, channels), tape=tape).reshape(len(al), *a.shape)
            g = xp.tensordot(xp.asarray(weights[chunk], dtype=a.dtype), g, axes=1)   # sum_k w_k grad at alpha_k
            contrib = g if literal else a * g
            sums[v] += to_host(contrib.reshape(B, a.shape[1], -1).sum(axis=(0, 2), dtype=np.float64))
            bar.update(1 if last else 0)                                     # one tick per target and batch
    return sums


# ------------------------------------------------------------------------------------------------ summit

def summit(model, images, layers, clusters=8, steps=16, method="gausslegendre", seed=0, literal=False,
           batch_size=None, progress=True):
    """The attribution graph of `model` over `images` (N, C, H, W), an AttributionGraph: nodes "layer:k"
    (channels, mean_activation, top_images, delta), edges w(u, v) between clusters of consecutive layers.

    layers: names from model.path_names(), in forward order (e.g. "features.4", "layer2"); output of each.
    clusters: nodes per layer (k of k-means, at most the layer's channels); seed: k-means++ start.
    steps, method: the quadrature of the path integral (see methods.integrated.quadrature).
    batch_size: path points (image x alpha) per forward/backward pass (None: 512).

    literal=False (default): w(u, v) sums a_i * (path-averaged gradient), the real Integrated Gradients
    (Sundararajan 2017, eq. 4 of seed 000): it is complete, the incoming weights of v add up to
    E_x[T_v(a(x))] - T_v(0), so an edge weight is a share of v's activation and weights are comparable
    across layers. literal=True: eq. 6 as printed in the seed, the path-averaged gradient WITHOUT the factor
    a_i (a sensitivity, not an attribution: no completeness, and silent channels still get weight)."""
    x = check_images(model.place(images), model.in_channels, "images", ndim=2 if model.in_channels is None else 4)
    layers = _check_layers(model, layers)
    clusters = check_positive(clusters, "clusters")
    steps = check_positive(steps, "steps")
    alphas, weights = quadrature(steps, method)
    points = PATH_POINTS if batch_size is None else check_positive(batch_size, "batch_size")
    chunks = batches(len(x), max(1, points // steps))

    # nodes (4.3 a-d): pooled activations over the data set, clustered per layer
    pooled = {name: [] for name in layers}
    for chunk in tqdm(chunks, desc="summit: activations", disable=not progress or len(chunks) < 2):
        for name, out in model.activations(x[chunk], layers).items():
            pooled[name].append(to_host(channel_profiles(out).astype(np.float64)))   # small: clustered here
    profiles = {name: np.concatenate(p, axis=1) for name, p in pooled.items()}       # (C, N) per layer
    groups = {name: _clusters_of(name, profiles[name], clusters, seed) for name in layers}

    # edges: one IG run per target cluster, summed over the images batch by batch
    pairs = list(zip(layers, layers[1:]))
    subs = {pair: model.submodel(start=pair[0], end=pair[1]) for pair in pairs}
    sums, at_zero = {pair: 0.0 for pair in pairs}, {}
    bar = tqdm(total=len(chunks) * len(pairs) * clusters, desc="summit: attributions", disable=not progress)
    for chunk in chunks:
        acts = model.activations(x[chunk], layers)
        for pair in pairs:
            a = acts[pair[0]]
            if pair not in at_zero:                                   # T(0): the baseline's pooled output
                zero = array_module(a).zeros_like(a[:1])
                at_zero[pair] = to_host(channel_profiles(subs[pair].record(zero).output)[:, 0])
            sums[pair] = sums[pair] + _edge_sums(subs[pair], a, groups[pair[1]], alphas, weights, points,
                                                 literal, bar)
    bar.close()
    info = dict(images=len(x), clusters=clusters, steps=steps, method=method, seed=seed, literal=literal)
    return _graph(layers, groups, profiles, sums, at_zero, len(x), literal, info)


def _clusters_of(name, profiles, k, seed):
    """k channel clusters of one layer, the most active first (ties: by their first channel)."""
    if k > len(profiles):
        raise ValueError(f"clusters={k} is more than the {len(profiles)} channels of layer {name!r}; "
                         "each cluster needs at least one channel")
    found = cluster_channels(profiles, k, seed)
    activity = [profiles[c].sum(axis=0).mean() for c in found]
    return [found[i] for i in sorted(range(k), key=lambda i: (-activity[i], found[i][0]))]


def _graph(layers, groups, profiles, sums, at_zero, n, literal, info):
    """Nodes "layer:k" with their statistics; edges w(u, v) = sums[v][channels of u] / n (eq. 7)."""
    nodes, edges = [], []
    for l, name in enumerate(layers):
        for k, channels in enumerate(groups[name]):
            score = profiles[name][channels].sum(axis=0)                          # T_v(a(x)) per image
            node = Node(f"{name}:{k}", name, [int(c) for c in channels], float(score.mean()),
                        [int(i) for i in np.argsort(-score, kind="stable")[:TOP_IMAGES]])
            if l > 0:
                pair = (layers[l - 1], name)
                w = [float(sums[pair][k][u].sum() / n) for u in groups[pair[0]]]
                edges += [Edge(f"{pair[0]}:{j}", node.id, wj) for j, wj in enumerate(w)]
                if not literal:                       # completeness: sum_u w(u, v) = E[T_v(a)] - T_v(0)
                    node.delta = sum(w) - (node.mean_activation - float(at_zero[pair][channels].sum()))
            nodes.append(node)
    return AttributionGraph(nodes, edges, list(layers), info)


def _check_layers(model, layers):
    """Names on the model's main path, in forward order, at least one."""
    layers = [layers] if isinstance(layers, str) else list(layers)
    if not layers:
        raise ValueError("layers: give at least one layer name, e.g. " + ", ".join(model.path_names()[:3]))
    valid = model.path_names()
    for name in layers:
        check_layer_name(name, valid)
    order = model.layer_names()
    position = [max(i for i, n in enumerate(order) if n == name or n.startswith(name + ".")) for name in layers]
    if any(b <= a for a, b in zip(position, position[1:])):
        raise ValueError(f"layers must be given in forward order, each once: got {', '.join(layers)}")
    return layers
