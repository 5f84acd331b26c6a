import pytest

from studio.core.config import TrainingSettings
from studio.models import hardware
from studio.models.hardware import HardwareFacts

AVX2_CPU = HardwareFacts(device="cpu", cpu_flags=frozenset({"avx2", "fma"}), cpu_count=2, total_memory_gb=24,
                         free_memory_gb=20)
AMX_CPU = HardwareFacts(device="cpu", cpu_flags=frozenset({"avx2", "avx512f", "amx_bf16", "avx512_bf16"}))
A100 = HardwareFacts(device="cuda", device_name="A100", cuda_capability=(8, 0), cuda_bf16=True,
                     total_memory_gb=80, free_memory_gb=78, bitsandbytes_cuda=True)
T4 = HardwareFacts(device="cuda", device_name="T4", cuda_capability=(7, 5), cuda_bf16=False,
                   total_memory_gb=16, free_memory_gb=15, bitsandbytes_cuda=True)


def test_cpu_without_bf16_units_trains_in_fp32_without_checkpointing():
    plan = hardware.plan(AVX2_CPU)
    assert plan["precision"] == "fp32" and plan["gradient_checkpointing"] is False
    assert "no bf16 units" in plan["precision_reason"]


def test_cpu_with_amx_uses_bf16():
    assert hardware.plan(AMX_CPU)["precision"] == "bf16"


def test_ampere_gpu_uses_bf16_and_pre_ampere_fp16():
    assert hardware.plan(A100)["precision"] == "bf16"
    assert hardware.plan(T4)["precision"] == "fp16"


def test_checkpointing_only_when_memory_is_short():
    assert hardware.plan(T4, estimated_gb=4)["gradient_checkpointing"] is False
    assert hardware.plan(T4, estimated_gb=14)["gradient_checkpointing"] is True
    assert hardware.plan(AVX2_CPU, estimated_gb=100)["gradient_checkpointing"] is False


def test_user_choice_wins_but_is_explained():
    plan = hardware.plan(AVX2_CPU, TrainingSettings(precision="bf16", gradient_checkpointing="on"))
    assert plan["precision"] == "bf16" and plan["gradient_checkpointing"] is True
    assert "much slower" in plan["precision_reason"]
    assert hardware.plan(AVX2_CPU, TrainingSettings(precision="fp16"))["precision"] == "fp32"


def test_qlora_only_offered_where_it_can_run():
    assert hardware.qlora_available(AVX2_CPU)[0] is False
    assert hardware.qlora_available(A100)[0] is True


def test_detect_reads_this_machine():
    facts = hardware.detect()
    assert facts.device in ("cpu", "cuda") and facts.cpu_count >= 1 and facts.total_memory_gb > 0


def test_packing_only_with_flash_attention():
    import dataclasses

    flash_gpu = dataclasses.replace(A100, flash_attention=True)
    assert hardware.plan(flash_gpu)["packing"] is True
    for facts in (AVX2_CPU, AMX_CPU, A100):  # an A100 without flash-attn installed packs no more than a CPU
        chosen = hardware.plan(facts)
        assert chosen["packing"] is False and "no flash-attention" in chosen["packing_reason"]
    asked = hardware.plan(AMX_CPU, TrainingSettings(packing="on"))
    assert asked["packing"] is False and asked["packing_reason"].startswith("you asked for packing, but")
    assert hardware.plan(flash_gpu, TrainingSettings(packing="off"))["packing"] is False


def test_liger_kernels_only_on_cuda_with_the_package():
    import dataclasses

    assert hardware.plan(dataclasses.replace(A100, liger_kernel=True))["use_liger_kernel"] is True
    assert "not installed" in hardware.plan(A100)["liger_reason"]
    cpu = hardware.plan(AMX_CPU, TrainingSettings(use_liger_kernel="on"))
    assert cpu["use_liger_kernel"] is False and "needs a CUDA GPU" in cpu["liger_reason"]


@pytest.mark.parametrize("name,capability,precision", [
    ("Tesla V100-SXM2-32GB", (7, 0), "fp16"), ("Tesla T4", (7, 5), "fp16"),
    ("NVIDIA A100-SXM4-80GB", (8, 0), "bf16"), ("NVIDIA H100 80GB HBM3", (9, 0), "bf16")])
def test_detect_counts_only_native_bf16_on_a_gpu(monkeypatch, name, capability, precision):
    """torch.cuda.is_bf16_supported() also counts emulation: True on a V100 or T4, where 'auto' then trained in
    slow emulated bf16. The capability decides."""
    import torch

    cuda = torch.cuda
    monkeypatch.setattr(cuda, "is_available", lambda: True)
    monkeypatch.setattr(cuda, "mem_get_info", lambda *a: (30 * 1024**3, 32 * 1024**3))
    monkeypatch.setattr(cuda, "get_device_name", lambda *a: name)
    monkeypatch.setattr(cuda, "get_device_capability", lambda *a: capability)
    monkeypatch.setattr(cuda, "is_bf16_supported", lambda including_emulation=True: True)  # what torch says there
    monkeypatch.setattr(cuda, "device_count", lambda: 1)
    monkeypatch.setattr(hardware, "_bitsandbytes_usable", lambda: True)
    facts = hardware.detect()
    assert facts.device == "cuda" and facts.cuda_capability == capability
    assert hardware.choose_precision(facts)[0] == precision
    from studio.chat import chat

    monkeypatch.setattr(hardware, "detect", lambda: facts)
    assert chat.inference_placement() == (precision, "cuda")


def test_a_onednn_cap_below_bf16_is_believed_over_the_cpu_flags(monkeypatch):
    raw = hardware._cpu_flags(cap="DEFAULT")
    capped = hardware._cpu_flags(cap="AVX2")
    assert not capped & {"avx512_bf16", "amx_bf16"} and capped <= raw
    assert hardware._cpu_flags(cap="AVX512_CORE_AMX") == raw
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")  # as `ONEDNN_MAX_CPU_ISA=AVX2` makes torch emulate bf16
    facts = HardwareFacts(device="cpu", cpu_flags=hardware._cpu_flags())
    precision, _ = hardware.choose_precision(facts)
    assert not facts.cpu_native_bf16 and precision == "fp32"
