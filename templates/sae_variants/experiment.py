"""Train a sparse autoencoder on a language model's residual stream and evaluate it with SAEBench.

    python experiment.py --out_dir=run_i

This file is what an idea changes, and it says in code what a run does:
- Settings and run_settings(): which SAE runs, with which knobs, and every size and schedule value training uses.
  An idea's knobs go here too (a field set in run_settings(), read as self.settings.<field>). final_info.json's
  "settings" group records the values as they ran (see Settings), and lists the fields no code read as unused.
- CustomSAE (variant "relu"): its activation and its loss. A loss may return diagnostics of its own, which the
  training log and final_info.json keep.
- SAE_CLASSES and build_sae(): the one place an SAE is made, for runs and for the scripts beside this file
  (layer_sweep.py, dead_features.py, baseline.py).
- CustomTrainer and train(): the optimiser, the learning-rate schedule, decoder normalisation and dead-feature
  revival.
The command takes no other argument: the model preset, token counts, device and evaluation sizes come from
config.toml, with SAE_<FIELD> environment overrides. The stable harness (model loading, activation caching,
evaluation, result writing) lives in sae_harness/.
"""

import argparse
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from sae_batchtopk import BatchTopKSAE
from sae_harness.config import ConfigError, ExperimentConfig, load_config
from sae_harness.results import write_run
from sae_harness.sae_base import HookSpec, LossParts, SAEBase
from sae_harness.settings import SettingsReads, check_settings, settings_attributes
from sae_harness.sparse import Features, relu_features
from sae_harness.workspace import Workspace
from sae_jumprelu import JumpReLUSAE
from sae_topk import TopKSAE

TEMPLATE_DIR = Path(__file__).resolve().parent
DEAD_FEATURE_METHODS = ("resample", "ghost", "none")


@dataclass(frozen=True)
class Settings:
    """What a run trains and how. final_info.json's "settings" group records every field as it ran (numbers under
    "means", the rest under "choices"; fields the run never read under "unused"). An idea adds its knobs as fields of
    its own (numbers, strings, booleans or lists of them), sets them in run_settings() and reads them in its SAE
    (self.settings.<field>) or in CustomTrainer: a number written into the code instead is recorded only when held in
    an attribute named as a field (self.k = 64 is recorded as k = 64, noted as overridden_in_code)."""

    variant: str
    """Which SAE runs: a key of SAE_CLASSES. "relu" is CustomSAE (below); "topk", "batchtopk" and "jumprelu" are the
    reference variants in sae_topk.py, sae_batchtopk.py and sae_jumprelu.py."""
    sparsity_penalty: float
    """CustomSAE's L1 coefficient (on decoder-norm-weighted activations); jumprelu's L0 coefficient."""
    k: int
    """Active features per token for topk; per token on average over the batch for batchtopk."""
    target_l0: float
    """The L0 that jumprelu's sparsity loss steers towards."""
    dead_feature_method: str
    """How CustomTrainer revives dead features: "resample" (re-initialise them every resample_every steps),
    "ghost" (a ghost-gradient loss) or "none"."""
    dict_size: int
    """Number of SAE features (d_sae)."""
    batch_size: int
    """Activations per optimiser step."""
    epochs: int
    """Passes over the training activations (config.toml's training_tokens of them)."""
    lr: float
    """Adam's peak learning rate."""
    warmup_steps: int
    """Steps of linear learning-rate warmup; the rate then stays at lr and decays linearly to zero over the last
    20% of the steps."""
    resample_every: int
    """Steps between dead-feature resamplings (dead_feature_method "resample"); 0 turns resampling off."""
    dead_feature_window: int
    """Steps without firing after which a feature counts as dead; 0 means resample_every, or 1,000 if that is 0."""
    seed: int
    """Seed of the SAE's initialisation, of the order of the training batches and of resampling."""

    def __post_init__(self):
        # A bad value stops the run before any activation is computed, with a message naming the field and the fix.
        check_settings(self, [
            ("variant", self.variant in SAE_CLASSES, f"use one of: {', '.join(SAE_CLASSES)}"),
            ("sparsity_penalty", self.sparsity_penalty >= 0, "use 0 or a positive coefficient"),
            ("dict_size", self.dict_size > 0, "use a positive number of features"),
            ("k", 0 < self.k <= self.dict_size, "use 1 <= k <= dict_size"),
            ("target_l0", 0 < self.target_l0 <= self.dict_size, "use 0 < target_l0 <= dict_size"),
            ("dead_feature_method", self.dead_feature_method in DEAD_FEATURE_METHODS,
             f"use one of: {', '.join(DEAD_FEATURE_METHODS)}"),
            ("batch_size", self.batch_size > 0, "use a positive batch size"),
            ("epochs", self.epochs >= 1, "use 1 or more"),
            ("lr", 0 < self.lr < 1, "use a learning rate between 0 and 1, e.g. 4e-4"),
            ("warmup_steps", self.warmup_steps >= 0, "use 0 or more"),
            ("resample_every", self.resample_every >= 0, "use 0 (off) or a number of steps"),
            ("dead_feature_window", self.dead_feature_window >= 0, "use 0 (resample_every) or a number of steps"),
        ])


