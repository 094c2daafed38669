"""The feature dashboards' HTML: an index page and one page per sampled feature, plain HTML with inline SVG (no
JavaScript, no external files, relative links only). The numbers come from sae_harness/dashboard.py's records."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # dashboard.py imports this module; the record types alone are needed here
    from .dashboard import Context, FeatureRecord, LogitToken

HISTOGRAM_BINS = 32
HIGHLIGHT_RGB = (255, 140, 0)

STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:70em;color:#222}
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
.context{white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:.9em}
.tokens code{white-space:pre;background:#f3f3f3;margin-right:.4em;padding:0 .2em}
.act{display:inline-block;min-width:4em;color:#666}ol.contexts li{margin:.4em 0}"""


def fmt(x: float) -> str:
    return f"{x:.4g}"


def esc(text: str) -> str:
    return html.escape(text, quote=True)


def visible(token: str) -> str:
    """A token with its spaces and newlines made visible."""
    return esc(token.replace(" ", "\u2423").replace("\n", "\u21b5"))


def page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f"<style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


def context_html(context: Context, feature_max: float) -> str:
    spans = []
    for p in context.pieces:
        alpha = min(1.0, p.activation / feature_max) if p.activation > 0 else 0.0
        style = f"background-color:rgba({HIGHLIGHT_RGB[0]},{HIGHLIGHT_RGB[1]},{HIGHLIGHT_RGB[2]},{alpha:.2f})"
        if p.is_max:
            style += ";outline:2px solid #b00;font-weight:bold"
        cls = "tok max" if p.is_max else "tok"
        spans.append(f'<span class="{cls}" style="{style}" title="activation {fmt(p.activation)}">{esc(p.text)}</span>')
    return (f'<li><span class="act" data-value="{context.activation!r}">{fmt(context.activation)}</span> '
            f'<span class="context">{"".join(spans)}</span></li>')


def histogram_svg(values: np.ndarray) -> str:
    """Bars of the feature's nonzero activations on held-out tokens."""
    width, height, pad = 460, 150, 30
    counts, edges = np.histogram(values, bins=HISTOGRAM_BINS, range=(0.0, float(values.max())))
    bar = (width - 2 * pad) / HISTOGRAM_BINS
    rects = []
    for i, count in enumerate(counts):
        if not count:
            continue
        h = (height - 2 * pad) * count / counts.max()
        rects.append(f'<rect x="{pad + i * bar:.1f}" y="{height - pad - h:.1f}" width="{bar * 0.9:.1f}" '
                     f'height="{h:.1f}" fill="#e8890c"><title>{fmt(edges[i])} to {fmt(edges[i + 1])}: '
                     f"{count} tokens</title></rect>")
    return (f'<svg class="histogram" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'role="img" aria-label="histogram of nonzero activations">{"".join(rects)}'
            f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#444"/>'
            f'<text x="{pad}" y="{height - 10}" font-size="11">0</text>'
            f'<text x="{width - pad}" y="{height - 10}" font-size="11" text-anchor="end">{fmt(edges[-1])}</text>'
            f'<text x="{width / 2}" y="{height - 10}" font-size="11" text-anchor="middle">activation</text>'
            f'<text x="{pad}" y="{pad - 8}" font-size="11">{counts.max()} tokens (tallest bar)</text></svg>')


def density_svg(density: float, all_density: np.ndarray, n_tokens: int) -> str:
    """Log-scale strip: grey bars for the densities of all alive features, a red line for this one."""
    width, height, pad = 460, 90, 30
    low = -float(np.ceil(np.log10(n_tokens)))
    alive = np.log10(all_density[all_density > 0])
    counts, edges = np.histogram(alive, bins=40, range=(low, 0.0))

    def x(log_value: float) -> float:
        return pad + (width - 2 * pad) * (log_value - low) / -low

    bars = "".join(f'<rect x="{x(edges[i]):.1f}" y="{height - pad - 40 * c / counts.max():.1f}" '
                   f'width="{x(edges[i + 1]) - x(edges[i]):.1f}" height="{40 * c / counts.max():.1f}" fill="#bbb"/>'
                   for i, c in enumerate(counts) if c)
    ticks = "".join(f'<text x="{x(d):.1f}" y="{height - 12}" font-size="10" text-anchor="middle">1e{d}</text>'
                    for d in range(int(low), 1))
    here = x(np.log10(density))
    return (f'<svg class="density" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'role="img" aria-label="feature density, log scale">{bars}'
            f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#444"/>{ticks}'
            f'<line x1="{here:.1f}" y1="8" x2="{here:.1f}" y2="{height - pad}" stroke="#c00" stroke-width="2"/>'
            f'<text x="{pad}" y="{height - 1}" font-size="10">fraction of held-out tokens (grey: all alive '
            f'features; red: this one)</text></svg>')


