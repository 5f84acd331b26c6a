"""TRL's SFTTrainer without the per-step work that training does not need.

Profiled with py-spy on the starter model (bench/RESULTS.md), TRL's fused LM head took about a third of every CPU
training step. Two parts of it serve only logging or other devices:
  * it also computes each token's entropy and whether the target is the top-1 prediction, for the `entropy` and
    `mean_token_accuracy` log lines (the studio shows neither); the top-1 test alone builds a vocabulary-wide mask;
  * off CUDA/XPU it scores *every* position, prompt and padding included, and masks them afterwards (TRL does so to
    keep tile shapes fixed for compilers such as Neuron's; eager CPU does not recompile), so with answer-only loss
    most of the head's work is thrown away.
The studio's head computes only the log-probabilities of positions that have a label, on every device: with TRL's
own chunked kernel (`trl.kernels.ChunkedLogProbFunction`) on GPUs, and on the CPU with `CPULabelLogProbs`, the
same computation without the fp32 detours TRL's CPU fallback takes; the loss and its gradients are the same numbers.

It is used only where that holds: plain negative log-likelihood, no custom loss, label smoothing, MoE auxiliary
loss, logit scaling / soft-capping, TRL's own packing or sharded weights (ZeRO-3 / FSDP gather the head in TRL's
version). Liger's layer kernels (RMSNorm, SwiGLU, RoPE) leave the head alone and combine with it. Anywhere else
TRL's trainer runs unchanged. Remove this module when TRL stops computing logging-only fields on every step and
compacts positions on CPU.

With the lean head, a batch of short conversations also goes without padding (`PaddingFreeWhenCheaper`): the
same conversations laid end to end in one row, each attending only to itself, so the loss is the padded batch's
and the work on padding goes (on the bench data, random order, about a fifth of each step). It is switched on
only after checking, on the model as loaded, that attention stays inside each conversation.
"""

from __future__ import annotations

import dataclasses
import functools
import types

from .heavy import ensure_imported
from .lean_layers import install_lean_layers

ensure_imported()
import torch  # noqa: E402
from trl import SFTTrainer  # noqa: E402
from trl.kernels import ChunkedLogProbFunction  # noqa: E402
from transformers import AttentionInterface  # noqa: E402
from transformers.integrations.sdpa_attention import sdpa_attention_forward  # noqa: E402
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask  # noqa: E402
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling  # noqa: E402
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
        log_probs = label_log_probs(hidden.to(head.weight.device)[mask], head.weight, head.bias, labels[mask])
        # masked_scatter keeps a batch without labelled positions connected to the graph (a zero loss, not an error)
        log_probs = log_probs.new_zeros(mask.shape).masked_scatter(mask, log_probs)
        count = mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
        return FusedCausalLMOutput(loss=-log_probs.sum() / count, log_probs=log_probs, label_mask=mask)

    model.forward = types.MethodType(forward, model)


def label_log_probs(hidden, weight, bias, labels):
    """log p(label) of each position under the head `hidden @ weight.T + bias`, without the [N, vocab] logits."""
    if hidden.device.type == "cpu":
        return CPULabelLogProbs.apply(hidden, weight, bias, labels)
    return ChunkedLogProbFunction.apply(hidden, weight, bias, labels, 1.0, CHUNK_SIZE, None, 1.0, ("log_probs",))[0]


# Vocabulary x positions per CPU tile (4 MiB in fp32); the [N, vocab] logits of a whole batch never exist at once.
# Tiles that stay in the CPU's caches between the GEMM and the passes over them ran the whole head (forward and
# backward) 5-15% faster than 64 MiB tiles on both built-in models' heads (bench/RESULTS.md, issue 30).
CPU_TILE_ELEMENTS = 2**20
# Positions per tile at most. A GEMM re-packs the whole head weight for every tile, so few positions per tile waste
# it: against Gemma's [262k, 640] head, tiles of 58 positions ran at 119 GFLOP/s and tiles of 240 (over a quarter
# of the vocabulary each) at 160, 1024 at 200 (2-core EPYC, fp32; bench/RESULTS.md, issue 30).
ROW_TILE = 1024


