"""Grokking on modular addition: a small transformer learns (a + b) mod p from a fraction of all pairs.

    python experiment.py --out_dir=run_i

The run trains with AdamW and weight decay, evaluates on the pairs it never saw, and writes
run_i/final_info.json (the numbers) and run_i/curves.json (accuracy, loss and weight norm against steps).
Read top to bottom: the config, the data, the model, the loss and optimiser, the training loop, the
evaluation, the results. Every config field can be overridden with an environment variable MA_<FIELD>, e.g.
MA_STEPS=300 or MA_WEIGHT_DECAY=0.1.
"""

import argparse
import dataclasses
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ----------------------------------------------------------------------------------------------------------------
# Config: the knobs of a run. Each field can be set with MA_<FIELD> (MA_P=59, MA_LR=3e-3, ...).


@dataclass
class Config:
    p: int = 97  # the modulus; inputs a and b run over 0..p-1 and the answer is (a + b) mod p
    train_fraction: float = 0.4  # share of all p*p pairs used for training; the rest is the validation set
    d_model: int = 64  # width of the residual stream (token and position embeddings)
    n_heads: int = 4  # attention heads per layer; d_model must be divisible by it
    d_mlp: int = 256  # hidden width of each layer's MLP
    n_layers: int = 1  # transformer blocks
    lr: float = 3e-3  # AdamW peak learning rate
    weight_decay: float = 1.0  # AdamW decoupled weight decay, applied to every parameter
    beta1: float = 0.9  # AdamW first-moment decay
    beta2: float = 0.98  # AdamW second-moment decay
    batch_size: int = 512  # training pairs per step, drawn without replacement within each epoch
    steps: int = 2500  # optimiser steps
    warmup_steps: int = 10  # linear learning-rate warmup from 0 to lr; constant afterwards
    eval_every: int = 50  # steps between evaluations on the full train and validation sets (the curves)
    seed: int = 0  # seeds Python's, NumPy's and torch's generators, hence the split, the init and the batches


ENV_PREFIX = "MA_"
GROK_THRESHOLD = 0.99  # "reached" means accuracy at or above this


class ConfigError(Exception):
    """A bad MA_ setting; the message is one line that names the variable."""


def load_config() -> Config:
    """Config defaults, overridden by the MA_<FIELD> environment variables."""
    fields = {f.name: f for f in dataclasses.fields(Config)}
    values = {}
    for variable, text in os.environ.items():
        if not variable.startswith(ENV_PREFIX):
            continue
        name = variable[len(ENV_PREFIX):].lower()
        if name not in fields:
            known = ", ".join(ENV_PREFIX + field.upper() for field in fields)
            raise ConfigError(f"{variable} is not a setting; the settings are {known}")
        whole = fields[name].type in (int, "int")  # a string when annotations are postponed
        try:
            values[name] = int(text) if whole else float(text)
        except ValueError:
            raise ConfigError(f"{variable}={text!r} is not {'an integer' if whole else 'a number'}") from None
    config = Config(**values)
    problems = check_config(config)
    if problems:
        raise ConfigError("; ".join(problems))
    return config


def check_config(c: Config) -> list[str]:
    problems = []
    for name in ("d_model", "n_heads", "d_mlp", "n_layers", "batch_size", "eval_every"):
        if getattr(c, name) < 1:
            problems.append(f"MA_{name.upper()}={getattr(c, name)} must be at least 1")
    if c.p < 2:
        problems.append(f"MA_P={c.p} must be at least 2")
    if c.steps < 0 or c.warmup_steps < 0:
        problems.append("MA_STEPS and MA_WARMUP_STEPS must not be negative")
    if not 0 < c.train_fraction < 1:
        problems.append(f"MA_TRAIN_FRACTION={c.train_fraction} must lie strictly between 0 and 1")
    if not (math.isfinite(c.lr) and c.lr > 0):
        problems.append(f"MA_LR={c.lr} must be a positive number")
    if not (math.isfinite(c.weight_decay) and c.weight_decay >= 0):
        problems.append(f"MA_WEIGHT_DECAY={c.weight_decay} must be a number at least 0")
    for name in ("beta1", "beta2"):
        if not 0 <= getattr(c, name) < 1:
            problems.append(f"MA_{name.upper()}={getattr(c, name)} must lie in [0, 1)")
    if c.n_heads >= 1 and c.d_model % c.n_heads:
        problems.append(f"MA_D_MODEL={c.d_model} must be divisible by MA_N_HEADS={c.n_heads}")
    return problems


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------------------------------------------
# Data: every pair (a, b) as the sequence [a, b, =]; the label is (a + b) mod p.