def logit_html(cls: str, tokens: list[LogitToken]) -> str:
    items = "".join(f'<code title="{fmt(t.logit)}" data-token="{esc(t.token)}">{visible(t.token)}</code>'
                    for t in tokens)
    return f'<p class="tokens {cls}">{items}</p>'


def feature_page(record: FeatureRecord, prev_id: int | None, next_id: int | None, all_density: np.ndarray,
                 n_tokens: int, run_name: str) -> str:
    nav = ['<a href="index.html">all features</a>']
    nav += [f'<a href="feature_{i}.html">{label} (#{i})</a>' for i, label in ((prev_id, "previous"), (next_id, "next"))
            if i is not None]
    contexts = "".join(context_html(c, record.max_activation) for c in record.contexts)
    body = (f'<nav>{" · ".join(nav)}</nav>\n<h1>Feature {record.id} <small class="group">{record.group}</small></h1>\n'
            f'<p>Run {esc(run_name)}. Density <span class="density-value" data-value="{record.density!r}">'
            f"{fmt(record.density)}</span> (fires on {record.fires} of {n_tokens} held-out tokens); max activation "
            f'<span class="max-activation" data-value="{record.max_activation!r}">'
            f"{fmt(record.max_activation)}</span>.</p>\n"
            f"{density_svg(record.density, all_density, n_tokens)}\n"
            f"<h2>Top activations on held-out text</h2>\n<p>Background: the activation at each token, relative to "
            f"the max; outlined: the max token of the context.</p>\n<ol class=\"contexts\">{contexts}</ol>\n"
            f"<h2>Activation histogram (nonzero activations)</h2>\n{histogram_svg(record.nonzero_activations)}\n"
            f"<h2>Tokens the decoder direction promotes</h2>\n{logit_html('promoted', record.promoted)}\n"
            f"<h2>Tokens it suppresses</h2>\n{logit_html('suppressed', record.suppressed)}")
    return page(f"Feature {record.id} · {run_name}", body)


def marked_html(context: Context) -> str:
    return "".join(f"<mark>{esc(p.text)}</mark>" if p.is_max else esc(p.text) for p in context.pieces)


def index_page(records: list[FeatureRecord], run_name: str, sae, n_tokens: int, n_alive: int) -> str:
    rows = "".join(
        f'<tr><td><a href="feature_{r.id}.html">{r.id}</a></td><td>{r.group}</td><td>{fmt(r.density)}</td>'
        f'<td>{fmt(r.max_activation)}</td><td class="context">{marked_html(r.contexts[0])}</td>'
        f'<td class="tokens">{"".join(f"<code>{visible(t.token)}</code>" for t in r.promoted[:5])}</td></tr>'
        for r in records)
    meta = sae.cfg.metadata
    body = (f"<h1>Feature dashboards: {esc(run_name)}</h1>\n<p>{esc(meta.model_name)}, {esc(meta.hook_name)}, "
            f"{sae.cfg.d_sae} features, {n_alive} alive on {n_tokens} held-out tokens. Sampled: the most frequent, "
            "random alive and the rarest alive features; the top context's max token is highlighted.</p>\n"
            "<table><tr><th>feature</th><th>group</th><th>density</th><th>max act.</th><th>top context</th>"
            f"<th>top promoted tokens</th></tr>{rows}</table>")
    return page(f"Feature dashboards · {run_name}", body)