class CPULabelLogProbs(torch.autograd.Function):
    """TRL's ChunkedLogProbFunction, for the CPU. Off CUDA TRL folds each tile with about a dozen torch passes over
    fresh fp32 arrays and does the gradient GEMMs in fp32 even under bf16; profiled on the starter model in bf16,
    its head took 46% of each step. Here each tile is as many positions as fit (up to ROW_TILE) by as much of the
    vocabulary as CPU_TILE_ELEMENTS leaves (the whole of the starter's), with a running log-sum-exp across the
    vocabulary chunks; one GEMM in the compute dtype per tile (its products summed in fp32 inside the GEMM, as
    TRL's fp32 accumulation does) and five in-place passes over reused buffers do the work: the same numbers to
    fp32 rounding (tests), the head 2.4-4.7x faster (bench/RESULTS.md). Plain log-likelihood only: no
    temperature, soft-capping or entropy."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, labels):
        dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else hidden.dtype
        top = torch.full((len(hidden),), -torch.inf)  # running max and sum of exp(logit - max) per position
        total = torch.zeros(len(hidden))
        label_logit = torch.empty(len(hidden))
        for rows, cols, logits, scores in _logit_tiles(hidden, weight, bias, dtype):  # [columns, positions]
            here, where = _labels_in(labels[rows], cols)
            label_logit[rows][here] = scores[where, here]
            new_top = torch.maximum(top[rows], scores.amax(0))
            total[rows] = total[rows] * (top[rows] - new_top).exp() + scores.sub_(new_top).exp_().sum(0)
            top[rows] = new_top
        log_z = top + total.log()
        ctx.save_for_backward(hidden, weight, bias, labels, log_z)
        ctx.dtype = dtype
        return label_logit - log_z

    @staticmethod
    def backward(ctx, grad):
        hidden, weight, bias, labels, log_z = ctx.saved_tensors
        wants_hidden, wants_weight, wants_bias = ctx.needs_input_grad[:3]
        grad = grad.float()
        weight_in_dtype = weight.to(ctx.dtype)
        # summed over vocabulary chunks in fp32, rounded to the compute dtype once, as one GEMM would
        grad_hidden = torch.zeros(hidden.shape, dtype=torch.float32) if wants_hidden else None
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32) if wants_weight else None
        grad_bias = torch.zeros(len(weight), dtype=torch.float32) if wants_bias else None
        for rows, cols, logits, scores in _logit_tiles(hidden, weight_in_dtype, bias, ctx.dtype):
            g = grad[rows]
            scores.sub_(log_z[rows]).exp_().mul_(-g)  # d log p(label) / d logit = 1[label] - p
            here, where = _labels_in(labels[rows], cols)
            scores[where, here] += g[here]
            if wants_bias:
                grad_bias[cols] += scores.sum(1)
            if scores is not logits:
                logits.copy_(scores)  # the logits' gradient in the compute dtype, as TRL rounds its tiles
            if wants_hidden:
                grad_hidden[rows] += torch.mm(logits.t(), weight_in_dtype[cols])
            if wants_weight:
                grad_weight[cols].addmm_(logits.float(), hidden[rows].float())
        return (grad_hidden.to(ctx.dtype).to(hidden.dtype) if wants_hidden else None,
                grad_weight.to(weight.dtype) if wants_weight else None,
                grad_bias.to(bias.dtype) if wants_bias else None, None)


def _labels_in(labels, cols: slice):
    """Which of these positions have their label among the vocabulary columns `cols`, and at which column."""
    here = ((labels >= cols.start) & (labels < cols.stop)).nonzero().squeeze(1)
    return here, labels[here] - cols.start


def _logit_tiles(hidden, weight, bias, dtype):
    """(rows, columns, logits in `dtype`, the same as fp32 scores to work on in place) for each tile: row blocks
    of equal size, each through the vocabulary in equal chunks. Tiles are [columns, positions], `weight @
    hidden.T`: with the head weight as the GEMM's untransposed operand it ran 10-25% faster (180-220 against
    163-199 GFLOP/s on Gemma's head). Both buffers are reused from tile to tile, so no pass touches fresh
    memory."""
    weight = weight.to(dtype)
    n, vocab = len(hidden), len(weight)
    height = max(1, -(-n // max(1, -(-n // ROW_TILE))))  # equal row blocks of at most ROW_TILE: no short last one
    width = min(vocab, max(1, CPU_TILE_ELEMENTS // max(1, height)))
    width = -(-vocab // -(-vocab // width))
    logits_buffer = torch.empty(height * width, dtype=dtype)
    scores_buffer = logits_buffer if dtype == torch.float32 else torch.empty(height * width)
    for start in range(0, n, height):
        rows = slice(start, min(start + height, n))
        block = hidden[rows].to(dtype)
        for first in range(0, vocab, width):
            cols = slice(first, min(first + width, vocab))
            shape = (cols.stop - cols.start, rows.stop - rows.start)  # flat buffers: every tile view contiguous
            logits = torch.mm(weight[cols], block.t(), out=logits_buffer[:shape[0] * shape[1]].view(shape))
            if bias is not None:
                logits.add_(bias[cols, None].to(dtype))
            scores = scores_buffer[:shape[0] * shape[1]].view(shape)
            if scores is not logits:
                scores.copy_(logits)
            yield rows, cols, logits, scores


# ---------------------------------------------------------------- batches without padding

# Below this share of padding a batch stays padded: one batched attention call beats one per conversation there
# (without it, length-grouped batches in bf16 ran 4-6% slower laid end to end: bench (b''), bench/RESULTS.md).
MIN_PADDING_SAVED = 0.1


@dataclasses.dataclass
class PaddingFreeWhenCheaper(DataCollatorForLanguageModeling):
    """TRL's collator, choosing per batch: the batch's conversations laid end to end in one row (position ids
    start again at 0 for each, so attention stays inside each conversation, as transformers builds the mask from
    them) when that costs less than padding them to the longest; padded as TRL does otherwise. The same
    conversations and the same loss either way: only the work on padding goes.

    One row of n tokens costs n linear-layer passes and n^2 attention pairs; padding costs batch x longest of each.
    `context_weight` is the cost of one attention pair relative to one token's linear layers (see
    `context_weight`), so long conversations, where the one long row's attention would cost more, stay padded."""

    context_weight: float = 0.0
    attention_per_conversation: bool = False  # then one row never costs more attention than its conversations

    def torch_call(self, examples):
        lengths = [len(example["input_ids"]) for example in examples]
        if self.attention_per_conversation:  # attention costs no more in one row: worth it once padding is real
            packed = sum(lengths) <= (1 - MIN_PADDING_SAVED) * len(lengths) * max(lengths)
        else:
            packed = padding_free_is_cheaper(lengths, self.context_weight)
        return DataCollatorForLanguageModeling.torch_call(dataclasses.replace(self, padding_free=packed), examples)


