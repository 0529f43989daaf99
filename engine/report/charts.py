"""The report's charts, drawn by pygal as inline SVG.

pygal writes plain SVG (text and shapes, its stylesheet inlined) with the Python
standard library; it loads nothing at view time. Its chart config travels in a
``<script>`` element for its optional tooltips: removed here, so the page holds no
script at all (and its Content-Security-Policy forbids any). Labels are the
report's own words and numbers; nothing from a row is drawn.
"""

from __future__ import annotations

import itertools
import math
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pygal
from markupsafe import Markup
from pygal.graph.graph import Graph
from pygal.style import Style

# pygal appends an import finder for its old map plugins that has no find_spec: while it
# is there, every import that fails anywhere in the process (a codec looked up by name)
# raises an ImportWarning. The report draws no map.
sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, pygal.PluginImportFixer)]

#: Time buckets the over-time chart may use, in seconds: the first giving at most
#: ``MAX_BUCKETS`` columns wins (past the last, whatever width gives that many).
BUCKETS_S = (1, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 86400)
MAX_BUCKETS = 60
#: Dots the estimate chart draws at most: an SVG of a million would not open.
MAX_DOTS = 500
#: Upper edges of the latency histogram's bins, in milliseconds.
LATENCY_EDGES_MS = (50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000)
#: Upper edges of the render-time histogram's bins, in seconds.
RENDER_EDGES_S = (10, 30, 60, 120, 300, 600, 1800, 3600, 7200)

_STYLE = Style(
    background="white",
    plot_background="white",
    foreground="#222",
    foreground_strong="#111",
    foreground_subtle="#666",
    font_family="system-ui, sans-serif",
    colors=("#2b6cb0", "#2f855a", "#c05621", "#c53030", "#6b46c1", "#718096"),
)


def _options(title: str, **extra: object) -> dict[str, object]:
    return extra | {
        "title": title,
        "style": _STYLE,
        "js": [],
        "disable_xml_declaration": True,
        "width": 800,
        "height": 360,
        "explicit_size": False,
        "legend_at_bottom": True,
    }


def svg(chart: Graph) -> Markup:
    """``chart`` as an inline ``<svg>`` element, without pygal's script."""
    tree = chart.render_tree()
    for parent in list(tree.iter()):
        for child in list(parent):
            if isinstance(child.tag, str) and child.tag.rsplit("}", 1)[-1] == "script":
                parent.remove(child)
    # ElementTree escapes every text and attribute it writes.
    return Markup(ET.tostring(tree, encoding="unicode"))


def counts_bar(title: str, counts: dict[str, int]) -> Markup:
    chart = pygal.Bar(**_options(title, show_legend=False, print_values=True))
    chart.x_labels = list(counts)
    chart.add("jobs", list(counts.values()))
    return svg(chart)


def _histogram(title: str, values: list[float], edges: tuple[int, ...], unit: str) -> Markup:
    bins = [0] * (len(edges) + 1)
    for value in values:
        index = next((i for i, edge in enumerate(edges) if value < edge), len(edges))
        bins[index] += 1
    labels = [f"< {edges[0]:,} {unit}"]
    labels += [f"{low:,}-{high:,} {unit}" for low, high in itertools.pairwise(edges)]
    labels.append(f"≥ {edges[-1]:,} {unit}")
    chart = pygal.Bar(**_options(title, show_legend=False, print_values=True))
    chart.x_labels = labels
    chart.x_label_rotation = 30
    chart.add("count", bins)
    return svg(chart)


def latency_histogram(latencies_ms: list[float]) -> Markup:
    return _histogram("Request latency", latencies_ms, LATENCY_EDGES_MS, "ms")


def render_histogram(render_s: list[float]) -> Markup:
    return _histogram("Render time (answer to completed)", render_s, RENDER_EDGES_S, "s")


def _bucket(start: float, end: float) -> int:
    span = max(end - start, 1.0)
    return next((b for b in BUCKETS_S if span / b <= MAX_BUCKETS), math.ceil(span / MAX_BUCKETS))


def _cumulative(times: list[float], start: float, width: int, buckets: int) -> list[int]:
    counts = [0] * buckets
    for t in times:
        counts[min(int((t - start) // width), buckets - 1)] += 1
    total, out = 0, []
    for n in counts:
        total += n
        out.append(total)
    return out


def over_time(submitted: list[float], completed: list[float]) -> Markup:
    """Cumulative submissions (video_id answered) and completed renders, by time bucket."""
    times = submitted + completed
    start, end = min(times), max(times)
    width = _bucket(start, end)
    start = math.floor(start / width) * width
    buckets = int((end - start) // width) + 1
    fmt = "%H:%M:%S" if width < 60 else "%m-%d %H:%M" if width < 86400 else "%Y-%m-%d"
    title = f"Submitted and completed over time (UTC, {width:,} s steps)"
    chart = pygal.Line(**_options(title, show_dots=buckets <= 20))
    chart.x_labels = [
        datetime.fromtimestamp(start + i * width, UTC).strftime(fmt) for i in range(buckets)
    ]
    chart.x_labels_major_every = max(buckets // 10, 1)
    chart.show_minor_x_labels = False
    chart.x_label_rotation = 30
    chart.add("submitted", _cumulative(submitted, start, width, buckets))
    chart.add("render completed", _cumulative(completed, start, width, buckets))
    return svg(chart)


def estimate_scatter(pairs: list[tuple[float, float]]) -> Markup:
    """One dot per completed video (an even sample of ``MAX_DOTS`` beyond that):
    estimated seconds against the service's duration."""
    title = "Video seconds: estimated (x) against actual (y)"
    if len(pairs) > MAX_DOTS:
        title += f", every {math.ceil(len(pairs) / MAX_DOTS)}th of {len(pairs):,} videos"
        pairs = pairs[:: math.ceil(len(pairs) / MAX_DOTS)]
    chart = pygal.XY(**_options(title, stroke=False))
    top = max(max(e, a) for e, a in pairs)
    chart.add("videos", pairs)
    chart.add("estimate = actual", [(0, 0), (top, top)], stroke=True, show_dots=False)
    return svg(chart)
