"""Feature dashboards: a static site showing, for a sample of a run's SAE features, what they read and write.

    cd templates/sae_variants
    .venv/bin/python -m sae_harness.dashboard --run run_0 [--features 12] [--heldout-tokens N]

It loads run_i/sae (SAELens's format, as sae_harness/saelens_export.py writes it), the language model of the
configured preset (config.toml with SAE_* overrides, exactly as a run reads them) and held-out text only, never
training text. It writes run_i/dashboard/: index.html, one feature_<id>.html per sampled feature, features.json
with the same numbers for later code to cite, and appendix.tex, the run's figure for the paper's appendix
(sae_harness/dashboard_latex.py). Pages are plain HTML with inline SVG: no JavaScript, no external files, relative
links only. Everything runs on the CPU.
"""

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .activations import ActivationKey, ActivationSource, cached_or_streamed
from .config import ConfigError, ExperimentConfig, load_config
from .corpus import token_rows, valid_token_mask
from .dashboard_html import feature_page, index_page
from .dashboard_latex import appendix_tex

log = logging.getLogger(__name__)

TEMPLATE_DIR = Path(__file__).resolve().parent.parent
DEVICE = "cpu"              # a dashboard reads tens of thousands of tokens: the CPU is enough
N_FEATURES = 12             # sampled features: a third most frequent, a third random alive, a third rarest alive
N_CONTEXTS = 10             # top-activating contexts shown per feature
TOKENS_BEFORE, TOKENS_AFTER = 16, 6   # context window around the max-activating token
N_LOGIT_TOKENS = 10         # promoted and suppressed tokens shown per feature
ENCODE_BATCH = 4096         # activations per SAE encode
SAMPLE_SEED_OFFSET = 1234   # the random group is drawn with config.seed + this
MARK_OPEN, MARK_CLOSE = "[[", "]]"   # marks the max token in features.json's top_context_marked
GROUPS = ("frequent", "random", "rare")


class DashboardError(RuntimeError):
    """Something the user must fix (a missing SAE, a run of another model); the message says what."""


@dataclass(frozen=True)
class Piece:
    """One or more tokens shown as one span (a character split over byte tokens is shown whole)."""

    text: str
    activation: float
    is_max: bool


@dataclass
class Context:
    pieces: list[Piece]
    activation: float
    """The feature's activation at the max token of this context."""

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.pieces)

    @property
    def max_token(self) -> str:
        return next(p.text for p in self.pieces if p.is_max)

    @property
    def marked_text(self) -> str:
        return "".join(f"{MARK_OPEN}{p.text}{MARK_CLOSE}" if p.is_max else p.text for p in self.pieces)

    @property
    def parts(self) -> tuple[str, str, str]:
        """(text before the max token, the max token, text after it)."""
        at = next(i for i, p in enumerate(self.pieces) if p.is_max)
        return ("".join(p.text for p in self.pieces[:at]), self.pieces[at].text,
                "".join(p.text for p in self.pieces[at + 1:]))


@dataclass(frozen=True)
class LogitToken:
    token_id: int
    token: str
    logit: float


@dataclass
class FeatureRecord:
    id: int
    group: str
    density: float
    """Fraction of held-out tokens where the feature is > 0."""
    fires: int
    max_activation: float
    contexts: list[Context]
    nonzero_activations: np.ndarray
    promoted: list[LogitToken]
    suppressed: list[LogitToken]

    def to_json(self) -> dict:
        top = self.contexts[0]
        return {"id": self.id, "group": self.group, "density": self.density, "fires": self.fires,
                "max_activation": self.max_activation, "top_context": top.text,
                "top_context_marked": top.marked_text, "top_context_parts": list(top.parts),
                "max_token": top.max_token,
                "promoted": [asdict(t) for t in self.promoted], "suppressed": [asdict(t) for t in self.suppressed]}


@dataclass
class Heldout:
    tokens: torch.Tensor
    """(rows, context) token ids, BOS-separated documents as the run's held-out activations were computed."""
    valid: torch.Tensor
    """(rows, context) True at real text tokens (not BOS, not padding): the positions of acts, in order."""
    acts: torch.Tensor
    """(valid tokens, d_model) residual activations at the SAE's hook."""


def load_run_sae(run_dir: Path):
    """The run's SAE, loaded by SAELens from run_i/sae (the format every run writes)."""
    sae_dir = Path(run_dir) / "sae"
    if not (sae_dir / "cfg.json").exists():
        raise DashboardError(f"{sae_dir} holds no saved SAE (cfg.json). The run is unfinished, or its SAELens export "
                             "failed: see training.saelens_export in its final_info.json.")
    from sae_lens import SAE

    return SAE.load_from_disk(sae_dir, device=DEVICE).eval()


