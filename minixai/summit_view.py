"""Pictures of a SUMMIT attribution graph: a matplotlib drawing and a self-contained interactive HTML page.

Both put the chosen layers in columns (forward order, left to right) and a layer's clusters below each
other, most active first. An edge's width grows with |w(u, v)| relative to the strongest edge between
the same two layers (deeper layers have larger activations: one scale for all would hide the first gaps);
red edges add to the target cluster's activation, blue ones take from it (the colours of viz.diverging).
"""
import base64
import html
import io
import json
from pathlib import Path

import numpy as np

POSITIVE, NEGATIVE = "#d62728", "#1f77b4"
THUMBNAIL = 96          # px, longest side of an embedded image


def _strongest(graph):
    """{source layer: largest |weight| of the edges leaving that layer} (the scale of each column gap)."""
    layer_of = {n.id: n.layer for n in graph.nodes}
    scale = {}
    for e in graph.edges:
        scale[layer_of[e.source]] = max(scale.get(layer_of[e.source], 0.0), abs(e.weight))
    return {k: v or 1.0 for k, v in scale.items()}, layer_of


def _layout(graph):
    """{node id: (column, row)} with rows counted from the top of each column."""
    rows, where = {}, {}
    for n in graph.nodes:
        column = graph.layers.index(n.layer)
        where[n.id] = (column, rows.get(column, 0))
        rows[column] = rows.get(column, 0) + 1
    return where


# ------------------------------------------------------------------------------------------------ matplotlib

def plot(graph, ax=None, title=None):
    """Draw the graph on `ax` (a new figure if None); returns the Axes."""
    import matplotlib.pyplot as plt
    where = _layout(graph)
    tallest = max([r for _, r in where.values()], default=0) + 1
    if ax is None:
        _, ax = plt.subplots(figsize=(2.6 * len(graph.layers) + 1.5, 0.55 * tallest + 1.4), layout="constrained")
    scale, layer_of = _strongest(graph)
    relative = {id(e): abs(e.weight) / scale[layer_of[e.source]] for e in graph.edges}
    for e in sorted(graph.edges, key=lambda e: relative[id(e)]):                # strongest drawn last, on top
        (x0, y0), (x1, y1) = where[e.source], where[e.target]
        s = relative[id(e)]
        ax.plot([x0, x1], [-y0, -y1], color=POSITIVE if e.weight >= 0 else NEGATIVE, lw=0.3 + 6 * s,
                alpha=0.15 + 0.75 * s, solid_capstyle="round", zorder=1)
    loudest = {}                                                  # node area ~ activation, per layer
    for n in graph.nodes:
        loudest[n.layer] = max(loudest.get(n.layer, 0.0), n.mean_activation)
    for n in graph.nodes:
        x, y = where[n.id]
        size = 110 + 290 * max(n.mean_activation, 0) / (loudest[n.layer] or 1.0)
        ax.scatter([x], [-y], s=size, color="#f7f7f7", edgecolors="#333333", linewidths=1.2, zorder=2)
        ax.text(x, -y, n.id.rsplit(":", 1)[1], ha="center", va="center", fontsize=8, zorder=3)
        ax.text(x, -y - 0.3, f"{len(n.channels)} ch", ha="center", va="center", fontsize=7, color="#444444",
                bbox=dict(boxstyle="round,pad=0.15", facecolor="white", edgecolor="none", alpha=0.85), zorder=3)
    for column, name in enumerate(graph.layers):
        ax.text(column, 0.8, name, ha="center", va="bottom", fontsize=10, fontweight="bold")
    ax.set_xlim(-0.5, len(graph.layers) - 0.5)
    ax.set_ylim(-tallest + 0.3, 1.4)
    ax.axis("off")
    info = graph.info
    ax.set_title(title or f"SUMMIT attribution graph ({info.get('images', '?')} images, {info.get('steps', '?')} "
                 f"steps)\nred +, blue -, width ~ |w| / strongest |w| between the same layers", fontsize=10)
    return ax


