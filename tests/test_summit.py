"""SUMMIT (seed 000, section 4): completeness of the edges, clustering, pruning, JSON, the literal eq. 6,
bad input, the HTML page in headless Chromium, and the command line."""
import json
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minixai as mx
from minixai import models
from minixai.cli import main
from minixai.layers import AdaptiveAvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential
from minixai.model import Model
from minixai.summit import AttributionGraph, Edge, Node, kmeans, summit

TINY_LAYERS = ["relu1", "relu2", "relu3", "fc"]


def tiny_cnn(seed, bias=True):
    """A random ReLU CNN (float64): two conv stages, a max-pool, global average pooling, a dense head."""
    rng = np.random.default_rng(seed)
    layers = dict(conv1=Conv2d(3, 6, 3, padding=1), relu1=ReLU(), pool1=MaxPool2d(2),
                  conv2=Conv2d(6, 8, 3, padding=1), relu2=ReLU(), conv3=Conv2d(8, 5, 3), relu3=ReLU(),
                  gap=AdaptiveAvgPool2d(1), flatten=Flatten(), fc=Linear(5, 3))
    for layer in layers.values():
        if hasattr(layer, "weight"):
            layer.weight = rng.normal(0, np.sqrt(2 / layer.weight[0].size), layer.weight.shape)
            layer.bias = rng.normal(0, 0.3, layer.bias.shape) if bias else np.zeros(layer.bias.shape)
    return Model(Sequential(*layers.values(), names=list(layers)), arch="tiny")


def cluster_score(out, channels):
    """T_v per image: the sum over v's channels of their spatial mean."""
    return out.reshape(*out.shape[:2], -1).mean(axis=2)[:, channels].sum(axis=1)


def assert_complete(model, x, graph, atol):
    """For every target cluster v: sum_u w(u, v) == E_x[T_v(a(x))] - T_v(0), computed here from scratch."""
    acts = model.activations(x, graph.layers)
    for l1, l2 in zip(graph.layers, graph.layers[1:]):
        at_zero = model.submodel(start=l1, end=l2)(np.zeros_like(acts[l1][:1]))
        for v in [n for n in graph.nodes if n.layer == l2]:
            incoming = sum(e.weight for e in graph.edges if e.target == v.id)
            expected = float(cluster_score(acts[l2], v.channels).mean() - cluster_score(at_zero, v.channels)[0])
            assert incoming == pytest.approx(expected, abs=atol), v.id
            rounding = 1e-9 if x.dtype == np.float64 else 1e-5 * (1 + abs(expected))
            assert v.delta == pytest.approx(incoming - expected, abs=rounding)


# ------------------------------------------------------------------------------------------------ completeness

@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_completeness_with_biases_up_to_quadrature_error(seed):
    model = tiny_cnn(seed)
    x = np.random.default_rng(seed).normal(size=(5, 3, 12, 12))
    graph = summit(model, x, TINY_LAYERS, clusters=3, steps=256, seed=seed, progress=False)
    assert_complete(model, x, graph, atol=3e-3)


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), steps=st.integers(1, 5))
def test_completeness_is_exact_without_biases(seed, steps):
    # no bias: the net is positively homogeneous, its gradient is constant on the path (0, a], IG is exact
    model = tiny_cnn(seed, bias=False)
    x = np.random.default_rng(seed).normal(size=(4, 3, 12, 12))
    graph = summit(model, x, TINY_LAYERS, clusters=2, steps=steps, seed=seed, progress=False)
    assert_complete(model, x, graph, atol=1e-10)


def test_completeness_gap_shrinks_with_steps():
    model, x = tiny_cnn(1), np.random.default_rng(1).normal(size=(5, 3, 12, 12))
    gaps = [max(abs(n.delta) for n in summit(model, x, TINY_LAYERS, clusters=3, steps=s, progress=False).nodes
                if n.delta is not None) for s in (4, 64)]
    assert gaps[1] < gaps[0] / 4


def test_completeness_on_the_shapes_model():
    model = models.load("shapes")
    x = mx.data.shapes.generate(6, seed=3).images
    graph = summit(model, x, ["features.4", "features.7", "features.10"], clusters=4, steps=64, progress=False)
    assert_complete(model, x, graph, atol=2e-2)       # float32, activations up to ~40 in features.10
    assert len(graph.nodes) == 12 and len(graph.edges) == 2 * 4 * 4


def test_batch_size_does_not_change_the_graph():
    model, x = tiny_cnn(2), np.random.default_rng(2).normal(size=(5, 3, 12, 12))
    whole = summit(model, x, TINY_LAYERS, clusters=3, steps=8, progress=False)
    pieces = summit(model, x, TINY_LAYERS, clusters=3, steps=8, batch_size=3, progress=False)   # 1 image, 3 alphas
    assert [n.channels for n in whole.nodes] == [n.channels for n in pieces.nodes]
    np.testing.assert_allclose([e.weight for e in whole.edges], [e.weight for e in pieces.edges], atol=1e-12)


# ------------------------------------------------------------------------------------------------ literal eq. 6

