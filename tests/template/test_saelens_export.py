"""Every variant's SAELens export loads with SAE.load_from_disk and reconstructs exactly as our model does."""

import dataclasses

import pytest
import torch

from experiment import SAE_CLASSES, build_sae
from sae_harness.sae_base import HookSpec
from sae_harness.saelens_export import export_saelens

HOOK = HookSpec("google/gemma-3-270m", 6, "blocks.6.hook_resid_post")


@pytest.mark.parametrize("variant", sorted(SAE_CLASSES))
def test_round_trip(variant, tiny_settings, tmp_path):
    from sae_lens import SAE

    sae = build_sae(dataclasses.replace(tiny_settings, variant=variant, k=16, dict_size=128), 640, HOOK).eval()
    with torch.no_grad():
        sae.b_enc.uniform_(-0.2, 0.2)
        sae.b_dec.normal_()
    if variant == "batchtopk":
        sae.threshold.fill_(0.4)
    export_saelens(sae, tmp_path / "sae", context_length=128, extra_metadata={"variant": variant})
    loaded = SAE.load_from_disk(tmp_path / "sae", device="cpu")
    x = torch.randn(100, 640) * 2
    with torch.no_grad():
        ours, theirs = sae.encode(x), loaded.encode(x)
        assert (ours > 0).sum() > 0
        assert torch.allclose(theirs, ours, atol=1e-5)
        assert torch.allclose(loaded(x), sae(x), atol=1e-4)


def test_an_export_that_does_not_match_our_encode_is_reported(tiny_settings, tmp_path):
    from experiment import CustomSAE
    from sae_harness.saelens_export import verify_saelens_export

    class HalvedReLU(CustomSAE):
        """An idea's edit that no SAELens 'standard' SAE computes."""

        def encode(self, x):
            return super().encode(x) * 0.5

    sae = HalvedReLU(tiny_settings, d_in=640, d_sae=128, hook=HOOK, generator=torch.Generator().manual_seed(0)).eval()
    x = torch.randn(64, 640) * 2
    path = export_saelens(sae, tmp_path / "sae", context_length=128, extra_metadata={})
    problem = verify_saelens_export(sae, path, x)
    assert problem and "'standard' does not reproduce this SAE" in problem
    plain = CustomSAE(tiny_settings, d_in=640, d_sae=128, hook=HOOK, generator=torch.Generator().manual_seed(0)).eval()
    assert verify_saelens_export(plain, export_saelens(plain, tmp_path / "plain", 128, {}), x) is None