# ------------------------------------------------------------------------------------------------ HTML

def _thumbnails(graph, images, spec):
    """{image index: PNG data URI} for every image some node lists among its top images."""
    from PIL import Image
    if images is None:
        return {}
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[1] in (1, 3) and images.shape[-1] not in (1, 3):   # (N, C, H, W)
        if spec is None:
            raise ValueError(f"images {images.shape} look like model inputs (N, C, H, W): pass spec=model.spec "
                             "to denormalise them, or give pixels (N, H, W, 3) in [0, 1]")
        images = np.clip(spec.denormalize(images.astype(np.float32)), 0, 1).transpose(0, 2, 3, 1)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"images must be pixels (N, H, W, 3), got shape {images.shape}")
    wanted = sorted({i for n in graph.nodes for i in n.top_images})
    if wanted and wanted[-1] >= len(images):
        raise ValueError(f"the graph refers to image {wanted[-1]} but only {len(images)} images were given: "
                         "pass the images the graph was computed on")
    pixels = images if images.dtype == np.uint8 else (np.clip(images, 0, 1) * 255).round().astype(np.uint8)
    uris = {}
    for i in wanted:
        img = Image.fromarray(pixels[i].squeeze(-1) if pixels.shape[-1] == 1 else pixels[i])
        img.thumbnail((THUMBNAIL, THUMBNAIL))
        buffer = io.BytesIO()
        img.save(buffer, format="PNG")
        uris[str(i)] = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return uris


def write_html(graph, path, images=None, spec=None):
    """Write the interactive page to `path` (no network, no external files); returns the Path."""
    data = json.loads(graph.to_json())
    data["thumbs"] = _thumbnails(graph, images, spec)
    payload = json.dumps(data).replace("</", "<\\/")            # cannot close the <script> element
    title = html.escape(f"SUMMIT attribution graph: {', '.join(graph.layers)}")
    page = PAGE.replace("%TITLE%", title).replace("%DATA%", payload)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>%TITLE%</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #222; background: #fff; }
