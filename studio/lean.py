"""TRL's SFTTrainer without the per-step work that training does not need.

Profiled with py-spy on the starter model (bench/RESULTS.md), TRL's fused LM head took about a third of every CPU
training step. Two parts of it serve only logging or other devices:
  * it also computes each token's entropy and whether the target is the top-1 prediction, for the `entropy` and
    `mean_token_accuracy` log lines (the studio shows neither); the top-1 test alone builds a vocabulary-wide mask;
  * off CUDA/XPU it scores *every* position, prompt and padding included, and masks them afterwards (TRL does so to
    keep tile shapes fixed for compilers such as Neuron's; eager CPU does not recompile), so with answer-only loss
    most of the head's work is thrown away.
The studio's head computes only the log-probabilities of positions that have a label, on every device, with TRL's
own chunked kernel (`trl.kernels.ChunkedLogProbFunction`), so the loss and its gradients are the same numbers.

It is used only where that holds: plain negative log-likelihood, no custom loss, label smoothing, MoE auxiliary
loss, logit scaling / soft-capping, padding-free batches or sharded weights (ZeRO-3 / FSDP gather the head in
TRL's version). Liger's layer kernels (RMSNorm, SwiGLU, RoPE) leave the head alone and combine with it. Anywhere else TRL's trainer runs unchanged. Remove this module when TRL stops computing logging-only
fields on every step and compacts positions on CPU.
"""

from __future__ import annotations

import types

from .heavy import ensure_imported

ensure_imported()
import torch  # noqa: E402
from trl import SFTTrainer  # noqa: E402
from trl.kernels import ChunkedLogProbFunction  # noqa: E402
from trl.trainer.utils import FusedCausalLMOutput  # noqa: E402

CHUNK_SIZE = 32768  # vocabulary columns per tile, as TRL uses
LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier",
                    "logits_scaling", "output_router_logits")


def lean_head_supported(model) -> bool:
    text_config = model.config.get_text_config()
    return not any(getattr(text_config, name, None) for name in LOGIT_TRANSFORMS)


def add_lean_lm_head(model) -> None:
    """Replace the forward TRL patched in with one that scores only labelled positions and computes only their
    log-probabilities. `fused_lm_head=False` (generation, plain calls) still reaches the model's own forward."""
    trl_forward = model.forward

    def forward(self, *args, fused_lm_head=False, labels=None, num_items_in_batch=None, **kwargs):
        if not fused_lm_head or "shift_labels" in kwargs:
            return trl_forward(*args, fused_lm_head=fused_lm_head, labels=labels,
                               num_items_in_batch=num_items_in_batch, **kwargs)
        kwargs["use_cache"] = False
        hidden = self.base_model(*args, **kwargs).last_hidden_state[:, :-1]
        head = self.get_output_embeddings()
        labels = labels[:, 1:].to(head.weight.device)
        mask = labels != -100
        log_probs = ChunkedLogProbFunction.apply(hidden.to(head.weight.device)[mask], head.weight, head.bias,
                                                 labels[mask], 1.0, CHUNK_SIZE, None, 1.0, ("log_probs",))[0]
        # masked_scatter keeps a batch without labelled positions connected to the graph (a zero loss, not an error)
        log_probs = log_probs.new_zeros(mask.shape).masked_scatter(mask, log_probs)
        count = mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
        return FusedCausalLMOutput(loss=-log_probs.sum() / count, log_probs=log_probs, label_mask=mask)

    model.forward = types.MethodType(forward, model)


class LeanSFTTrainer(SFTTrainer):
    """SFTTrainer with the lean LM head where it gives the same loss; TRL's own path everywhere else."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        model = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        self.lean = (
            self.args.loss_type == "nll" and self.compute_loss_func is None and self.label_smoother is None
            and not self.aux_loss_enabled and not self.padding_free
            and self.accelerator.distributed_type.value in ("NO", "MULTI_CPU", "MULTI_GPU")
            and lean_head_supported(model)
        )
        if self.lean:
            add_lean_lm_head(model)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not self.lean or "attention_mask" not in inputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        mode = "train" if self.model.training else "eval"
        outputs = model(**inputs, fused_lm_head=True)
        count = outputs.label_mask.sum() if num_items_in_batch is None else num_items_in_batch
        loss = -outputs.log_probs.sum() / torch.as_tensor(count).clamp(min=1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes  # as TRL: DDP averages gradients across processes
        if mode == "train":
            # Same count as TRL's num_tokens: non-padding tokens of every process.
            self._total_train_tokens += self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return (loss, outputs) if return_outputs else loss