def padding_free_is_cheaper(lengths: list[int], context_weight: float) -> bool:
    longest, total = max(lengths), sum(lengths)
    return total * (1 + context_weight * total) < len(lengths) * longest * (1 + context_weight * longest)


def context_weight(config) -> float:
    """Attention work per (token, context token) over linear-layer work per token: 4 x hidden per layer against
    2 x the parameters a token passes through."""
    config = config.get_text_config()
    hidden, layers = config.hidden_size, config.num_hidden_layers
    intermediate = getattr(config, "intermediate_size", 4 * hidden)
    return 4 * hidden * layers / (2 * layers * (4 * hidden * hidden + 3 * hidden * intermediate))


SDPA_PER_CONVERSATION = "studio_sdpa_per_conversation"
UNUSUAL_ATTENTION = ("softcap", "s_aux", "sinks", "position_bias")  # left to transformers' own SDPA


def sdpa_per_conversation(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """SDPA on a padding-free row one conversation at a time, each with the causal kernel: no attention work
    between conversations and no mask to build or read. A sliding window changes nothing for a conversation
    that fits in it (transformers lets a token see the `sliding_window - 1` before it), so Gemma's and Mistral's
    sliding layers take this path too when every conversation fits. Anything else (padded batches, generation,
    longer conversations under a window, soft-capping, sinks) goes to transformers' own SDPA unchanged."""
    bounds = kwargs.get("cu_seq_lens_q")
    edges = bounds.tolist() if bounds is not None else []
    window = kwargs.get("sliding_window")
    if bounds is None or query.shape[0] != 1 or key.shape[2] != query.shape[2] \
            or len(edges) < 2 or (edges[0], edges[-1]) != (0, query.shape[2]) \
            or not getattr(module, "is_causal", True) or any(kwargs.get(k) is not None for k in UNUSUAL_ATTENTION) \
            or (window is not None and max(b - a for a, b in zip(edges[:-1], edges[1:])) > window):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    gqa = key.shape[1] != query.shape[1]
    # split, not slices: a slice's backward writes its gradient into a zeroed tensor of the whole row, once per
    # conversation and per q, k and v; split's backward is one concatenation
    sizes = [end - start for start, end in zip(edges[:-1], edges[1:])]
    output = torch.cat([
        torch.nn.functional.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=scaling, is_causal=True,
                                                         enable_gqa=gqa)
        for q, k, v in zip(*(t.split(sizes, dim=2) for t in (query, key, value)))], dim=2)
    return output.transpose(1, 2).contiguous(), None