def run_settings(config: ExperimentConfig) -> Settings:
    """The settings of this experiment's runs. The values written here are the idea's own. Those read from `config`
    come from config.toml (then its [presets.<preset>] table, then SAE_<FIELD> variables); each comment gives
    config.toml's value for the default, offline preset. Write a value in place of config.<field> to fix it here:
    a value in this function wins over config.toml and is what final_info.json records. Set every knob of an idea
    here, never as a number inside CustomSAE or CustomTrainer, so that the run records it."""
    return Settings(
        variant="relu",
        sparsity_penalty=0.6,
        k=32,
        target_l0=20.0,
        dead_feature_method="resample",
        dict_size=config.dict_size,  # 2048
        batch_size=config.batch_size,  # 2048
        epochs=config.epochs,  # 3
        lr=config.lr,  # 2e-3
        warmup_steps=config.warmup_steps,  # 100
        resample_every=config.resample_every,  # 100
        dead_feature_window=config.dead_feature_window,  # 0
        seed=config.seed,  # 0
    )


# The sparse-feature calls of sae_harness/sparse.py (import them from there). They compute exactly what dense
# products give, but once few features fire per token the decoder and the backward pass touch only active entries:
#   relu_features(x, b_dec, W_enc, b_enc) -> Features: relu((x - b_dec) @ W_enc + b_enc) for x of shape
#       (batch, d_in); held sparsely while training when fewer than 15% of its entries are positive, else densely.
#   active_features(x, b_dec, W_enc, b_enc, active, pre) -> Features: relu(pre) on the entries `active` names and
#       zero elsewhere, where pre = (x - b_dec) @ W_enc + b_enc was computed under torch.no_grad() (the gradient to
#       W_enc, b_enc and b_dec flows through the active entries only).
#   ActiveSet.of_indices(indices, d_sae) names the same number of entries per token (indices: (batch, k), e.g.
#       pre.topk(k, dim=-1).indices); ActiveSet.of_mask(mask) names the True entries of a (batch, d_sae) mask.
#   A Features object f has: f.decode(W_dec) = f @ W_dec, shape (batch, d_in), without b_dec;
#       f.row_sums(w) = sum over j of f[:, j] * w[j], shape (batch,); f.dense() = the (batch, d_sae) matrix.
#   DenseFeatures(matrix) gives any dense (batch, d_sae) activation the same interface, for an activation that
#       the sparse kernels do not cover.


