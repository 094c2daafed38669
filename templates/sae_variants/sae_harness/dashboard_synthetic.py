"""Feature dashboards on a synthetic preset (synth-cpu, synth-16k): each sampled SAE feature against the known true
features, where a language-model preset shows held-out text (sae_harness/dashboard.py, which dispatches here).

For each feature: the true features whose vectors are closest to its decoder row (|cos|, best and second best, as
SAELens's ground-truth eval matches them), how often it fires against how often each of them is active on held-out
samples (and the generator's firing probability), its precision, recall and F1 as a detector of each, and the true
features most often active when it fires. Samples come from sae_harness/synthetic.py's held-out split (its seed,
its batches), the first --heldout-tokens of them; the SAE's firing counts as firing when an activation is nonzero,
as in the run's ground_truth group. The outputs are those of a text dashboard: run_i/dashboard/index.html,
feature_<id>.html, features.json and appendix.tex, plain HTML with inline SVG and no JavaScript.
"""

import json
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .dashboard import (
    N_FEATURES,
    SAMPLE_SEED_OFFSET,
    DashboardError,
    check_run_matches_config,
    load_run_sae,
    sample_features,
    write_site,
)
from .dashboard_html import density_svg, esc, fmt, histogram_svg, page
from .dashboard_latex import ROWS_PER_GROUP, dashboard_label, escape_latex, format_number
from .synthetic import HELDOUT_SEED, SAMPLE_BATCH, load_synthetic_model, sample_batches

N_MATCHES = 2               # true features shown per SAE feature by decoder |cos|: the best and the second best
N_CO_ACTIVE = 5             # true features shown per SAE feature by how often they are active when it fires
log = logging.getLogger(__name__)
MAX_SAMPLES = 8 * SAMPLE_BATCH   # default held-out samples: synth-cpu's whole split, a prefix of synth-16k's
DEFINITIONS = {
    "cos": "|cos| between the SAE feature's decoder row and the true feature's vector",
    "true_rate": "fraction of the held-out samples where the true feature is active",
    "probability": "the generator's firing probability of the true feature (hierarchy and correlations move the "
                   "rate it reaches)",
    "precision": "of the samples where the SAE feature fires, the fraction where the true feature is active",
    "recall": "of the samples where the true feature is active, the fraction where the SAE feature fires",
    "f1": "harmonic mean of precision and recall (0 where both are 0)",
    "co_active": "true features by P(active | the SAE feature fires) on the held-out samples",
}


@dataclass(frozen=True)
class Match:
    """A true feature seen as what an SAE feature detects (DEFINITIONS)."""

    feature: int
    cos: float
    true_rate: float
    probability: float
    both: int
    """Samples where the SAE feature fires and the true feature is active."""
    precision: float
    recall: float
    f1: float


@dataclass
class SyntheticRecord:
    id: int
    group: str
    density: float
    fires: int
    max_activation: float
    matches: list[Match]
    co_active: list[dict]
    nonzero_activations: np.ndarray

    def to_json(self) -> dict:
        return {"id": self.id, "group": self.group, "density": self.density, "fires": self.fires,
                "max_activation": self.max_activation, "matches": [asdict(m) for m in self.matches],
                "co_active": self.co_active}


@torch.no_grad()
def abs_cosines(rows: torch.Tensor, true_vectors: torch.Tensor) -> torch.Tensor:
    """|cos| between each decoder row and each true feature vector, (rows, true features): absolute, because a
    feature and its negation detect the same direction (as SAELens's ground-truth eval matches them)."""
    return (F.normalize(rows.float(), dim=1) @ F.normalize(true_vectors.float(), dim=1).T).abs()


def decoder_matches(W_dec: torch.Tensor, true_vectors: torch.Tensor, n: int = N_MATCHES):
    """(|cos|, true feature index), each (d_sae, n): every decoder row's n closest true features, closest first."""
    return abs_cosines(W_dec, true_vectors).topk(n, dim=1)


