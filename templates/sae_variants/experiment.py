"""Train a sparse autoencoder on a language model's residual stream and evaluate it with SAEBench.

    python experiment.py --out_dir=run_i

The command takes no other argument: the model preset, sizes and device come from config.toml, with
SAE_<FIELD> environment overrides (see sae_harness/config.py). This file holds what an idea changes:
the SAE (CustomSAE), its loss, and its trainer (CustomTrainer). The stable harness (model loading,
activation caching, evaluation, result writing) lives in sae_harness/.
"""

import argparse
import logging
import sys
import time
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from sae_batchtopk import BatchTopKSAE
from sae_harness.config import ConfigError, ExperimentConfig, load_config
from sae_harness.results import write_run
from sae_harness.sae_base import LossParts, SAEBase
from sae_harness.sparse import Features, relu_features
from sae_harness.workspace import Workspace
from sae_jumprelu import JumpReLUSAE
from sae_topk import TopKSAE

TEMPLATE_DIR = Path(__file__).resolve().parent


class CustomSAE(SAEBase):
    """ReLU SAE: f = relu((x - b_dec) @ W_enc + b_enc), x_hat = f @ W_dec + b_dec, W_dec rows of unit norm.

    W_enc, W_dec, b_enc, b_dec, decode and forward come from SAEBase (sae_harness/sae_base.py).
    """

    saelens_architecture = "standard"

    def __init__(self, config: ExperimentConfig, **base):
        super().__init__(**base)
        self.l1_coefficient = config.sparsity_penalty

    def features(self, x: Tensor) -> Features:
        """The activation, used both in training and by encode(). relu_features holds it sparsely once few
        features fire, so that the decoder and the backward pass touch only those (sae_harness/sparse.py).
        Another activation returns DenseFeatures(its dense (batch, d_sae) matrix), or active_features on the
        set of features it keeps, as sae_topk.py does."""
        return relu_features(x, self.b_dec, self.W_enc, self.b_enc)

    def encode(self, x: Tensor) -> Tensor:
        # features() takes rows of tokens; SAEBench passes (batch, positions, d_in).
        return self.features(x.flatten(0, -2)).dense().view(*x.shape[:-1], -1)

    def training_loss(self, x: Tensor) -> LossParts:
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


class CustomTrainer:
    """Adam on the SAE's loss, with LR warmup and decay, unit-norm decoder rows, and one way of reviving dead
    features (config.dead_feature_method): resampling them, a ghost-gradient loss, or none."""

    def __init__(self, sae: SAEBase, config: ExperimentConfig, total_steps: int):
        self.sae, self.config, self.total_steps = sae, config, total_steps
        self.optimizer = torch.optim.Adam(sae.parameters(), lr=config.lr, betas=(0.9, 0.999))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.lr_factor)
        self.steps_since_fired = torch.zeros(sae.cfg.d_sae, dtype=torch.long, device=sae.W_dec.device)
        # A feature silent for this many steps counts as dead (for resampling, ghost gradients and the log).
        self.dead_window = config.dead_feature_window or config.resample_every or 1000
        self.steps_done = 0
        self.resampled = 0
        self.last_ghost_loss = 0.0

    def lr_factor(self, step: int) -> float:
        """Linear warmup, constant, then linear decay to zero over the last 20% of steps."""
        warmup = min(1.0, (step + 1) / max(1, self.config.warmup_steps))
        decay_start = 0.8 * self.total_steps
        decay = 1.0 if step < decay_start else max(0.0, (self.total_steps - step) / (self.total_steps - decay_start))
        return warmup * decay

    def step(self, x: Tensor) -> LossParts:
        parts = self.sae.training_loss(x)
        loss = parts.total
        if self.config.dead_feature_method == "ghost":
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
        every = self.config.resample_every
        # No resampling near the end: a new feature needs steps to learn before it is evaluated.
        if (self.config.dead_feature_method == "resample" and every and self.steps_done % every == 0
                and self.steps_done < 0.7 * self.total_steps):
            self.resampled += self.resample_dead_features(x)
        return parts

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


def train(sae: SAEBase, workspace: Workspace, config: ExperimentConfig) -> dict:
    """Train on normalised activations; return the training facts and the per-step log."""
    steps_per_epoch = len(workspace.train) // config.batch_size
    total_steps = steps_per_epoch * config.epochs
    trainer = CustomTrainer(sae, config, total_steps)
    generator = torch.Generator().manual_seed(config.seed)
    log_rows, recent_losses = [], []
    started = time.perf_counter()
    with tqdm(total=total_steps, desc=f"Training {type(sae).__name__}", unit="step") as bar:
        for epoch in range(config.epochs):
            for batch in workspace.train.epoch(config.batch_size, generator):
                x = batch.to(workspace.device) * workspace.scale
                parts = trainer.step(x)
                recent_losses = (recent_losses + [parts.total.item()])[-config.log_every:]
                if trainer.steps_done % config.log_every == 0 or trainer.steps_done == total_steps:
                    log_rows.append({
                        "step": trainer.steps_done,
                        "epoch": epoch,
                        "tokens": trainer.steps_done * config.batch_size,
                        "loss": parts.total.item(),
                        "mse": parts.mse.item(),
                        "sparsity_loss": parts.sparsity.item(),
                        "l0": (parts.features > 0).float().sum(dim=-1).mean().item(),
                        "dead_fraction": trainer.dead_fraction(),
                        "ghost_loss": trainer.last_ghost_loss,
                        "lr": trainer.scheduler.get_last_lr()[0],
                    })
                    bar.set_postfix(loss=f"{parts.total.item():.3g}", l0=f"{log_rows[-1]['l0']:.0f}")
                bar.update(1)
    seconds = time.perf_counter() - started
    return {
        "training_steps": trainer.steps_done,
        "training_tokens": trainer.steps_done * config.batch_size,
        "unique_tokens": len(workspace.train),
        "final_loss": sum(recent_losses) / max(1, len(recent_losses)),
        "training_seconds": seconds,
        "tokens_per_s": trainer.steps_done * config.batch_size / max(seconds, 1e-9),
        "resampled_features": trainer.resampled,
        "log": log_rows,
    }


def run(workspace: Workspace, out_dir: Path, started: float) -> dict:
    """Build the configured SAE, train it, evaluate it and write out_dir (sae_harness/results.py); return its
    final_info. The layer sweep (sae_harness/layer_sweep.py) calls this once per layer."""
    config = workspace.config
    torch.manual_seed(config.seed)
    sae = SAE_CLASSES[config.variant](
        config=config,
        d_in=workspace.preset.d_model,
        d_sae=config.dict_size,
        hook=workspace.hook,
        device=workspace.device,
        generator=torch.Generator().manual_seed(config.seed),
    ).to(device=workspace.device)
    workspace.initialise_decoder_bias(sae)
    facts = train(sae, workspace, config)
    sae.eval()
    sae.fold_activation_scale(workspace.scale)
    return write_run(out_dir, config, workspace, sae, facts, wall_started=started)


def main(out_dir: Path) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    try:
        workspace = Workspace.prepare(load_config(TEMPLATE_DIR / "config.toml"))
    except ConfigError as err:
        print(f"Configuration error: {err}", file=sys.stderr)
        return 2
    run(workspace, out_dir, started)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out_dir", required=True, help="Folder for this run's results, e.g. run_1.")
    sys.exit(main(Path(parser.parse_args().out_dir)))