def test_literal_option_is_the_path_averaged_gradient():
    # fc1 -> relu -> fc2: dT_v/da_i = 1[a_i > 0] sum_{j in v} W2[j, i] on the whole path (0, a]
    rng = np.random.default_rng(0)
    fc1, fc2 = Linear(4, 6), Linear(6, 4)
    for layer in (fc1, fc2):
        layer.weight, layer.bias = rng.normal(size=layer.weight.shape), rng.normal(size=layer.bias.shape)
    model = Model(Sequential(fc1, ReLU(), fc2, names=["fc1", "relu", "fc2"]))
    x = rng.normal(size=(7, 4))
    a = model.activations(x, ["fc1"])["fc1"]
    default = summit(model, x, ["fc1", "fc2"], clusters=2, steps=3, progress=False)
    literal = summit(model, x, ["fc1", "fc2"], clusters=2, steps=3, literal=True, progress=False)
    groups = {n.id: n.channels for n in default.nodes}
    assert groups == {n.id: n.channels for n in literal.nodes}
    for e_ig, e_lit in zip(default.edges, literal.edges):
        u, v = groups[e_ig.source], groups[e_lit.target]
        slope = fc2.weight[v].sum(axis=0)[u]                            # sum_{j in v} W2[j, i], i in u
        assert e_lit.weight == pytest.approx(((a[:, u] > 0) * slope).sum(axis=1).mean(), abs=1e-12)
        assert e_ig.weight == pytest.approx((np.maximum(a[:, u], 0) * slope).sum(axis=1).mean(), abs=1e-12)
    assert not np.allclose([e.weight for e in default.edges], [e.weight for e in literal.edges])
    assert all(n.delta is None for n in literal.nodes)


# ------------------------------------------------------------------------------------------------ clustering

def test_clusters_partition_the_channels_and_are_deterministic():
    model = models.load("shapes")
    x = mx.data.shapes.generate(8, seed=0).images
    layers = ["features.4", "features.7"]
    first = summit(model, x, layers, clusters=5, steps=2, seed=3, progress=False)
    again = summit(model, x, layers, clusters=5, steps=2, seed=3, progress=False)
    assert first == again
    for name, width in zip(layers, (32, 64)):
        groups = [n.channels for n in first.nodes if n.layer == name]
        assert len(groups) == 5 and all(groups)
        assert sorted(c for g in groups for c in g) == list(range(width))
    assert all(len(n.top_images) == 6 and set(n.top_images) <= set(range(8)) for n in first.nodes)


def test_kmeans_finds_separated_blobs_and_fills_every_cluster():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [10, 0], [0, 10]])
    X = np.concatenate([c + rng.normal(0, 0.1, (20, 2)) for c in centres])
    labels = kmeans(X, 3, seed=1)
    assert all(len(set(labels[i * 20:(i + 1) * 20])) == 1 for i in range(3)) and len(set(labels)) == 3
    same = kmeans(np.zeros((5, 2)), 4, seed=0)                      # identical points: still 4 non-empty
    assert sorted(np.bincount(same, minlength=4)) == [1, 1, 1, 2]


# ------------------------------------------------------------------------------------------------ the graph

def small_graph():
    nodes = [Node("a:0", "a", [0], 1.0, [0]), Node("a:1", "a", [1, 2], 0.5, [1]),
             Node("b:0", "b", [0, 1], 2.0, [0], 0.01), Node("b:1", "b", [2], 0.1, [1], -0.02)]
    edges = [Edge("a:0", "b:0", 0.5), Edge("a:1", "b:0", -3.0), Edge("a:0", "b:1", 0.05), Edge("a:1", "b:1", 1.0)]
    return AttributionGraph(nodes, edges, ["a", "b"], {"images": 2})


def test_prune_keeps_the_strongest_edges_and_their_nodes():
    g = small_graph()
    top = g.prune(top_k=2)
    assert {(e.source, e.target) for e in top.edges} == {("a:1", "b:0"), ("a:1", "b:1")}
    assert [n.id for n in top.nodes] == ["a:1", "b:0", "b:1"]
    assert [e.weight for e in g.prune(min_weight=0.5).edges] == [0.5, -3.0, 1.0]
    assert [e.weight for e in g.prune(top_k=1, min_weight=0.1).edges] == [-3.0]
    assert g.prune() == g and len(g.edges) == 4                  # nothing asked, nothing dropped, g unchanged
    with pytest.raises(ValueError, match="top_k"):
        g.prune(top_k=0)
    with pytest.raises(ValueError, match="min_weight"):
        g.prune(min_weight=-1)


def test_json_round_trip():
    model = tiny_cnn(0)
    graph = summit(model, np.random.default_rng(0).normal(size=(3, 3, 12, 12)), TINY_LAYERS, clusters=2, steps=4,
                   progress=False)
    text = graph.to_json()
    assert AttributionGraph.from_json(text) == graph
    d = json.loads(text)
    assert d["nodes"][0]["id"] == "relu1:0" and d["info"]["steps"] == 4 and len(d["edges"]) == 3 * 2 * 2