def detection_scores(both: np.ndarray, fires: np.ndarray, active: np.ndarray):
    """(precision, recall, F1) from the counts of samples where both fire, the SAE feature fires and the true
    feature is active; 0 where a denominator is 0, as SAELens's ground-truth eval counts them."""
    precision = np.divide(both, fires, out=np.zeros_like(both, dtype=float), where=fires > 0)
    recall = np.divide(both, active, out=np.zeros_like(both, dtype=float), where=active > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
    return precision, recall, f1


def heldout_samples(model, n_samples: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(hidden vectors, which true features are active) of the held-out split's first n_samples, batch by batch:
    drawn once and read by every run's dashboard. The true features are kept as bool masks, 1 byte per sample and
    true feature: 50 MB for synth-cpu's 49,152 held-out samples, 1 GiB for MAX_SAMPLES of synth-16k."""
    return [(hidden, features > 0) for hidden, features in sample_batches(model, HELDOUT_SEED, n_samples)]


@torch.no_grad()
def match_counts(sae, samples, match: torch.Tensor, n_true: int) -> dict[str, np.ndarray]:
    """Over the samples, for every SAE feature: fires (samples where it fires), both (d_sae, N_MATCHES: where it
    fires and its match of that rank is active); active: samples where each true feature is active."""
    device = sae.W_dec.device
    fires, active = torch.zeros(sae.W_dec.shape[0], dtype=torch.long), torch.zeros(n_true, dtype=torch.long)
    both = torch.zeros(match.shape, dtype=torch.long)
    for hidden, truth in samples:
        fired, truth = sae.encode(hidden.to(device)) != 0, truth.to(device)
        fires += fired.sum(dim=0).cpu()
        active += truth.sum(dim=0).cpu()
        for rank in range(match.shape[1]):
            both[:, rank] += (fired & truth[:, match[:, rank]]).sum(dim=0).cpu()
    return {"fires": fires.numpy(), "active": active.numpy(), "both": both.numpy()}


@torch.no_grad()
def sampled_activations(sae, samples, ids: list[int], n_true: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The activations of the features ids at every sample (samples, len(ids)), and for each of them the number of
    samples where it fires and each true feature is active (len(ids), n_true)."""
    device, columns = sae.W_dec.device, torch.tensor(ids, device=sae.W_dec.device)
    co_active, acts = torch.zeros(len(ids), n_true), []
    for hidden, truth in samples:
        chunk = sae.encode(hidden.to(device))[:, columns]
        co_active += ((chunk != 0).float().T @ truth.to(device).float()).cpu()
        acts.append(chunk.float().cpu())
    return torch.cat(acts), co_active


@torch.no_grad()
def feature_records(sae, model, samples, n_features: int, seed: int) -> tuple[list[SyntheticRecord], dict]:
    """The sampled features' records, and the run-wide numbers (over every SAE feature) for features.json."""
    true_vectors = model.feature_dict.feature_vectors.to(sae.W_dec.device)
    n_true, n_samples = len(true_vectors), sum(len(hidden) for hidden, _ in samples)
    cos, match = (t.cpu() for t in decoder_matches(sae.W_dec, true_vectors))
    counts = match_counts(sae, samples, match, n_true)
    density = counts["fires"] / n_samples
    sampled = sample_features(density, n_features, seed)
    if not sampled:
        raise DashboardError("no feature fires on the held-out samples: there is nothing to show")
    ids = [i for i, _ in sampled]
    acts, co_active = sampled_activations(sae, samples, ids, n_true)
    cos, match = cos.numpy(), match.numpy()
    precision, recall, f1 = detection_scores(counts["both"], counts["fires"][:, None], counts["active"][match])
    probability = model.activation_generator.firing_probabilities.cpu().numpy()
    sampled_cos = abs_cosines(sae.W_dec[ids], true_vectors).cpu()
    records = []
    for col, (fid, group) in enumerate(sampled):
        matches = [Match(int(j), float(cos[fid, r]), float(counts["active"][j] / n_samples), float(probability[j]),
                         int(counts["both"][fid, r]), float(precision[fid, r]), float(recall[fid, r]),
                         float(f1[fid, r])) for r, j in enumerate(match[fid])]
        given = co_active[col] / max(1, int(counts["fires"][fid]))
        top = given.topk(min(N_CO_ACTIVE, n_true))
        co = [{"feature": int(j), "p_active_given_fires": float(p), "cos": float(sampled_cos[col, j])}
              for p, j in zip(top.values, top.indices) if p > 0]
        values = acts[:, col]
        records.append(SyntheticRecord(fid, group, float(density[fid]), int(counts["fires"][fid]),
                                       float(values.abs().max()), matches, co, values[values != 0].abs().numpy()))
    run_wide = {"mean_best_cos": float(cos[:, 0].mean()), "mean_best_precision": float(precision[:, 0].mean()),
                "mean_best_recall": float(recall[:, 0].mean()), "mean_best_f1": float(f1[:, 0].mean())}
    return records, {"density": density, "n_samples": n_samples, **run_wide}


def match_rows(record: SyntheticRecord) -> str:
    rank_names = ("best", "second")
    return "".join(
        f'<tr class="match" data-feature="{m.feature}" data-cos="{m.cos!r}" data-precision="{m.precision!r}" '
        f'data-recall="{m.recall!r}" data-f1="{m.f1!r}"><td>{rank_names[r]}</td><td>#{m.feature}</td>'
        f"<td>{fmt(m.cos)}</td><td>{fmt(m.true_rate)}</td><td>{fmt(m.probability)}</td><td>{m.both}</td>"
        f"<td>{fmt(m.precision)}</td><td>{fmt(m.recall)}</td><td>{fmt(m.f1)}</td></tr>"
        for r, m in enumerate(record.matches))


def feature_page(record: SyntheticRecord, prev_id, next_id, density: np.ndarray, n_samples: int, run: str) -> str:
    nav = ['<a href="index.html">all features</a>']
    nav += [f'<a href="feature_{i}.html">{label} (#{i})</a>' for i, label in ((prev_id, "previous"), (next_id, "next"))
            if i is not None]
    co_active = "".join(f'<tr class="co-active" data-feature="{c["feature"]}"><td>#{c["feature"]}</td>'
                        f'<td>{fmt(c["p_active_given_fires"])}</td><td>{fmt(c["cos"])}</td></tr>'
                        for c in record.co_active)
    body = (f'<nav>{" · ".join(nav)}</nav>\n<h1>Feature {record.id} <small class="group">{record.group}</small></h1>\n'
            f'<p>Run {esc(run)}. Density <span class="density-value" data-value="{record.density!r}">'
            f"{fmt(record.density)}</span> (fires on {record.fires} of {n_samples} held-out samples); max activation "
            f'<span class="max-activation" data-value="{record.max_activation!r}">{fmt(record.max_activation)}'
            f"</span>. (The strip and the histogram say tokens: on a synthetic preset a token is one sample.)</p>\n"
            f"{density_svg(record.density, density, n_samples)}\n"
            "<h2>Closest true features (decoder direction)</h2>\n<p>|cos|: between the decoder row and the true "
            "feature's vector. Active: the true feature's rate on the held-out samples, and the generator's firing "
            "probability. Precision, recall and F1: this feature as a detector of that true feature.</p>\n"
            '<table class="matches"><tr><th>match</th><th>true feature</th><th>|cos|</th><th>active (held out)</th>'
            "<th>generator probability</th><th>both</th><th>precision</th><th>recall</th><th>F1</th></tr>"
            f"{match_rows(record)}</table>\n"
            "<h2>True features active when it fires</h2>\n"
            '<table class="co-active"><tr><th>true feature</th><th>P(active | fires)</th><th>|cos|</th></tr>'
            f"{co_active}</table>\n"
            f"<h2>Activation histogram (nonzero activations)</h2>\n{histogram_svg(record.nonzero_activations)}")
    return page(f"Feature {record.id} · {run}", body)


def index_page(records: list[SyntheticRecord], summary: dict) -> str:
    rows = "".join(
        f'<tr><td><a href="feature_{r.id}.html">{r.id}</a></td><td>{r.group}</td><td>{fmt(r.density)}</td>'
        f"<td>#{r.matches[0].feature}</td><td>{fmt(r.matches[0].cos)}</td><td>{fmt(r.matches[0].true_rate)}</td>"
        f"<td>{fmt(r.matches[0].f1)}</td><td>#{r.matches[1].feature} ({fmt(r.matches[1].cos)})</td></tr>"
        for r in records)
    body = (f"<h1>Feature dashboards: {esc(summary['run'])}</h1>\n<p>{esc(summary['model_name'])} (synthetic, "
            f"{summary['true_features']} true features), {summary['d_sae']} SAE features, {summary['alive_features']}"
            f" alive on {summary['heldout_samples']} held-out samples. Over every SAE feature on these samples: mean "
            f"|cos| to its closest true feature {fmt(summary['mean_best_cos'])}, mean F1 as its detector "
            f"{fmt(summary['mean_best_f1'])}. Sampled: the most frequent, random alive and the rarest alive "
            "features.</p>\n<table><tr><th>feature</th><th>group</th><th>density</th><th>closest true feature</th>"
            "<th>|cos|</th><th>its rate</th><th>F1 as its detector</th><th>second closest (|cos|)</th></tr>"
            f"{rows}</table>")
    return page(f"Feature dashboards · {summary['run']}", body)


def appendix_tex(summary: dict, index_path: str = "dashboard/index.html") -> str:
    """The run's figure for the paper's appendix, from its features.json contents (summary)."""
    run, rows = summary["run"], []
    for group in dict.fromkeys(f["group"] for f in summary["features"]):  # in the sampler's order
        for feature in [f for f in summary["features"] if f["group"] == group][:ROWS_PER_GROUP]:
            best, second = feature["matches"][:2]
            rows.append(rf"    {feature['id']} & {group} & {format_number(feature['density'])} & {best['feature']} & "
                        rf"{format_number(best['cos'])} & {format_number(best['f1'])} & {second['feature']} "
                        rf"({format_number(second['cos'])}) \\")
    caption = (f"Features of {escape_latex(run)}, chosen by code from its feature dashboards "
               f"({escape_latex(run)}/{escape_latex(index_path)} in the idea folder): density on held-out samples, "
               "the true feature whose vector is closest to the feature's decoder direction (|cos|) with the "
               "feature's F1 as a detector of it, and the second-closest true feature.")
    return "\n".join([
        f"% Written by sae_harness/dashboard_synthetic.py from {run}/dashboard/features.json.",
        r"\begin{figure}[tbp]", r"  \centering", r"  \small",
        r"  \begin{tabular}{@{}r l r r r r l@{}}",
        r"    feature & group & density & true feature & $|\cos|$ & F1 & second ($|\cos|$) \\ \hline", *rows,
        r"  \end{tabular}", f"  \\caption{{{caption}}}", f"  \\label{{{dashboard_label(run)}}}", r"\end{figure}",
    ]) + "\n"


def build_synthetic_dashboard(run_dir: Path, config, model, samples, n_features: int = N_FEATURES) -> Path:
    """Write run_dir/dashboard/ for a run on a synthetic preset and return its path. model: the preset's
    SyntheticModel; samples: heldout_samples(model, n)."""
    run_dir = Path(run_dir)
    sae = load_run_sae(run_dir)
    check_run_matches_config(sae, config)
    device = str(model.feature_dict.feature_vectors.device)
    sae = sae.to(device)
    seed = config.seed + SAMPLE_SEED_OFFSET
    records, numbers = feature_records(sae, model, samples, n_features, seed)
    density, n_samples = numbers.pop("density"), numbers.pop("n_samples")
    run_name = run_dir.resolve().name
    summary = {"run": run_name, "model_name": sae.cfg.metadata.model_name, "hook_name": sae.cfg.metadata.hook_name,
               "d_sae": sae.cfg.d_sae, "true_features": model.cfg.num_features, "heldout_samples": n_samples,
               "alive_features": int((density > 0).sum()), "sample_seed": seed, **numbers,
               "definitions": DEFINITIONS, "features": [r.to_json() for r in records]}
    files = {"index.html": index_page(records, summary), "features.json": json.dumps(summary, indent=2),
             "appendix.tex": appendix_tex(summary)}
    for i, record in enumerate(records):
        prev_id = records[i - 1].id if i > 0 else None
        next_id = records[i + 1].id if i + 1 < len(records) else None
        files[f"feature_{record.id}.html"] = feature_page(record, prev_id, next_id, density, n_samples, run_name)
    return write_site(run_dir, files)


def build_synthetic_dashboards(runs: list[Path], config, n_features: int = N_FEATURES,
                               n_samples: int | None = None) -> list[Path]:
    """The dashboards of several runs of one synthetic preset: the model is loaded and the samples drawn once.
    n_samples: held-out samples to read (default: the configuration's heldout_tokens, at most MAX_SAMPLES)."""
    from .workspace import default_cache_dir

    for run in runs:
        load_run_sae(run)  # a run without an SAE fails before the model is loaded
    cache_dir = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    # On the run's device: synth-16k's samples are drawn on a GPU in seconds, on a CPU in minutes.
    model = load_synthetic_model(config.preset_spec, cache_dir, config.resolved_device(), config.synthetic_hub)
    samples = heldout_samples(model, n_samples or min(config.heldout_tokens, MAX_SAMPLES))
    return [build_synthetic_dashboard(run, config, model, samples, n_features) for run in runs]


def main_synthetic(runs: list[Path], config, n_features: int, n_samples: int | None) -> int:
    """sae_harness.dashboard's main() on a synthetic preset. DashboardError is caught here: under `python -m
    sae_harness.dashboard` that module runs as __main__, whose DashboardError is another class than the one this
    module's imports raise."""
    try:
        for out in build_synthetic_dashboards(runs, config, n_features, n_samples):
            log.info("Wrote %s", out / "index.html")
    except DashboardError as err:
        print(f"Dashboard error: {err}", file=sys.stderr)
        return 2
    return 0