def check_run_matches_config(sae, config: ExperimentConfig):
    meta, preset = sae.cfg.metadata, config.preset_spec
    if (meta.model_name, meta.hook_name) != (preset.model_name, preset.hook_name):
        raise DashboardError(f"the SAE was trained on {meta.model_name} {meta.hook_name}, but the configuration "
                             f"(config.toml and SAE_* variables) gives {preset.model_name} {preset.hook_name}; "
                             "set SAE_PRESET and SAE_LAYER to the run's values.")


def heldout_activations(model, config: ExperimentConfig, n_tokens: int, cache_dir: Path) -> Heldout:
    """Held-out tokens and their activations, through the harness's activation cache (a run's own entry when the
    sizes match)."""
    preset = config.preset_spec
    context = config.preset_value("context_length", DEVICE)
    key = ActivationKey(preset.model_name, preset.hook_name, preset.corpus, "heldout", n_tokens, context,
                        str(preset.torch_dtype(DEVICE)))
    source = ActivationSource(model, key, preset.layer, config.preset_value("lm_batch_prompts", DEVICE), cache_dir)
    acts = cached_or_streamed(source, cache_dir, float("inf"), preset.d_model).all()
    return heldout_with_tokens(model.tokenizer, preset.corpus, context, acts, cache_dir)


def heldout_with_tokens(tokenizer, corpus: str, context_length: int, acts: torch.Tensor, cache_dir: Path) -> Heldout:
    """Held-out activations (computed at context_length, as a run's workspace holds them) with the token rows they
    were computed from."""
    tokens = token_rows(corpus, "heldout", tokenizer, context_length, len(acts), cache_dir)
    valid = valid_token_mask(tokens, tokenizer)
    if int(valid.sum()) != len(acts):
        raise RuntimeError(f"{int(valid.sum())} held-out tokens but {len(acts)} activations")
    return Heldout(tokens, valid, acts)