header { padding: 10px 16px; border-bottom: 1px solid #ddd; }
header h1 { font-size: 17px; margin: 0 0 4px; }
header .controls { font-size: 13px; color: #444; }
main { display: flex; align-items: flex-start; }
#graph { flex: 1 1 auto; overflow: auto; padding: 8px; }
#panel { flex: 0 0 330px; border-left: 1px solid #ddd; padding: 10px 14px; min-height: 400px; }
#panel h2 { font-size: 15px; margin: 0 0 6px; }
#panel .channels { font-family: monospace; font-size: 12px; word-break: break-word; }
#panel img { width: 72px; height: 72px; image-rendering: pixelated; margin: 2px; border: 1px solid #ccc; }
#panel figure { display: inline-block; margin: 0; text-align: center; font-size: 11px; color: #666; }
#panel table { border-collapse: collapse; font-size: 12px; }
#panel td { padding: 1px 6px 1px 0; }
.node circle { fill: #f7f7f7; stroke: #333; stroke-width: 1.5; cursor: pointer; }
.node.selected circle { fill: #ffe08a; stroke-width: 3; }
.node text { font-size: 12px; pointer-events: none; }
.node .count { font-size: 11px; fill: #555; paint-order: stroke; stroke: #fff; stroke-width: 4px; }
.layer { font-size: 14px; font-weight: bold; }
.edge { fill: none; }
.dim { opacity: 0.06 !important; }
.pos { color: #d62728; } .neg { color: #1f77b4; }
.link { cursor: pointer; text-decoration: underline dotted; }
</style></head>
<body>
<header><h1>%TITLE%</h1>
<div class="controls" id="controls"></div></header>
<main><div id="graph"></div>
<div id="panel"><h2>Click a node</h2><p>It shows the cluster's channels, the images that activate it most,
and its strongest incoming and outgoing edges. Red edges add to the target's activation, blue ones take from
it; width ~ |weight| relative to the strongest edge between the same two layers.</p></div></main>
<div id="status"></div>
<script type="application/json" id="graph-data">%DATA%</script>
<script>
"use strict";
window.onerror = function (message, source, line) {
  var e = document.createElement("pre");
  e.id = "summit-js-error";
  e.textContent = "JS error: " + message + " (line " + line + ")";
  document.body.appendChild(e);
};
var SVG = "http://www.w3.org/2000/svg";
var G = JSON.parse(document.getElementById("graph-data").textContent);
var COLW = 260, ROWH = 62, TOP = 48, LEFT = 90, R = 17;

function el(name, attrs, parent) {
  var e = document.createElementNS(SVG, name);
  for (var k in attrs) e.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(e);
  return e;
}
function esc(s) {
  return String(s).replace(/[&<>"']/g, function (c) { return "&#" + c.charCodeAt(0) + ";"; });
}
function fmt(w) { return (w >= 0 ? "+" : "") + w.toPrecision(3); }

var pos = {}, rows = {}, byId = {};
G.nodes.forEach(function (n) {
  var c = G.layers.indexOf(n.layer);
  rows[c] = (rows[c] || 0) + 1;
  pos[n.id] = { x: LEFT + c * COLW, y: TOP + (rows[c] - 1) * ROWH + R + 10 };
  byId[n.id] = n;
});
var tallest = Math.max.apply(null, Object.values(rows).concat([1]));
var svg = el("svg", { width: LEFT + (G.layers.length - 1) * COLW + 120, height: TOP + tallest * ROWH + 20 },
             document.getElementById("graph"));
G.layers.forEach(function (name, c) {
  el("text", { x: LEFT + c * COLW, y: 22, "text-anchor": "middle", "class": "layer" }, svg).textContent = name;
});
var edgeLayer = el("g", {}, svg), nodeLayer = el("g", {}, svg);
var scale = {};                          // per layer pair: edges are drawn relative to the strongest between them
G.edges.forEach(function (e) {
  var l = byId[e.source].layer;
  scale[l] = Math.max(scale[l] || 1e-30, Math.abs(e.weight));
});
function rel(e) { return Math.abs(e.weight) / scale[byId[e.source].layer]; }
var order = G.edges.slice().sort(function (a, b) { return rel(a) - rel(b); });
var paths = order.map(function (e) {
  var a = pos[e.source], b = pos[e.target], s = rel(e), mid = (a.x + b.x) / 2;
  var p = el("path", { d: "M" + (a.x + R) + "," + a.y + " C" + mid + "," + a.y + " " + mid + "," + b.y + " " +
                          (b.x - R) + "," + b.y,
                       "class": "edge", stroke: e.weight >= 0 ? "#d62728" : "#1f77b4",
                       "stroke-width": 0.5 + 9 * s, "stroke-opacity": 0.15 + 0.75 * s }, edgeLayer);
  el("title", {}, p).textContent = e.source + " \\u2192 " + e.target + ": w = " + fmt(e.weight);
  p.edge = e;
  return p;
});
var loudest = {};                        // node area ~ mean activation, relative to the most active in its layer
G.nodes.forEach(function (n) { loudest[n.layer] = Math.max(loudest[n.layer] || 1e-30, n.mean_activation); });
var circles = G.nodes.map(function (n) {
  var g = el("g", { "class": "node", "data-id": n.id }, nodeLayer), p = pos[n.id];
  el("circle", { cx: p.x, cy: p.y, r: 9 + 9 * Math.sqrt(Math.max(n.mean_activation, 0) / loudest[n.layer]) }, g);
  el("text", { x: p.x, y: p.y + 4, "text-anchor": "middle" }, g).textContent = n.id.split(":").pop();
  var label = el("text", { x: p.x, y: p.y + R + 13, "text-anchor": "middle", "class": "count" }, g);
  label.textContent = n.channels.length + " ch";
  el("title", {}, g).textContent = n.id + " (" + n.channels.length + " channels, mean activation " +
                                    n.mean_activation.toPrecision(3) + ")";
  g.addEventListener("click", function () { select(n.id); });
  return g;
});

// which edges to show: those at least `threshold` % of the strongest between the same two layers
var threshold = 0, selected = null;
var controls = document.getElementById("controls");
controls.innerHTML = G.info.images + " images, " + G.info.clusters + " clusters per layer, IG with " +
  G.info.steps + " " + G.info.method + " steps" + (G.info.literal ? " (literal eq. 6: no activation factor)" : "") +
  " &nbsp;|&nbsp; hide edges weaker than <input id='k' type='range' min='0' max='100' value='0'> " +
  "<span id='kval'></span> of the strongest between the same layers (<span id='kcount'></span> shown)";
var slider = document.getElementById("k");
slider.addEventListener("input", function () { threshold = +slider.value; restyle(); });

function restyle() {
  var count = 0;
  paths.forEach(function (p) {
    var visible = 100 * rel(p.edge) >= threshold;
    count += visible ? 1 : 0;
    var touches = !selected || p.edge.source === selected || p.edge.target === selected;
    p.style.display = visible ? "" : "none";
    p.classList.toggle("dim", !touches);
  });
  document.getElementById("kval").textContent = threshold + "%";
  document.getElementById("kcount").textContent = count + " of " + paths.length + " edges";
  circles.forEach(function (g) { g.classList.toggle("selected", g.getAttribute("data-id") === selected); });
}

function edgeRows(list, other) {
  return list.sort(function (a, b) { return Math.abs(b.weight) - Math.abs(a.weight); }).slice(0, 8)
    .map(function (e) {
      return "<tr><td class='link' data-go='" + esc(e[other]) + "'>" + esc(e[other]) + "</td><td class='" +
             (e.weight >= 0 ? "pos" : "neg") + "'>" + fmt(e.weight) + "</td></tr>";
    }).join("");
}

function select(id) {
  selected = selected === id ? null : id;
  restyle();
  var panel = document.getElementById("panel");
  if (!selected) { panel.innerHTML = "<h2>Click a node</h2>"; return; }
  var n = byId[id];
  var ins = G.edges.filter(function (e) { return e.target === id; });
  var outs = G.edges.filter(function (e) { return e.source === id; });
  var imgs = n.top_images.map(function (i) {
    return G.thumbs[i] ? "<figure><img alt='image " + i + "' src='" + G.thumbs[i] + "'><figcaption>#" + i +
                         "</figcaption></figure>" : "#" + i + " ";
  }).join("");
  panel.innerHTML = "<h2>" + esc(n.id) + "</h2>" +
    "<p>layer <b>" + esc(n.layer) + "</b>, " + n.channels.length + " channels:<br><span class='channels'>" +
    n.channels.join(", ") + "</span></p>" +
    "<p>mean activation (sum over its channels of the spatial mean, averaged over the images): " +
    n.mean_activation.toPrecision(4) +
    (n.delta === null ? "" : "<br>completeness gap of its incoming edges: " + n.delta.toExponential(2)) + "</p>" +
    "<p><b>top images</b><br>" + imgs + "</p>" +
    (ins.length ? "<p><b>strongest inputs</b><table>" + edgeRows(ins, "source") + "</table></p>" : "") +
    (outs.length ? "<p><b>strongest outputs</b><table>" + edgeRows(outs, "target") + "</table></p>" : "");
  panel.querySelectorAll("[data-go]").forEach(function (td) {
    td.addEventListener("click", function () { selected = null; select(td.getAttribute("data-go")); });
  });
}

restyle();
var wanted = decodeURIComponent(location.hash.replace(/^#node=/, ""));    // a link can open a node: page.html#node=ID
if (byId[wanted]) select(wanted);
var marker = document.createElement("div");
marker.id = "summit-rendered";
marker.hidden = true;
marker.textContent = "rendered nodes: " + G.nodes.map(function (n) { return n.id; }).join(" ") +
                     " | edges: " + paths.length;
document.getElementById("status").appendChild(marker);
</script>
</body></html>
"""