def test_plot_draws_every_edge_and_node():
    import matplotlib
    matplotlib.use("Agg")
    ax = small_graph().plot()
    assert len(ax.lines) == 4 and len(ax.collections) == 4
    assert {t.get_text() for t in ax.texts} >= {"a", "b"}


# ------------------------------------------------------------------------------------------------ bad input

@pytest.fixture(scope="module")
def shapes_model():
    return models.load("shapes")


@pytest.mark.parametrize("kwargs, message", [
    (dict(layers=["features.4", "features.99"]), r"layer 'features.99' not found; valid: .*features.10"),
    (dict(layers=["features.7", "features.4"]), "forward order"),
    (dict(layers=["features.4", "features.4"]), "forward order"),
    (dict(layers=[]), "at least one layer"),
    (dict(clusters=17), "clusters=17 is more than the 16 channels of layer 'features.1'"),
    (dict(clusters=0), "clusters must be a positive integer"),
    (dict(steps=0), "steps must be a positive integer"),
    (dict(method="simpson"), "unknown method 'simpson'"),
    (dict(batch_size=-4), "batch_size must be a positive integer"),
])
def test_bad_arguments(shapes_model, kwargs, message):
    x = mx.data.shapes.generate(2, seed=0).images
    options = dict(layers=["features.1", "features.4"], clusters=2, steps=2, progress=False) | kwargs
    with pytest.raises(ValueError, match=message):
        summit(shapes_model, x, **options)


def test_bad_images(shapes_model):
    x = mx.data.shapes.generate(2, seed=0).images
    with pytest.raises(ValueError, match="empty"):
        summit(shapes_model, x[:0], ["features.4"], progress=False)
    x[1, 0, 3, 3] = np.nan
    with pytest.raises(ValueError, match="images contains NaN"):
        summit(shapes_model, x, ["features.4"], progress=False)
    with pytest.raises(ValueError, match="model expects 3"):
        summit(shapes_model, np.zeros((2, 1, 64, 64), np.float32), ["features.4"], progress=False)


def test_html_refuses_images_it_cannot_show(tmp_path):
    g = small_graph()
    with pytest.raises(ValueError, match="spec=model.spec"):
        g.to_html(tmp_path / "g.html", images=np.zeros((2, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="only 1 images were given"):
        g.to_html(tmp_path / "g.html", images=np.zeros((1, 8, 8, 3)))


# ------------------------------------------------------------------------------------------------ HTML page

def chromium():
    path = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if path is None:
        pytest.skip("no chromium binary found (apt-get install chromium) for the HTML page test")
    return path


def dump_dom(browser, url, profile):
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}"]
    done = subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_html_page_renders_every_node_in_headless_chromium(tmp_path):
    browser = chromium()
    model = models.load("shapes")
    batch = mx.data.shapes.generate(8, seed=0)
    graph = summit(model, batch.images, ["features.4", "features.7", "features.10"], clusters=4, steps=4,
                   progress=False)
    page = graph.to_html(tmp_path / "graph.html", images=batch.pixels)
    text = page.read_text()
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text
    assert "<link" not in text and "<script src" not in text                       # self-contained

    chosen = graph.nodes[5]
    dom = dump_dom(browser, page.as_uri() + "#node=" + chosen.id, tmp_path / "profile")
    assert "<pre id=\"summit-js-error\"" not in dom and "<div id=\"summit-rendered\"" in dom
    marker = dom.split('id="summit-rendered"', 1)[1].split("</div>", 1)[0]
    assert all(f" {n.id} " in marker.replace("nodes: ", " ").replace(" |", " ") for n in graph.nodes)
    assert f"edges: {len(graph.edges)}" in marker
    panel = dom.split('id="panel"', 1)[1].split('id="status"', 1)[0]
    assert f"<h2>{chosen.id}</h2>" in panel and ", ".join(map(str, chosen.channels)) in panel
    assert panel.count("data:image/png;base64,") == len(chosen.top_images)


# ------------------------------------------------------------------------------------------------ command line

def test_cli_writes_html_and_png(capsys, tmp_path):
    out = tmp_path / "graph.html"
    code = main(["summit", "--layers", "features.4,features.7", "--clusters", "3", "--steps", "4", "--images", "6",
                 "--out", str(out), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and out.stat().st_size > 5_000 and (tmp_path / "graph.png").stat().st_size > 5_000
    assert report["png"] == str(tmp_path / "graph.png") and len(report["graph"]["nodes"]) == 6


@pytest.mark.parametrize("argv, message", [
    (["--layers", "features.4,nope"], "layer 'nope' not found; valid:"),
    (["--clusters", "40"], "clusters=40 is more than the 32 channels"),
    (["--images", "0"], "--images must be a positive integer"),
    (["--model", "vgg16"], "only --model shapes"),
    (["--out", "graph.png"], "--out must be an .html file"),
])
def test_cli_errors_are_one_line(capsys, tmp_path, argv, message):
    code = main(["summit", "--images", "2", "--steps", "2", "--out", str(tmp_path / "g.html"), *argv])
    err = capsys.readouterr().err
    assert code == 1 and message in err and err.count("\n") == 1