def target(a: torch.Tensor, b: torch.Tensor, p: int) -> torch.Tensor:
    """The operation learned. An idea that studies another operation changes this line."""
    return (a + b) % p


def make_split(c: Config) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """All p*p pairs, shuffled with the seed, cut into train and validation sets: (x_train, y_train, x_val, y_val)."""
    a, b = torch.cartesian_prod(torch.arange(c.p), torch.arange(c.p)).unbind(1)
    equals = torch.full_like(a, c.p)  # token p is "="
    x = torch.stack([a, b, equals], dim=1)
    y = target(a, b, c.p)
    order = torch.randperm(len(x))
    n_train = max(1, min(len(x) - 1, round(c.train_fraction * len(x))))
    train, val = order[:n_train], order[n_train:]
    return x[train], y[train], x[val], y[val]


# ----------------------------------------------------------------------------------------------------------------
# Model: a small pre-LayerNorm transformer that reads the answer off the "=" position.


class Block(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.n_heads = c.n_heads
        self.ln1 = nn.LayerNorm(c.d_model)
        self.qkv = nn.Linear(c.d_model, 3 * c.d_model)
        self.proj = nn.Linear(c.d_model, c.d_model)
        self.ln2 = nn.LayerNorm(c.d_model)
        self.mlp = nn.Sequential(nn.Linear(c.d_model, c.d_mlp), nn.ReLU(), nn.Linear(c.d_mlp, c.d_model))

    def forward(self, x: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """Causal self-attention, then the MLP, each added to the residual stream x (batch, seq, d_model).

        last_only: return the last position alone. The answer is read there, so the final block needs nothing
        else; keys and values still come from every position. It gives the same logits, about a third faster."""
        batch, seq, width = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(width, dim=2)
        if last_only:
            x, q = x[:, -1:], q[:, -1:]
        q, k, v = (t.view(batch, -1, self.n_heads, width // self.n_heads).transpose(1, 2) for t in (q, k, v))
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(width // self.n_heads)
        causal = torch.ones(seq, seq, dtype=torch.bool, device=x.device).tril()[-q.shape[2]:]
        attended = scores.masked_fill(~causal, float("-inf")).softmax(dim=-1) @ v
        x = x + self.proj(attended.transpose(1, 2).reshape(batch, -1, width))
        return x + self.mlp(self.ln2(x))


class Transformer(nn.Module):
    def __init__(self, c: Config, seq_len: int = 3):
        super().__init__()
        self.token_embedding = nn.Embedding(c.p + 1, c.d_model)  # p numbers and "="
        self.position_embedding = nn.Parameter(torch.randn(seq_len, c.d_model) * 0.02)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layers))
        self.ln_final = nn.LayerNorm(c.d_model)
        self.unembed = nn.Linear(c.d_model, c.p, bias=False)  # logits over the p possible answers

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.token_embedding(tokens) + self.position_embedding
        for index, block in enumerate(self.blocks):
            x = block(x, last_only=index == len(self.blocks) - 1)
        return self.unembed(self.ln_final(x[:, -1]))


# ----------------------------------------------------------------------------------------------------------------
# Loss, optimiser and learning-rate schedule.


def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, labels)


def make_optimizer(model: nn.Module, c: Config) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=c.weight_decay, betas=(c.beta1, c.beta2))


def lr_at(step: int, c: Config) -> float:
    """Linear warmup over warmup_steps, then constant."""
    return c.lr * min(1.0, (step + 1) / max(1, c.warmup_steps))


# ----------------------------------------------------------------------------------------------------------------
# Training loop


def train(c: Config) -> dict:
    # One thread: the model is too small to gain from more, a result does not depend on the machine's core count,
    # and a run does not slow to a crawl when other processes share the cores.
    torch.set_num_threads(1)
    seed_everything(c.seed)
    x_train, y_train, x_val, y_val = make_split(c)
    model = Transformer(c)
    optimizer = make_optimizer(model, c)
    batches = torch.Generator().manual_seed(c.seed)
    curves, order, cursor = [], torch.empty(0, dtype=torch.long), 0
    start = time.perf_counter()

    def record(step: int, train_loss_batch: float | None) -> None:
        train_loss, train_acc = evaluate(model, x_train, y_train)
        val_loss, val_acc = evaluate(model, x_val, y_val)
        curves.append({"step": step, "train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss,
                       "val_acc": val_acc, "weight_norm": weight_norm(model), "batch_loss": train_loss_batch})

    record(0, None)
    for step in range(c.steps):
        if cursor + c.batch_size > len(order):  # a new epoch: reshuffle the training pairs
            order, cursor = torch.randperm(len(x_train), generator=batches), 0
        index = order[cursor:cursor + c.batch_size]
        cursor += c.batch_size
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, c)
        loss = loss_fn(model(x_train[index]), y_train[index])
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the training loss is {loss.item()} at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if (step + 1) % c.eval_every == 0 or step + 1 == c.steps:
            record(step + 1, loss.item())
    seconds = time.perf_counter() - start

    last = curves[-1]
    step_train, step_val = first_step(curves, "train_acc"), first_step(curves, "val_acc")
    return {
        "curves": curves,
        "final_info": {
            "final": {"status": "ok", "means": {
                "train_accuracy": last["train_acc"], "val_accuracy": last["val_acc"],
                "train_loss": last["train_loss"], "val_loss": last["val_loss"],
                "best_val_accuracy": max(row["val_acc"] for row in curves),
                "weight_norm": last["weight_norm"],
            }},
            "grokking": {"status": "ok", "means": {
                "step_train_acc_99": step_train, "step_val_acc_99": step_val,
                "grok_delay": None if step_train is None or step_val is None else step_val - step_train,
            }},
            "training": {"status": "ok", "means": {
                "steps": c.steps, "train_pairs": len(x_train), "val_pairs": len(x_val),
                "parameters": sum(p.numel() for p in model.parameters()),
                "wall_seconds": seconds, "steps_per_second": c.steps / seconds if seconds > 0 else None,
            }},
            "config": {"status": "ok", "means": dataclasses.asdict(c)},
        },
    }


