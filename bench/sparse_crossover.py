"""Where the ReLU SAE's sparse step overtakes the dense one (sets SPARSE_BELOW in sae_harness/sparse.py).

    templates/sae_variants/.venv/bin/python bench/sparse_crossover.py [--d-in 640 --d-sae 2048 --batch 2048]

For each density (the fraction of features that fire), one forward and backward pass of the template's ReLU
loss (MSE plus decoder-norm-weighted L1), once with dense products and once through the sparse kernels, on the
same random inputs and weights, with the encoder bias set so that the density is what is asked. The gradients
of both are checked to agree before anything is timed. Prints a table and one JSON line.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "templates" / "sae_variants"))
from sae_harness.sparse import SPARSE_BELOW, ActiveSet, DenseFeatures, active_features  # noqa: E402

DENSITIES = (0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.12, 0.2, 0.4)


def loss(features, x, W_dec, b_dec):
    mse = (features.decode(W_dec) + b_dec - x).pow(2).sum(dim=-1).mean()
    return mse + 0.6 * features.row_sums(W_dec.norm(dim=1)).mean()


def dense_loss(x, W_enc, b_enc, W_dec, b_dec):
    return loss(DenseFeatures(torch.relu((x - b_dec) @ W_enc + b_enc)), x, W_dec, b_dec)


def sparse_loss(x, W_enc, b_enc, W_dec, b_dec):
    with torch.no_grad():
        pre = (x - b_dec) @ W_enc + b_enc
    return loss(active_features(x, b_dec, W_enc, b_enc, ActiveSet.of_mask(pre > 0), pre), x, W_dec, b_dec)


def best_seconds(step, params, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        torch.autograd.grad(step(), params)
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--d-in", type=int, default=640)
    parser.add_argument("--d-sae", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, args.d_in, generator=generator) * 2
    W_dec = torch.randn(args.d_sae, args.d_in, generator=generator)
    W_dec = (W_dec / W_dec.norm(dim=1, keepdim=True)).requires_grad_()
    W_enc = W_dec.detach().t().clone().requires_grad_()
    b_dec = torch.zeros(args.d_in, requires_grad=True)
    rows = []
    for density in DENSITIES:
        with torch.no_grad():
            pre = x @ W_enc
            threshold = pre.flatten().kthvalue(int((1 - density) * pre.numel())).values
        b_enc = torch.full((args.d_sae,), -threshold.item(), requires_grad=True)
        params = [W_enc, b_enc, W_dec, b_dec]
        inputs = (x, W_enc, b_enc, W_dec, b_dec)
        dense_grads = torch.autograd.grad(dense_loss(*inputs), params)
        sparse_grads = torch.autograd.grad(sparse_loss(*inputs), params)
        for got, expected in zip(sparse_grads, dense_grads):
            assert torch.allclose(got, expected, rtol=1e-3, atol=1e-4 * expected.abs().max().item())
        dense_s = best_seconds(lambda inputs=inputs: dense_loss(*inputs), params, args.repeats)
        sparse_s = best_seconds(lambda inputs=inputs: sparse_loss(*inputs), params, args.repeats)
        rows.append({"density": density, "dense_ms": round(1000 * dense_s, 1), "sparse_ms": round(1000 * sparse_s, 1),
                     "speedup": round(dense_s / sparse_s, 2)})
        print(f"density {density:6.3f}: dense {1000 * dense_s:7.1f} ms, sparse {1000 * sparse_s:7.1f} ms, "
              f"sparse is {dense_s / sparse_s:.2f}x as fast")
    faster = [row["density"] for row in rows if row["speedup"] > 1]
    print(json.dumps({"d_in": args.d_in, "d_sae": args.d_sae, "batch": args.batch, "threads": torch.get_num_threads(),
                      "sparse_below_in_use": SPARSE_BELOW, "sparse_faster_up_to": max(faster, default=None),
                      "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
