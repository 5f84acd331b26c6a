"""Hardware facts and the choices that follow from them (precision, gradient checkpointing).

TRL's defaults (bf16 + gradient checkpointing) assume a modern GPU. On a CPU without bf16 units they train about
20x slower, so the studio decides from the facts below and shows the reason. `detect()` imports torch lazily;
`plan()` is a pure function of the facts so tests can feed it any machine.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import asdict, dataclass, field

from studio.engine.heavy import ensure_imported
from studio.core.config import TrainingSettings
from studio.core.text import Msg


@dataclass(frozen=True)
class HardwareFacts:
    device: str  # "cuda", "mps" (Apple Silicon's GPU, with the machine's unified memory) or "cpu"
    device_name: str = ""
    cuda_capability: tuple[int, int] | None = None
    cuda_bf16: bool = False
    cpu_flags: frozenset[str] = field(default_factory=frozenset)
    cpu_count: int = 1
    total_memory_gb: float = 0.0  # of the training device (GPU memory on CUDA, RAM on CPU)
    free_memory_gb: float = 0.0
    device_count: int = 1
    bitsandbytes_cuda: bool = False
    flash_attention: bool = False  # flash-attn importable on an Ampere-or-newer GPU: varlen kernels for packing
    liger_kernel: bool = False  # liger-kernel importable with a CUDA GPU
    device_free_gb: tuple[float, ...] = ()  # free memory of every GPU (empty on a CPU): the smallest one decides
    deepspeed: bool = False  # the deepspeed package importable (ZeRO-2 / ZeRO-3)
    mps_bf16: bool = False  # the Apple GPU computes in bf16 (macOS 14 and later with a recent torch)

    @property
    def cpu_native_bf16(self) -> bool:
        # AMX or AVX512-BF16 make bf16 matmuls fast on a CPU; AVX2 alone emulates them (slow).
        return bool(self.cpu_flags & {"amx_bf16", "avx512_bf16"})

    def summary(self) -> str:
        if self.device == "cuda":
            cap = ".".join(map(str, self.cuda_capability or ()))
            return Msg("hw.gpu", count=self.device_count, name=self.device_name, capability=cap,
                       free=self.free_memory_gb, total=self.total_memory_gb)
        if self.device == "mps":
            return Msg("hw.mps", name=self.device_name, free=self.free_memory_gb, total=self.total_memory_gb)
        bf16 = Msg("hw.bf16_units") if self.cpu_native_bf16 else Msg("hw.no_bf16_units")
        return Msg("hw.cpu", cores=self.cpu_count, bf16=bf16, free=self.free_memory_gb, total=self.total_memory_gb)


# oneDNN's instruction-set caps (ONEDNN_MAX_CPU_ISA) that still allow its bf16 kernels; any other cap (AVX2,
# AVX512_CORE, ...) makes torch emulate bf16 whatever the CPU has, so the flags must not be believed then.
BF16_ISAS = {"AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX10_1_512", "AVX512_CORE_AMX", "AVX10_1_512_AMX",
             "AVX512_CORE_AMX_FP16", "AVX10_1_512_AMX_FP16", "ALL", "DEFAULT"}


def _cpu_flags(cap: str | None = None) -> frozenset[str]:
    """The CPU's flags, less its bf16 units where oneDNN is capped below them (a user's or a bench's cap)."""
    flags: frozenset[str] = frozenset()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = frozenset(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") if cap is None else cap) or ""
    if cap and cap.upper() not in BF16_ISAS:
        flags -= {"avx512_bf16", "amx_bf16", "amx_tile", "amx_int8"}
    return flags


def _ram_gb() -> tuple[float, float]:
    try:
        info = {}
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                key, value = line.split(":", 1)
                info[key] = int(value.split()[0]) / 1024**2
        return info["MemTotal"], info.get("MemAvailable", info["MemFree"])
    except (OSError, KeyError, ValueError):
        return 0.0, 0.0


def return_free_memory() -> bool:
    """Give the C heap's free pages back to the system (glibc's `malloc_trim`). glibc keeps freed memory for
    reuse: after training, about half a gigabyte of activations on Gemma 3 270M, which the checks after training
    (differently sized tensors) then added to instead of reusing. False where there is no glibc."""
    import ctypes  # deferred: only Linux has the call

    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


def detect() -> HardwareFacts:
    ensure_imported()
    import torch  # deferred: the UI imports this module on start-up; detection runs after the page is served

    cpu_count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        count = torch.cuda.device_count()
        capability = tuple(torch.cuda.get_device_capability(0))
        return HardwareFacts(
            device="cuda",
            device_name=torch.cuda.get_device_name(0),
            cuda_capability=capability,
            # Native bf16 starts with Ampere (8.0). torch.cuda.is_bf16_supported() also counts emulation, which
            # says yes on a V100 or T4 and would train there in slow, emulated bf16.
            cuda_bf16=capability >= (8, 0),
            cpu_flags=_cpu_flags(),
            cpu_count=cpu_count,
            total_memory_gb=total / 1024**3,
            free_memory_gb=free / 1024**3,
            device_count=count,
            bitsandbytes_cuda=_bitsandbytes_usable(),
            flash_attention=capability >= (8, 0) and _installed("flash_attn"),
            liger_kernel=_installed("liger_kernel"),
            device_free_gb=tuple(torch.cuda.mem_get_info(i)[0] / 1024**3 for i in range(count)),
            deepspeed=_installed("deepspeed"),
        )
    if _mps_available(torch):
        return _mps_facts(torch, cpu_count)
    total, free = _ram_gb()
    return HardwareFacts(device="cpu", device_name="CPU", cpu_flags=_cpu_flags(), cpu_count=cpu_count,
                         total_memory_gb=total, free_memory_gb=free)


def _mps_available(torch) -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _mps_facts(torch, cpu_count: int) -> HardwareFacts:
    """Apple Silicon: one GPU sharing the machine's memory. Metal's recommended working set is the budget a run
    may plan for (about three quarters of the memory); what this process holds there already is not free."""
    budget = torch.mps.recommended_max_memory() / 1024**3
    used = torch.mps.driver_allocated_memory() / 1024**3
    try:
        torch.ones(1, dtype=torch.bfloat16, device="mps").sum().item()
        bf16 = True
    except (RuntimeError, TypeError):  # older macOS: no bf16 on the GPU
        bf16 = False
    return HardwareFacts(device="mps", device_name=_chip_name(), cpu_flags=_cpu_flags(), cpu_count=cpu_count,
                         total_memory_gb=budget, free_memory_gb=max(budget - used, 0.0), mps_bf16=bf16)


def _chip_name() -> str:
    """The Mac's chip ("Apple M2 Pro"), or "Apple Silicon" where macOS does not say."""
    import subprocess  # deferred: macOS only

    try:
        found = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                               timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        found = ""
    return found or "Apple Silicon"


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def choose_liger(facts: HardwareFacts, requested: str = "auto") -> tuple[bool, str]:
    """Liger's layer kernels are Triton: CUDA only."""
    if requested == "off":
        return False, Msg("hw.set_by_you")
    if facts.liger_kernel:
        return True, Msg("hw.set_by_you") if requested == "on" else Msg("hw.liger_on")
    if requested == "on":
        return False, Msg("hw.liger_asked_no_cuda" if facts.device != "cuda" else "hw.liger_asked_missing")
    return False, Msg("hw.liger_no_cuda" if facts.device != "cuda" else "hw.liger_missing")


def choose_packing(facts: HardwareFacts, requested: str = "auto") -> tuple[bool, str]:
    """TRL's packing only with flash-attention's varlen kernels. Elsewhere it would take the run off the studio's
    lean path (studio/engine/lean.py), which already drops padding where the model keeps conversations apart."""
    if requested == "off":
        return False, Msg("hw.packing_off")
    if facts.flash_attention:
        return True, Msg("hw.set_by_you") if requested == "on" else Msg("hw.packing_flash")
    why = Msg("hw.packing_no_flash")
    return False, Msg("hw.packing_asked", why=why) if requested == "on" else why


def _bitsandbytes_usable() -> bool:
    try:
        import bitsandbytes  # noqa: F401
    except Exception:  # a broken install raises all sorts of errors at import
        return False
    return True


def qlora_available(facts: HardwareFacts) -> tuple[bool, str]:
    if facts.device == "mps":
        return False, Msg("hw.qlora_no_mps")
    if facts.device != "cuda":
        return False, Msg("hw.qlora_no_gpu")
    if not facts.bitsandbytes_cuda:
        return False, Msg("hw.qlora_no_bnb")
    return True, Msg("hw.qlora_ok")


def choose_precision(facts: HardwareFacts) -> tuple[str, str]:
    if facts.device == "cuda":
        if facts.cuda_bf16:
            return "bf16", Msg("hw.gpu_bf16", name=facts.device_name)
        return "fp16", Msg("hw.gpu_fp16", name=facts.device_name, capability=str(facts.cuda_capability))
    if facts.device == "mps":  # fp16 mixed precision needs a gradient scaler, which the Apple GPU lacks in torch
        return ("bf16", Msg("hw.mps_bf16")) if facts.mps_bf16 else ("fp32", Msg("hw.mps_fp32"))
    if facts.cpu_native_bf16:
        return "bf16", Msg("hw.cpu_bf16")
    return "fp32", Msg("hw.cpu_fp32")


def choose_gradient_checkpointing(facts: HardwareFacts, estimated_gb: float | None) -> tuple[bool, str]:
    """Checkpointing trades ~30% compute for activation memory: only worth it when memory is short."""
    if facts.device == "cpu":
        return False, Msg("hw.ckpt_cpu")
    if estimated_gb is not None and estimated_gb > 0.8 * facts.free_memory_gb:
        return True, Msg("hw.ckpt_needed", needed=estimated_gb, free=facts.free_memory_gb)
    return False, Msg("hw.ckpt_fits")


def resolve_precision(facts: HardwareFacts, requested: str = "auto") -> tuple[str, str]:
    """The precision a run trains in, with the reason: 'auto' follows the hardware; fp16 on a CPU becomes fp32."""
    if requested == "auto":
        return choose_precision(facts)
    if requested == "bf16" and facts.device == "cpu" and not facts.cpu_native_bf16:
        return requested, Msg("hw.bf16_emulated")
    if requested == "fp16" and facts.device == "cpu":
        return "fp32", Msg("hw.fp16_cpu")
    if requested == "bf16" and facts.device == "mps" and not facts.mps_bf16:
        return "fp32", Msg("hw.bf16_mps_missing")
    return requested, Msg("hw.set_by_you")


# ---------------------------------------------------------------- devices: one, data-parallel, or sharded

FITS = 0.9  # of a device's free memory: what the run may plan to use, leaving room for the allocator's slack
SHARDS = {"ddp": (), "zero2": ("optimizer_and_gradients",), "zero3": ("weights", "optimizer_and_gradients"),
          "fsdp": ("weights", "optimizer_and_gradients")}  # the memory parts each strategy splits over the devices


def per_device_gb(memory: dict, strategy: str, processes: int) -> float:
    """One device's share of the run's memory (estimates.estimate_memory_gb's parts): data parallelism copies
    everything; ZeRO-2 splits the optimizer state; FSDP and ZeRO-3 split the weights too. Activations and logits
    are each device's own batch."""
    split = SHARDS.get(strategy, ())
    return sum(memory[part] / (processes if part in split else 1)
               for part in ("weights", "optimizer_and_gradients", "activations", "logits")) + memory.get("dora", 0.0)


def device_free_gb(facts: HardwareFacts) -> float:
    return min(facts.device_free_gb) if facts.device_free_gb else facts.free_memory_gb


def choose_devices(facts: HardwareFacts, training: TrainingSettings | None = None, memory: dict | None = None,
                   method: str = "lora") -> dict:
    """How many processes train and how they share the model, with the reason. Every GPU by default: each holds
    the whole model (data-parallel) when it fits one, else the model is sharded (FSDP) so that it fits them
    together. A CPU trains in one process unless asked for more (gloo processes, to check a multi-GPU preset here).
    `memory`: the run's memory parts on one device (estimates.training_memory_gb), None when the model is unknown."""
    t = training or TrainingSettings()
    notes = []
    available = {"cuda": facts.device_count, "mps": 1}.get(facts.device, facts.cpu_count)
    processes = t.num_processes or (facts.device_count if facts.device == "cuda" else 1)
    if processes > available:
        notes.append(Msg({"cuda": "hw.devices_fewer", "mps": "hw.devices_one_mps"}.get(facts.device,
                                                                                    "hw.devices_fewer_cores"),
                         asked=processes, count=available))
        processes = available
    if processes <= 1:
        return _devices(1, "single", memory, facts, notes)
    strategy, why = _strategy(facts, t.distributed_strategy, memory, method, processes)
    return _devices(processes, strategy, memory, facts, notes + [why])


def _strategy(facts: HardwareFacts, requested: str, memory: dict | None, method: str, processes: int):
    if facts.device != "cuda":  # accelerate shards only on GPUs; CPU processes are plain data-parallel (gloo)
        return "ddp", Msg("hw.devices_cpu", count=processes, total=facts.cpu_count)
    if method == "qlora" and requested in ("fsdp", "zero3"):  # as repeat.accelerate_config refuses it
        return "ddp", Msg("hw.devices_qlora_unsharded")
    if requested.startswith("zero") and not facts.deepspeed:
        return ("fsdp" if requested == "zero3" else "ddp"), Msg("hw.devices_no_deepspeed", asked=requested)
    if requested != "auto":
        return requested, Msg("hw.set_by_you")
    free = device_free_gb(facts)
    if memory is None or per_device_gb(memory, "ddp", processes) <= FITS * free or method == "qlora":
        return "ddp", Msg("hw.devices_ddp", count=processes)
    return "fsdp", Msg("hw.devices_fsdp", whole=per_device_gb(memory, "ddp", processes), free=free, count=processes)


def _devices(processes: int, strategy: str, memory: dict | None, facts: HardwareFacts, notes: list) -> dict:
    each = round(per_device_gb(memory, strategy, processes), 2) if memory is not None else None
    free = device_free_gb(facts)
    if facts.device != "cuda" and processes > 1:
        free /= processes  # CPU processes share the machine's memory
    if each is not None and each > FITS * free:
        notes.append(Msg("hw.devices_too_big", needed=each, free=free))
    if not notes:
        notes.append(Msg({"cuda": "hw.devices_one_gpu", "mps": "hw.devices_mps"}.get(facts.device,
                                                                                "hw.devices_one_cpu")))
    return {"processes": processes, "strategy": strategy, "per_device_gb": each, "devices_reason": notes}


def plan(facts: HardwareFacts, training: TrainingSettings | None = None, estimated_gb: float | None = None,
         memory: dict | None = None, method: str = "lora") -> dict:
    """The run's hardware choices: its 'auto' settings resolved into concrete values, with the reasons the user
    sees. `memory`: the run's memory parts without checkpointing (estimates.training_memory_gb), for the devices
    and 'auto' checkpointing; `estimated_gb` alone: its total."""
    t = training or TrainingSettings()
    chosen, why = resolve_precision(facts, t.precision)
    devices = choose_devices(facts, t, memory, method)
    if devices["per_device_gb"] is not None:
        estimated_gb = devices["per_device_gb"]  # what each device must hold, sharded or not
    if t.gradient_checkpointing == "auto":
        checkpointing, ckpt_why = choose_gradient_checkpointing(facts, estimated_gb)
    else:
        checkpointing, ckpt_why = t.gradient_checkpointing == "on", Msg("hw.set_by_you")
    return {
        "device": facts.device,
        "hardware": facts.summary(),
        "precision": chosen,
        "precision_reason": why,
        "gradient_checkpointing": checkpointing,
        "gradient_checkpointing_reason": ckpt_why,
        **dict(zip(("packing", "packing_reason"), choose_packing(facts, t.packing))),
        **dict(zip(("use_liger_kernel", "liger_reason"), choose_liger(facts, t.use_liger_kernel))),
        **devices,
        "facts": {**asdict(facts), "cpu_flags": sorted(facts.cpu_flags & {"avx2", "avx512f", "avx512_bf16", "amx_bf16"})},
    }
