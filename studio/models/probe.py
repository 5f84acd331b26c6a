"""The time probe of the Hyperparameters tab: a few real training steps on this machine."""

from __future__ import annotations

import time

from studio.engine import heavy
from studio.core.config import Settings
from studio.core.text import Msg
from studio.core.trl_args import to_lora_config
from . import hardware, models


def probe_seconds_per_step(settings: Settings, seq_len: int, steps: int = 2, facts=None, progress=None) -> float:
    """Time a few real forward/backward/update steps at the run's batch size and a typical length, on this
    machine, with the run's method and precision. Returns seconds per optimizer step (x accumulation)."""
    heavy.ensure_imported()
    import torch  # deferred: the UI imports this module on start-up

    facts = facts or hardware.detect()
    plan = hardware.plan(facts, settings.training)
    model = _probe_model(settings, plan)
    device = plan["device"]  # cuda, mps or cpu
    model.to(device).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
    # GRPO: each prompt is answered num_generations times (every answer as long as allowed: the step's worst
    # case), and the step then trains on the prompts with their answers.
    m, generates = settings.method, settings.stage.generates
    rows = settings.training.per_device_train_batch_size * (m.num_generations if generates else 1)
    answer = m.max_completion_length if generates else 0
    batch = torch.randint(0, model.config.vocab_size, (rows, seq_len + answer), device=device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(plan["precision"])
    timings = []
    for done in range(steps + 1):  # the first step warms up kernels and allocators and is not counted
        if progress is not None:  # the bar moves with each measured step, not only before the model loads
            progress(0.3 + 0.7 * done / (steps + 1), Msg("hyper.probing_step", step=done + 1, steps=steps + 1))
        started = time.perf_counter()
        with torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None):
            if generates:
                with torch.no_grad():
                    model.generate(input_ids=batch[:, :seq_len], max_new_tokens=answer, min_new_tokens=answer,
                                   do_sample=True, pad_token_id=0)
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        elif device == "mps":
            torch.mps.synchronize()
        timings.append(time.perf_counter() - started)
    del model, optimizer
    models.free_memory()
    return sum(timings[1:]) / steps * settings.training.gradient_accumulation_steps


def _probe_model(settings: Settings, plan: dict):
    """The model as the run would train it: adapters on a LoRA run, the last layers trainable on a freeze run."""
    path = models.resolve_model_path(settings.model.model_name_or_path, progress=lambda _: None)
    method = settings.method.finetuning_type
    model = models.load_model(path, models.weights_dtype(plan["precision"], method), settings.model.trust_remote_code)
    if method in ("lora", "qlora"):
        from peft import get_peft_model  # deferred: peft imports torch

        return get_peft_model(model, to_lora_config(settings))
    if method == "freeze":
        models.freeze_all_but_last(model, settings.method.freeze_trainable_layers)
    return model
