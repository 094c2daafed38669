"""The experiment environment on a CPU machine: no CUDA packages, and the packages the template needs."""

import importlib.metadata
import shutil

import pytest


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="GPU machines keep their own CUDA torch")
def test_cpu_environment_pulls_no_cuda_packages():
    names = {dist.metadata["Name"].lower() for dist in importlib.metadata.distributions()}
    cuda = sorted(n for n in names if n.startswith(("nvidia-", "cuda-", "triton")) or "cuda" in n)
    assert not cuda, f"CUDA packages in the CPU experiment environment: {cuda}"
    torch_version = importlib.metadata.version("torch")
    assert "+cu" not in torch_version


def test_torchvision_is_absent_so_transformers_can_import_gemma3():
    # A CPU torchvision that does not match torch breaks transformers' model imports.
    from transformers import Gemma3ForCausalLM  # noqa: F401

    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.version("torchvision")