class CustomSAE(SAEBase):
    """ReLU SAE: f = relu((x - b_dec) @ W_enc + b_enc), x_hat = f @ W_dec + b_dec, W_dec rows of unit norm; its loss
    is the reconstruction error plus settings.sparsity_penalty times the decoder-norm-weighted L1 of f.

    From SAEBase (sae_harness/sae_base.py): the parameters W_enc (d_in, d_sae), W_dec (d_sae, d_in), b_enc (d_sae,)
    and b_dec (d_in,); self.cfg.d_in and self.cfg.d_sae; pre_activations(x) = (x - b_dec) @ W_enc + b_enc;
    decode(f) = f @ W_dec + b_dec; forward(x) = decode(encode(x)); reconstruction_mse(x, x_hat) = squared error
    summed over d_in, averaged over tokens. saelens_architecture names the SAELens class that the run's sae/ export
    is loaded as: "standard" for a ReLU SAE, "topk" (with saelens_extra_config() returning {"k": k}) or "jumprelu".
    """

    saelens_architecture = "standard"

    def __init__(self, settings: Settings, **base):
        super().__init__(**base)
        self.settings = settings
        self.l1_coefficient = settings.sparsity_penalty

    def features(self, x: Tensor) -> Features:
        """The activation, used both in training and by encode(): x (batch, d_in) -> Features (batch, d_sae)."""
        return relu_features(x, self.b_dec, self.W_enc, self.b_enc)

    def encode(self, x: Tensor) -> Tensor:
        # features() takes rows of tokens; SAEBench passes (batch, positions, d_in).
        return self.features(x.flatten(0, -2)).dense().view(*x.shape[:-1], -1)

    def training_loss(self, x: Tensor) -> LossParts:
        """One step's loss on x (batch, d_in). LossParts: total (minimised), mse and sparsity (logged), features (the
        dense (batch, d_sae) activations, for L0 and dead-feature counts) and diagnostics: {name: a 0-dim tensor
        or a float} of any extra numbers to watch, logged as diagnostic.<name> in training_log.jsonl and averaged
        over the last log_every steps into final_info.json's training group."""
        features = self.features(x)
        mse = self.reconstruction_mse(x, features.decode(self.W_dec) + self.b_dec)
        # L1 weighted by decoder norms, so the penalty cannot be dodged by shrinking W_enc and growing W_dec.
        l1 = features.row_sums(self.W_dec.norm(dim=1)).mean()
        sparsity = self.l1_coefficient * l1
        return LossParts(total=mse + sparsity, mse=mse, sparsity=sparsity, features=features.dense())


SAE_CLASSES: dict[str, type[SAEBase]] = {
    "relu": CustomSAE,
    "topk": TopKSAE,
    "batchtopk": BatchTopKSAE,
    "jumprelu": JumpReLUSAE,
}


def build_sae(settings: Settings, d_in: int, hook: HookSpec, device: str = "cpu") -> SAEBase:
    """The one place an SAE is made (runs, layer_sweep.py, dead_features.py and the tests all call it): the class
    SAE_CLASSES[settings.variant], with settings.dict_size features on d_in-wide activations at `hook`,
    initialised from settings.seed."""
    # Seeds torch's global generator too, which resampling draws from, so that a run repeats exactly.
    torch.manual_seed(settings.seed)
    sae = SAE_CLASSES[settings.variant](settings, d_in=d_in, d_sae=settings.dict_size, hook=hook, device=device,
                                        generator=torch.Generator().manual_seed(settings.seed))
    return sae.to(device=device)