@torch.no_grad()
def fires_and_activations(sae, acts: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """In one pass over acts: the firing count of every feature, and the activations of the given features at every
    token; on the CPU, whatever device the SAE is on (a run's SAE may be on a GPU)."""
    counts, columns = torch.zeros(sae.W_dec.shape[0], dtype=torch.long), []
    for chunk in acts.split(ENCODE_BATCH):
        f = sae.encode(chunk.to(sae.W_dec.device, sae.W_dec.dtype))
        counts += (f > 0).sum(dim=0).cpu()
        columns.append(f[:, features.to(f.device)].cpu())
    return counts, torch.cat(columns)


def encode(sae, acts: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
    """Firing counts of every feature (features None), or the activations of the given features at every token."""
    counts, columns = fires_and_activations(sae, acts, torch.tensor([], dtype=torch.long) if features is None
                                            else features)
    return counts if features is None else columns


def sample_features(density: np.ndarray, n: int, seed: int) -> list[tuple[int, str]]:
    """(feature id, group): the most frequent, random alive (seeded) and rarest alive features, about n/3 each."""
    alive = np.flatnonzero(density > 0)
    by_density = alive[np.argsort(-density[alive], kind="stable")]
    n_frequent = min(n // 3, len(alive))
    frequent = by_density[:n_frequent]
    rare = by_density[n_frequent:][::-1][:n // 3]
    rest = np.setdiff1d(alive, np.concatenate([frequent, rare]))
    n_random = min(n - len(frequent) - len(rare), len(rest))
    chosen = np.random.default_rng(seed).choice(rest, size=n_random, replace=False)
    random_ids = chosen[np.argsort(-density[chosen], kind="stable")]
    return ([(int(i), "frequent") for i in frequent] + [(int(i), "random") for i in random_ids]
            + [(int(i), "rare") for i in rare])


def split_pieces(tokenizer, ids: list[int]) -> list[tuple[int, int, str]]:
    """(start, end, text) spans whose texts join to decode(ids): a token alone, or the byte tokens of one character."""
    spans, start = [], 0
    while start < len(ids):
        whole = tokenizer.decode(ids[start:])
        end = start + 1
        while end < len(ids) and tokenizer.decode(ids[start:end]) + tokenizer.decode(ids[end:]) != whole:
            end += 1
        spans.append((start, end, tokenizer.decode(ids[start:end])))
        start = end
    return spans


def activation_grid(heldout: Heldout, acts_f: torch.Tensor) -> torch.Tensor:
    """One feature's activations laid out as heldout.tokens, 0 at BOS and padding."""
    grid = torch.zeros(heldout.tokens.shape)
    grid[heldout.valid] = acts_f
    return grid


def overlaps(picked: list[tuple[int, int]], row: int, pos: int) -> bool:
    """Whether a window around (row, pos) would share tokens with a window around one of the picked positions."""
    return any(r == row and abs(p - pos) <= TOKENS_BEFORE + TOKENS_AFTER for r, p in picked)


def top_positions(heldout: Heldout, acts_f: torch.Tensor, n: int) -> list[tuple[int, int]]:
    """(row, position) of the feature's n highest activations whose windows do not overlap, highest first."""
    positions = heldout.valid.nonzero()
    order = torch.argsort(acts_f, descending=True)
    picked: list[tuple[int, int]] = []
    for flat in order[: 50 * n].tolist():  # enough candidates for n windows that do not overlap
        if acts_f[flat] <= 0 or len(picked) == n:
            break
        row, pos = positions[flat].tolist()
        if not overlaps(picked, row, pos):
            picked.append((row, pos))
    return picked


def context_window(tokenizer, heldout: Heldout, grid: torch.Tensor, row: int, pos: int) -> Context:
    """The text around (row, pos), TOKENS_BEFORE before and TOKENS_AFTER after, within its own document (never
    across a BOS); pos is the context's max token and grid (activation_grid) gives each piece's activation."""
    start, end = pos, pos + 1
    while start > max(0, pos - TOKENS_BEFORE) and heldout.valid[row, start - 1]:
        start -= 1
    while end < min(heldout.valid.shape[1], pos + TOKENS_AFTER + 1) and heldout.valid[row, end]:
        end += 1
    ids = heldout.tokens[row, start:end].tolist()
    pieces = [Piece(text, float(grid[row, start + a:start + b].max()), a <= pos - start < b)
              for a, b, text in split_pieces(tokenizer, ids)]
    # A window edge that cuts a character in two leaves a replacement character: drop that partial piece.
    while pieces and "\ufffd" in pieces[0].text and not pieces[0].is_max:
        pieces.pop(0)
    while pieces and "\ufffd" in pieces[-1].text and not pieces[-1].is_max:
        pieces.pop()
    return Context(pieces, float(grid[row, pos]))


def top_contexts(tokenizer, heldout: Heldout, acts_f: torch.Tensor, n: int = N_CONTEXTS) -> list[Context]:
    """The feature's n highest activations, each with a window of its own document (never across a BOS)."""
    grid = activation_grid(heldout, acts_f)
    return [context_window(tokenizer, heldout, grid, row, pos) for row, pos in top_positions(heldout, acts_f, n)]


@torch.no_grad()
def logit_effects(model, sae, features: list[int]) -> tuple[list[list[LogitToken]], list[list[LogitToken]]]:
    """Top and bottom tokens of W_dec[f] @ W_U for each feature.

    The direction goes through the final normalisation as a residual vector would: centred first for LayerNorm
    models (GPT-2, Pythia), then multiplied elementwise by ln_final's scale (Gemma's (1 + weight), which
    TransformerLens stores already folded into ln_final.w). The division by the residual norm is a positive
    scalar per token and does not change the ranking, so it is left out, as is LayerNorm's bias (the same for
    every feature). Gemma's final logit soft-capping, where present, is monotonic and also left out.
    """
    directions = sae.W_dec[features].to(model.W_U.dtype)
    if model.cfg.normalization_type in ("LN", "LNPre"):
        directions = directions - directions.mean(dim=-1, keepdim=True)
    scale = getattr(getattr(model, "ln_final", None), "w", None)
    if scale is not None:
        directions = directions * scale
    logits = directions @ model.W_U

    def tokens(values, ids):
        return [LogitToken(i, model.tokenizer.decode([i]), v) for v, i in zip(values.tolist(), ids.tolist())]

    top, bottom = logits.topk(N_LOGIT_TOKENS, dim=-1), logits.topk(N_LOGIT_TOKENS, dim=-1, largest=False)
    return ([tokens(v, i) for v, i in zip(top.values, top.indices)],
            [tokens(v, i) for v, i in zip(bottom.values, bottom.indices)])


def feature_records(sae, model, heldout: Heldout, n_features: int, seed: int) -> tuple[list[FeatureRecord], np.ndarray]:
    n_tokens = len(heldout.acts)
    fires = encode(sae, heldout.acts).cpu().numpy()
    density = fires / n_tokens
    sampled = sample_features(density, n_features, seed)
    if not sampled:
        raise DashboardError("no feature fires on the held-out tokens: there is nothing to show")
    ids = [i for i, _ in sampled]
    acts = encode(sae, heldout.acts, torch.tensor(ids)).float().cpu()
    promoted, suppressed = logit_effects(model, sae, ids)
    records = []
    for col, (fid, group) in enumerate(sampled):
        acts_f = acts[:, col]
        records.append(FeatureRecord(
            id=fid, group=group, density=float(density[fid]), fires=int(fires[fid]),
            max_activation=float(acts_f.max()), contexts=top_contexts(model.tokenizer, heldout, acts_f),
            nonzero_activations=acts_f[acts_f > 0].numpy(), promoted=promoted[col], suppressed=suppressed[col]))
    return records, density


def build_dashboard(run_dir: Path, config: ExperimentConfig, model=None, n_features: int = N_FEATURES,
                    heldout_tokens: int | None = None, cache_dir: Path | None = None) -> Path:
    """Write run_dir/dashboard/ (the pages, features.json and appendix.tex) and return its path. model: an already
    loaded HookedTransformer of the preset."""
    from .lm import load_model
    from .workspace import default_cache_dir

    run_dir = Path(run_dir)
    sae = load_run_sae(run_dir)
    check_run_matches_config(sae, config)
    cache_dir = cache_dir or (Path(config.cache_dir) if config.cache_dir else default_cache_dir())
    model = model if model is not None else load_model(config.preset_spec, DEVICE, cache_dir)
    heldout = heldout_activations(model, config, heldout_tokens or config.heldout_tokens, cache_dir)
    seed = config.seed + SAMPLE_SEED_OFFSET
    records, density = feature_records(sae, model, heldout, n_features, seed)
    n_tokens, run_name = len(heldout.acts), run_dir.resolve().name
    summary = {"run": run_name, "model_name": sae.cfg.metadata.model_name, "hook_name": sae.cfg.metadata.hook_name,
               "d_sae": sae.cfg.d_sae, "heldout_tokens": n_tokens, "alive_features": int((density > 0).sum()),
               "context_window": {"before": TOKENS_BEFORE, "after": TOKENS_AFTER},
               "sample_seed": seed, "max_token_marker": [MARK_OPEN, MARK_CLOSE],
               "logits": "W_dec[f] @ W_U, the direction centred for LayerNorm models and scaled by ln_final's weight",
               "features": [r.to_json() for r in records]}
    files = {"index.html": index_page(records, run_name, sae, n_tokens, summary["alive_features"])}
    for i, record in enumerate(records):
        prev_id = records[i - 1].id if i > 0 else None
        next_id = records[i + 1].id if i + 1 < len(records) else None
        files[f"feature_{record.id}.html"] = feature_page(record, prev_id, next_id, density, n_tokens, run_name)
    files["features.json"] = json.dumps(summary, indent=2, ensure_ascii=False)
    files["appendix.tex"] = appendix_tex(summary)
    return write_site(run_dir, files)


def write_site(run_dir: Path, files: dict[str, str]) -> Path:
    """Write run_dir/dashboard/ with files {name: text}: beside the target first, then swapped in whole, so that a
    failed build never leaves a half-written dashboard."""
    target = run_dir / "dashboard"
    staging = Path(tempfile.mkdtemp(dir=run_dir, prefix=".dashboard-"))
    try:
        for name, text in files.items():
            (staging / name).write_text(text, encoding="utf-8")
        os.chmod(staging, 0o755)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, type=Path, nargs="+",
                        help="Run folders with sae/, e.g. run_0 run_1 (the model is loaded once for all).")
    parser.add_argument("--features", type=int, default=N_FEATURES, help="Number of features to sample.")
    parser.add_argument("--heldout-tokens", type=int, default=None,
                        help="Held-out tokens to read (default: the configuration's heldout_tokens).")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.features < 1 or (args.heldout_tokens is not None and args.heldout_tokens < 256):
            raise DashboardError("use --features 1 or more and --heldout-tokens 256 or more")
        config = load_config(TEMPLATE_DIR / "config.toml")
        if config.preset_spec.synthetic:  # no text to show: the features are matched to the known true ones
            from .dashboard_synthetic import main_synthetic

            return main_synthetic(args.run, config, args.features, args.heldout_tokens)
        from .lm import load_model
        from .workspace import default_cache_dir

        cache_dir = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
        for run in args.run:
            load_run_sae(run)  # a run without an SAE fails before the model is loaded
        model = load_model(config.preset_spec, DEVICE, cache_dir)
        for run in args.run:
            out = build_dashboard(run, config, model=model, n_features=args.features,
                                  heldout_tokens=args.heldout_tokens, cache_dir=cache_dir)
            log.info("Wrote %s", out / "index.html")
    except (ConfigError, DashboardError) as err:
        print(f"Dashboard error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