AttentionInterface.register(SDPA_PER_CONVERSATION, sdpa_per_conversation)
AttentionMaskInterface.register(SDPA_PER_CONVERSATION, sdpa_mask)  # padded batches keep SDPA's own mask


def attention_stays_inside_packed_rows(model) -> bool:
    """Whether this model, as loaded, keeps conversations laid end to end apart: two short random sequences, once
    in one row with restarting position ids and once each on its own, must give the same logits. (transformers
    builds the block mask from position ids for its own models; remote code or an older version may not.)"""
    device = next(model.parameters()).device
    vocab = model.config.get_text_config().vocab_size
    generator = torch.Generator().manual_seed(0)
    first, second = (torch.randint(3, vocab, (n,), generator=generator).to(device) for n in (5, 7))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            alone = model(input_ids=second[None], use_cache=False).logits[0].float()
            positions = torch.cat([torch.arange(5), torch.arange(7)]).to(device)[None]
            edges = torch.tensor([0, 5, 12], dtype=torch.int32, device=device)  # as TRL's padding-free collator
            packed = model(input_ids=torch.cat([first, second])[None], position_ids=positions, use_cache=False,
                           cu_seq_lens_q=edges, cu_seq_lens_k=edges, max_length_q=7, max_length_k=7)
            packed = packed.logits[0, 5:].float()
    except Exception:  # noqa: BLE001 - a model that cannot take position ids this way keeps padded batches
        return False
    finally:
        model.train(was_training)
    return bool((packed - alone).abs().max() <= 0.1 * max(1.0, float(alone.abs().max())))


# ---------------------------------------------------------------- the trainer

class LeanSFTTrainer(SFTTrainer):
    """SFTTrainer with the lean LM head where it gives the same loss, batches without padding where the model
    keeps them apart, and the lean LoRA and gated-MLP forwards where they apply (studio/engine/lean_layers.py); TRL's
    own path everywhere else."""

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
        # Liger's kernels replace the same layers on GPUs; elsewhere the lean layer forwards (studio/engine/lean_layers.py)
        self.lean_layers = {} if self.args.use_liger_kernel else install_lean_layers(self.model)
        self.padding_free_batches = self.lean and type(self.data_collator) is DataCollatorForLanguageModeling \
            and self._attention_for_padding_free(model)
        if self.padding_free_batches:
            fields = {f.name: getattr(self.data_collator, f.name) for f in dataclasses.fields(self.data_collator)}
            self.data_collator = PaddingFreeWhenCheaper(
                **fields, context_weight=context_weight(model.config),
                attention_per_conversation=model.config._attn_implementation == SDPA_PER_CONVERSATION)

    @functools.cached_property
    def _parameters_without_embeddings(self) -> int | None:
        counter = getattr(self.model, "num_parameters", None)
        return counter(exclude_embeddings=True) if counter else None

    def floating_point_ops(self, inputs) -> int:
        """Trainer's count (6 x tokens x non-embedding parameters), with the parameters counted once: Trainer
        counts them again every step, a walk over every module that cost the starter model 15 ms a step."""
        main_input = getattr(self.model, "main_input_name", "input_ids")
        if self._parameters_without_embeddings is None or main_input not in inputs:
            return super().floating_point_ops(inputs)
        return 6 * inputs[main_input].numel() * self._parameters_without_embeddings

    def _attention_for_padding_free(self, model) -> bool:
        """SDPA one conversation at a time where the model uses transformers' SDPA (then a padding-free row costs
        no more attention than its conversations alone); checked either way on the model as loaded."""
        if model.config._attn_implementation == "sdpa":
            model.set_attn_implementation(SDPA_PER_CONVERSATION)
            if attention_stays_inside_packed_rows(self.model):
                return True
            model.set_attn_implementation("sdpa")
        return attention_stays_inside_packed_rows(self.model)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not self.lean or not ("attention_mask" in inputs or "position_ids" in inputs):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        mode = "train" if self.model.training else "eval"
        outputs = model(**inputs, fused_lm_head=True)
        count = outputs.label_mask.sum() if num_items_in_batch is None else num_items_in_batch
        loss = -outputs.log_probs.sum() / torch.as_tensor(count).clamp(min=1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes  # as TRL: DDP averages gradients across processes
        if mode == "train":
            # Same count as TRL's num_tokens: non-padding tokens of every process (a padding-free row has none).
            tokens = inputs["attention_mask"].sum() if "attention_mask" in inputs else \
                torch.tensor(inputs["position_ids"].size(1), device=inputs["position_ids"].device)
            self._total_train_tokens += self.accelerator.gather_for_metrics(tokens).sum().item()
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return (loss, outputs) if return_outputs else loss