# ----------------------------------------------------------------------------------------------------------------
# Evaluation


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 4096) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) over the whole set."""
    model.eval()
    loss_sum, correct = 0.0, 0
    for start in range(0, len(x), chunk):
        logits = model(x[start:start + chunk])
        labels = y[start:start + chunk]
        loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
        correct += (logits.argmax(-1) == labels).sum().item()
    model.train()
    return loss_sum / len(x), correct / len(x)


def weight_norm(model: nn.Module) -> float:
    """L2 norm of all parameters together; weight decay drives it down as the model generalises."""
    return math.sqrt(sum(p.detach().pow(2).sum().item() for p in model.parameters()))


def first_step(curves: list[dict], key: str) -> int | None:
    """The first evaluated step at which curves[key] reaches GROK_THRESHOLD, or None if it never does."""
    return next((row["step"] for row in curves if row[key] >= GROK_THRESHOLD), None)


# ----------------------------------------------------------------------------------------------------------------
# Results: written atomically, so a folder never holds half a file.


def write_json(path: Path, data) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    os.replace(temporary, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out_dir", required=True, help="the run folder, e.g. run_1")
    out_dir = Path(parser.parse_args().out_dir)
    try:
        config = load_config()
    except ConfigError as error:
        print(f"experiment.py: {error}", file=sys.stderr)
        return 2
    out_dir.mkdir(parents=True, exist_ok=True)
    results = train(config)
    write_json(out_dir / "curves.json", results["curves"])
    write_json(out_dir / "final_info.json", results["final_info"])
    final = results["final_info"]["final"]["means"]
    print(f"train acc {final['train_accuracy']:.3f}  val acc {final['val_accuracy']:.3f}  "
          f"val acc >= {GROK_THRESHOLD} at step {results['final_info']['grokking']['means']['step_val_acc_99']}  "
          f"({results['final_info']['training']['means']['wall_seconds']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