class CustomTrainer:
    """Adam on the SAE's loss, with LR warmup and decay, unit-norm decoder rows, and one way of reviving dead
    features (settings.dead_feature_method): resampling them, a ghost-gradient loss, or none."""

    def __init__(self, sae: SAEBase, settings: Settings, total_steps: int):
        self.sae, self.settings, self.total_steps = sae, settings, total_steps
        # Knobs kept as attributes named as the Settings fields: effective_settings() reports them as they ran.
        self.warmup_steps, self.resample_every = settings.warmup_steps, settings.resample_every
        self.dead_feature_method = settings.dead_feature_method
        self.optimizer = torch.optim.Adam(sae.parameters(), lr=settings.lr, betas=(0.9, 0.999))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.lr_factor)
        self.steps_since_fired = torch.zeros(sae.cfg.d_sae, dtype=torch.long, device=sae.W_dec.device)
        # A feature silent for this many steps counts as dead (for resampling, ghost gradients and the log).
        self.dead_window = settings.dead_feature_window or self.resample_every or 1000
        self.batch_size = 0  # the largest batch stepped on: the batch size that ran
        self.steps_done = 0
        self.resampled = 0
        self.last_ghost_loss = 0.0

    def lr_factor(self, step: int) -> float:
        """Linear warmup, constant, then linear decay to zero over the last 20% of steps."""
        warmup = min(1.0, (step + 1) / max(1, self.warmup_steps))
        decay_start = 0.8 * self.total_steps
        decay = 1.0 if step < decay_start else max(0.0, (self.total_steps - step) / (self.total_steps - decay_start))
        return warmup * decay

    def step(self, x: Tensor) -> LossParts:
        parts = self.sae.training_loss(x)
        loss = parts.total
        if self.dead_feature_method == "ghost":
            ghost = self.ghost_gradient_loss(x, parts.features)
            self.last_ghost_loss = ghost.item()
            loss = loss + ghost
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.remove_decoder_grad_parallel_to_rows()
        self.optimizer.step()
        self.scheduler.step()
        self.sae.normalize_decoder()

        fired = (parts.features > 0).any(dim=0)
        self.steps_since_fired += 1
        self.steps_since_fired[fired] = 0
        self.steps_done += 1
        self.batch_size = max(self.batch_size, len(x))
        every = self.resample_every
        # No resampling near the end: a new feature needs steps to learn before it is evaluated.
        if (self.dead_feature_method == "resample" and every and self.steps_done % every == 0
                and self.steps_done < 0.7 * self.total_steps):
            self.resampled += self.resample_dead_features(x)
        return parts

    def effective_settings(self) -> dict:
        """The training settings as this trainer used them, for final_info.json: its attributes named as Settings
        fields (sae_harness/settings.py settings_attributes) and the optimiser's learning rate."""
        group = self.optimizer.param_groups[0]
        return {**settings_attributes(self, self.settings), "lr": group.get("initial_lr", group["lr"])}

    def dead_features(self) -> Tensor:
        """Mask of the features silent for the last dead_window steps."""
        return self.steps_since_fired >= self.dead_window

    def dead_fraction(self) -> float:
        return self.dead_features().float().mean().item()

    def ghost_gradient_loss(self, x: Tensor, features: Tensor) -> Tensor:
        """Ghost gradients (Anthropic, January 2024; used for the GPT-2 small residual SAEs): give dead features
        a gradient towards what the live ones fail to reconstruct. Zero when no feature is dead.

        Dead features get exp(pre-activation) instead of ReLU, so a gradient reaches them although they never
        fire. Their output is rescaled to half the norm of the residual x - x_hat and trained to explain that
        residual; the loss is then rescaled per token to the size of the main reconstruction error.
        """
        dead = self.dead_features()
        if not dead.any():
            return x.new_zeros(())
        residual = (x - self.sae.decode(features)).detach()
        # Only the dead features' own weights learn from this loss: b_dec is held fixed here.
        pre = (x - self.sae.b_dec.detach()) @ self.sae.W_enc[:, dead] + self.sae.b_enc[dead]
        ghost_out = torch.exp(pre) @ self.sae.W_dec[dead]
        to_half_residual = residual.norm(dim=-1, keepdim=True) / (2 * ghost_out.norm(dim=-1, keepdim=True) + 1e-8)
        ghost_out = ghost_out * to_half_residual.detach()
        ghost_error = (ghost_out - residual).pow(2).sum(dim=-1)
        main_error = residual.pow(2).sum(dim=-1)
        return (ghost_error * (main_error / (ghost_error + 1e-8)).detach()).mean()

    @torch.no_grad()
    def remove_decoder_grad_parallel_to_rows(self):
        """Keep each W_dec row's gradient tangent to the unit sphere the row is projected back onto."""
        W_dec, grad = self.sae.W_dec, self.sae.W_dec.grad
        grad -= (grad * W_dec).sum(dim=1, keepdim=True) * W_dec

    @torch.no_grad()
    def resample_dead_features(self, x: Tensor) -> int:
        """Point features silent for a whole dead window at inputs the SAE reconstructs badly."""
        dead = self.dead_features()
        n_dead = int(dead.sum())
        if n_dead == 0:
            return 0
        residual = x - self.sae(x)
        picks = torch.multinomial(residual.pow(2).sum(dim=-1), n_dead, replacement=n_dead > len(x))
        directions = residual[picks] / residual[picks].norm(dim=-1, keepdim=True).clamp_min(1e-8)
        alive_enc_norm = self.sae.W_enc[:, ~dead].norm(dim=0).mean() if (~dead).any() else torch.tensor(1.0)
        self.sae.W_dec[dead] = directions
        self.sae.W_enc[:, dead] = directions.T * alive_enc_norm * 0.2
        self.sae.b_enc[dead] = 0.0
        for param, rows in ((self.sae.W_dec, dead), (self.sae.b_enc, dead)):
            self._reset_adam(param, rows)
        self._reset_adam(self.sae.W_enc, (slice(None), dead))
        self.steps_since_fired[dead] = 0
        return n_dead

    def _reset_adam(self, param: torch.nn.Parameter, index):
        state = self.optimizer.state.get(param, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                state[key][index] = 0.0


def train(sae: SAEBase, workspace: Workspace, settings: Settings) -> dict:
    """Train on the workspace's training activations; return the training facts and the per-step log.

    workspace.train.epoch(batch_size, generator) yields (batch, d_in) activation batches in a seeded order, and
    workspace.scale brings their mean norm to sqrt(d_in) (run() folds it back into the SAE afterwards). A log row
    is kept every log_every steps (config.toml). The facts (final_info.json's training group) hold final_loss and
    each diagnostic.<name> as means over the last log_every steps.
    """
    steps_per_epoch = len(workspace.train) // settings.batch_size
    if steps_per_epoch == 0:
        raise ConfigError(f"experiment.py (run_settings): batch_size = {settings.batch_size} is larger than the "
                          f"{len(workspace.train)} training activations; lower it or raise training_tokens.")
    total_steps = steps_per_epoch * settings.epochs
    log_every = workspace.config.log_every
    trainer = CustomTrainer(sae, settings, total_steps)
    generator = torch.Generator().manual_seed(settings.seed)
    log_rows = []
    recent: dict[str, list[float]] = {}  # the last log_every values of the loss and of each diagnostic
    started = time.perf_counter()
    with tqdm(total=total_steps, desc=f"Training {type(sae).__name__}", unit="step") as bar:
        for epoch in range(settings.epochs):
            for batch in workspace.train.epoch(settings.batch_size, generator):
                x = batch.to(workspace.device) * workspace.scale
                parts = trainer.step(x)
                diagnostics = parts.logged_diagnostics()
                for name, value in {"loss": parts.total.item(), **diagnostics}.items():
                    recent[name] = (recent.get(name, []) + [value])[-log_every:]
                if trainer.steps_done % log_every == 0 or trainer.steps_done == total_steps:
                    log_rows.append({
                        "step": trainer.steps_done,
                        "epoch": epoch,
                        "tokens": trainer.steps_done * trainer.batch_size,
                        "loss": parts.total.item(),
                        "mse": parts.mse.item(),
                        "sparsity_loss": parts.sparsity.item(),
                        "l0": (parts.features > 0).float().sum(dim=-1).mean().item(),
                        "dead_fraction": trainer.dead_fraction(),
                        "ghost_loss": trainer.last_ghost_loss,
                        "lr": trainer.scheduler.get_last_lr()[0],
                        **diagnostics,
                    })
                    bar.set_postfix(loss=f"{parts.total.item():.3g}", l0=f"{log_rows[-1]['l0']:.0f}")
                bar.update(1)
    seconds = time.perf_counter() - started
    return {
        "training_steps": trainer.steps_done,
        "training_tokens": trainer.steps_done * trainer.batch_size,
        "unique_tokens": len(workspace.train),
        "final_loss": sum(recent["loss"]) / len(recent["loss"]),
        **{name: sum(values) / len(values) for name, values in recent.items() if name != "loss"},
        "training_seconds": seconds,
        "tokens_per_s": trainer.steps_done * trainer.batch_size / max(seconds, 1e-9),
        "resampled_features": trainer.resampled,
        "dead_window": trainer.dead_window,
        "effective_settings": {**trainer.effective_settings(), "epochs": epoch + 1},  # epochs: passes the loop made
        "log": log_rows,
    }


def run(workspace: Workspace, settings: Settings, out_dir: Path, started: float) -> dict:
    """Build the SAE, train it, evaluate it and write out_dir (sae_harness/results.py); return its final_info.
    layer_sweep.py and baseline.py call this once per run; `started` is the time.perf_counter() that wall_seconds
    counts from. SettingsReads notes the settings fields the run reads, so that final_info.json lists the unused."""
    with SettingsReads(settings) as reads:
        sae = build_sae(settings, workspace.preset.d_model, workspace.hook, workspace.device)
        workspace.initialise_decoder_bias(sae)
        facts = train(sae, workspace, settings)
        sae.eval()
        sae.fold_activation_scale(workspace.scale)
        return write_run(out_dir, workspace, sae, facts, settings, wall_started=started, read=reads.names)


def main(out_dir: Path) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    try:
        config = load_config(TEMPLATE_DIR / "config.toml")
        settings = run_settings(config)
        workspace = Workspace.prepare(config)
    except ConfigError as err:
        print(f"Configuration error: {err}", file=sys.stderr)
        return 2
    run(workspace, settings, out_dir, started)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out_dir", required=True, help="Folder for this run's results, e.g. run_1.")
    sys.exit(main(Path(parser.parse_args().out_dir)))
