"""lowrank.provenance: the device every chapter takes and the platform record."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from lowrank import provenance
from tools import (
    regression,
)


def test_resolve_device_reads_the_one_variable(monkeypatch):
    monkeypatch.delenv(provenance.DEVICE_VARIABLE, raising=False)
    auto = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert provenance.resolve_device() == auto
    monkeypatch.setenv(provenance.DEVICE_VARIABLE, "CPU")
    assert provenance.resolve_device() == torch.device("cpu")
    assert provenance.resolve_device("auto") == auto  # an argument overrides the variable
    monkeypatch.setenv(provenance.DEVICE_VARIABLE, "gpu")
    with pytest.raises(ValueError, match="LOWRANK_DEVICE='gpu' is not a device"):
        provenance.resolve_device()


def test_resolve_device_refuses_cuda_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv(provenance.DEVICE_VARIABLE, "cuda")
    with pytest.raises(RuntimeError, match="LOWRANK_DEVICE='cuda' asks for CUDA.*DEVICE=cpu"):
        provenance.resolve_device()
    with pytest.raises(RuntimeError, match="'cuda:1' asks for CUDA"):
        provenance.resolve_device("cuda:1")
    assert provenance.resolve_device("auto") == torch.device("cpu")


def test_platform_record_reads_processor_isa_and_settings(monkeypatch):
    cpuinfo = (
        "vendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\n"
        "model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz\n"
        "flags\t\t: fpu avx2 fma avx512f avx512_bf16 amx_tile\n"
    )
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    record = provenance.platform_record(cpuinfo)
    assert record["cpu"] == "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz (family 6, model 143)"
    assert record["isa"] == "avx2 fma avx512f avx512_bf16 amx_tile"
    assert record["settings"] == "MKL_CBWR=COMPATIBLE"
    assert record["device"] == "cpu" and record["torch"] == torch.__version__
    monkeypatch.delenv("MKL_CBWR")
    assert provenance.platform_record(cpuinfo)["settings"] == ""
    assert regression.same_platform(record, dict(record))
    assert not regression.same_platform(record, provenance.platform_record(cpuinfo))
    assert not regression.same_platform(None, None)
