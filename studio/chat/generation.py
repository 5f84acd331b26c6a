"""Greedy answers for the run's checks (replay, the drift check, the held-out verdict): in batches as full as memory
allows, each row ending at its own cap; the base model's answers with a fresh adapter switched off; after training one
shared pass for every check; and each phase's count of prompts answered, for the log and the Train tab's status.
Torch is imported inside the functions that run the model.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager

# Rows per generation pass: a small model's decoding step reads every weight once whatever the rows (gemma3-270m:
# about 60 ms a step plus 1 ms a row here), so the after-training pass of 74 prompts in one batch of 74 took 6.0 s
# against 7.7 s in two of 37 (the starter 7.0-8.1 s against 8.4-8.5 s; bench/checks_speed.py --batches).
GENERATE_BATCH = 96
GENERATE_TOKENS = 32 * 512  # a generation batch's rows x (prompt + answer) tokens: its cache stays as before


_ANSWERED = contextvars.ContextVar("studio_answered", default=None)  # callback(done, total) of the phase under way


@contextmanager
def counted(callback):
    """Every greedy batch answered inside the block is reported as callback(prompts done, prompts in all): the
    run's phases before and after training (replay, drift check, verdict) say how far they are, in minutes that
    were silent before."""
    token = _ANSWERED.set(callback)
    try:
        yield
    finally:
        _ANSWERED.reset(token)


def greedy(model, tokenizer, prompt_ids: list[list[int]], max_new_tokens: int) -> list[list[int]]:
    """Greedy answers in batches (left-padded), each cut after its first end token; prompts answered beforehand in
    a shared pass (`answered_together`) are taken from it."""
    known = _TOGETHER.get() or {}
    answers = [known.get((tuple(ids), max_new_tokens)) for ids in prompt_ids]
    missing = [i for i, answer in enumerate(answers) if answer is None]
    fresh = _generate(model, tokenizer, [prompt_ids[i] for i in missing], [max_new_tokens] * len(missing))
    for i, answer in zip(missing, fresh):
        answers[i] = answer
    return answers


def _generate(model, tokenizer, prompt_ids: list[list[int]], caps: list[int]) -> list[list[int]]:
    import torch  # deferred: heavy

    from studio.core import stopping
    from .chat import _eos_ids  # deferred: the chat module's idea of where an answer ends

    if not prompt_ids:
        return []
    eos = _eos_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos)
    answers: list[list[int]] = [[] for _ in prompt_ids]
    was_training = model.training
    report, done = _ANSWERED.get(), 0
    model.eval()
    try:
        for batch in _generation_batches(prompt_ids, caps):
            stopping.check()  # Stop ends the run here, not after every prompt was answered
            width = max(len(prompt_ids[i]) for i in batch)
            ids = torch.tensor([[pad] * (width - len(prompt_ids[i])) + prompt_ids[i] for i in batch], device=model.device)
            mask = torch.tensor([[0] * (width - len(prompt_ids[i])) + [1] * len(prompt_ids[i]) for i in batch],
                                device=model.device)
            with torch.inference_mode():
                out = _answer_batch(model, ids, mask, [caps[i] for i in batch], eos, pad)
            stopping.check()  # answers cut short by Stop are no answers
            for row, i in zip(out, batch):
                row = row[:caps[i]]  # a greedy answer's first n tokens are its answer with a cap of n
                end = next((k for k, token in enumerate(row) if token in eos), None)
                answers[i] = row if end is None else row[:end + 1]
            done += len(batch)
            if report is not None:
                report(done, len(prompt_ids))
    finally:
        model.train(was_training)
    return answers


def _answer_batch(model, ids, mask, caps: list[int], eos: set[int], pad: int) -> list[list[int]]:
    """A left-padded batch's answer tokens (each row's first `cap` tokens; what follows its end is cut by the
    caller): the step loop where the model takes it, else transformers' `generate`."""
    if cache_word := _step_cache_word(model):
        return _greedy_steps(model, ids, mask, caps, eos, pad, cache_word)
    from transformers import StoppingCriteriaList  # deferred: heavy

    from studio.core import stopping

    width = ids.shape[1]
    until = StoppingCriteriaList([*stopping.criteria(), _capped(width, caps, model.device)])
    return model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max(caps), do_sample=False,
                          eos_token_id=sorted(eos), pad_token_id=pad, repetition_penalty=1.0, temperature=None,
                          top_p=None, top_k=None, stopping_criteria=until)[:, width:].tolist()


def _greedy_steps(model, ids, mask, caps: list[int], eos: set[int], pad: int, cache_word: str) -> list[list[int]]:
    """One left-padded batch's greedy answer tokens, step by step through the model's own forward pass: the answers
    transformers' `generate` gives (tests/test_generation.py), at less cost. `generate` copies each step's logits to
    fp32 and takes argmax over the copy; over Gemma's 262k-word vocabulary those took a sixth of the pass on a
    CPU. Here the top token is read from the logits as they are (max: the same token, ties to the first), positions
    follow the left padding as `generate` sets them, each row ends at its end token or its cap, and Stop ends the
    pass at the next step."""
    import torch  # deferred: heavy
    from transformers import DynamicCache

    from studio.core import stopping

    cache = DynamicCache(config=model.config)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    limits = torch.tensor(caps, device=ids.device)
    ends = torch.tensor(sorted(eos), device=ids.device)
    finished = torch.zeros(len(caps), dtype=torch.bool, device=ids.device)
    step_ids, tokens = ids, []
    for step in range(max(caps)):
        stopping.check()
        logits = model(input_ids=step_ids, attention_mask=mask, position_ids=positions, use_cache=True,
                       logits_to_keep=1, **{cache_word: cache}).logits[:, -1]
        token = torch.where(finished, pad, logits.max(dim=-1).indices.to(ids.device))
        tokens.append(token)
        finished |= torch.isin(token, ends) | (step + 1 >= limits)
        if bool(finished.all()):
            break
        step_ids, positions = token[:, None], positions[:, -1:] + 1
        mask = torch.cat([mask, mask.new_ones(len(caps), 1)], dim=1)
    return torch.stack(tokens, dim=1).tolist()


def forward_parameters(model) -> set[str]:
    """The names the model's forward pass takes (a PEFT model's: its base model's)."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return set(inspect.signature(base.forward).parameters)


def cache_word(parameters: set[str]) -> str:
    """The forward pass's name for its cache: "cache" in transformers 5, "past_key_values" before."""
    return "cache" if "cache" in parameters else "past_key_values"


def _step_cache_word(model) -> str | None:
    """The cache's name where the step loop can drive the model (transformers' own decoder-only models take
    positions and `logits_to_keep`); None for remote code or an encoder-decoder model, which answer through
    `generate`."""
    parameters = forward_parameters(model)
    config = model.get_base_model().config if hasattr(model, "get_base_model") else model.config
    if getattr(config, "is_encoder_decoder", False) or not {"position_ids", "logits_to_keep"} <= parameters:
        return None
    return cache_word(parameters) if {"cache", "past_key_values"} & parameters else None


def _capped(width: int, caps: list[int], device):
    """Each row ends at its own cap: a batch ends once every row has its end token or its cap, so a short-capped
    row that never ends does not keep the batch going to the longest cap."""
    import torch  # deferred: heavy
    from transformers import StoppingCriteria

    limits = torch.tensor(caps, device=device)

    class RowCaps(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return (input_ids.shape[1] - width) >= limits

    return RowCaps()


def _generation_batches(prompt_ids: list[list[int]], caps: list[int]) -> list[list[int]]:
    """Indices ordered by cap and then length, in batches of at most GENERATE_BATCH rows and GENERATE_TOKENS
    (rows x the longest prompt and cap): a step costs about the same for a few rows as for many on a small model,
    so fewer, fuller batches answer sooner, while long prompts stay within memory (the cache grows with both); a
    last batch of the same cap shares the rows evenly with the one before. A larger cap starts a new batch once
    the current one is half full: its steps would be paid by every row."""
    order = sorted(range(len(prompt_ids)), key=lambda i: (caps[i], len(prompt_ids[i])))

    def fits(batch: list[int]) -> bool:
        return len(batch) * (max(len(prompt_ids[j]) for j in batch) + max(caps[j] for j in batch)) <= GENERATE_TOKENS

    batches: list[list[int]] = []
    for i in order:
        if batches and len(batches[-1]) < GENERATE_BATCH:
            longer = caps[i] > caps[batches[-1][-1]] and 2 * len(batches[-1]) >= GENERATE_BATCH
            if fits(batches[-1] + [i]) and not longer:
                batches[-1].append(i)
                continue
        batches.append([i])
    if len(batches) > 1 and caps[batches[-2][-1]] == caps[batches[-1][-1]]:  # 72 prompts: 36 + 36, not 64 + 8
        both = batches[-2] + batches[-1]
        half = (len(both) + 1) // 2
        if fits(both[:half]) and fits(both[half:]):
            batches[-2:] = [both[:half], both[half:]]
    return batches


_TOGETHER = contextvars.ContextVar("studio_answered_together", default=None)


@contextmanager
def answered_together(model, tokenizer, asks: list[tuple[list[int], int]]):
    """Answer every (prompt, cap) the checks after training will ask in one generation pass, then hand each
    check its answers from it: the drift check's and the verdict's prompts share batches instead of each
    paying its own passes. A pass that fails or is stopped leaves each check to answer (or to stop) on its own."""
    with given(answer_ahead(model, tokenizer, asks)):
        yield


def answer_ahead(model, tokenizer, asks: list[tuple[list[int], int]]) -> dict:
    """{(prompt ids, cap): answer ids} for every ask, in one pass; empty where it fails or is stopped (a shortcut,
    never a failure: each check then answers, or sees Stop, on its own)."""
    from studio.core.stopping import StopRequested

    if not asks:
        return {}
    try:
        answers = _generate(model, tokenizer, [ids for ids, _ in asks], [cap for _, cap in asks])
    except (Exception, StopRequested):  # noqa: BLE001
        return {}
    return {(tuple(ids), cap): answer for (ids, cap), answer in zip(asks, answers)}


def is_known(prompt_ids: list[int], cap: int) -> bool:
    """Whether `greedy` will take this answer from one already known (`given`) rather than generate it."""
    return (tuple(prompt_ids), cap) in (_TOGETHER.get() or {})


@contextmanager
def given(known: dict):
    """A block in which `greedy` takes the answers already known (answer_ahead) instead of generating them."""
    token = _TOGETHER.set({**(_TOGETHER.get() or {}), **known})
    try:
        yield
    finally:
        _TOGETHER.reset(token)


def as_served(model):
    """The trained adapter cast to the dtype of the weights it adapts (bf16 or fp16), as Chat and the served endpoint
    load it (`autocast_adapter_dtype=False`): the checks after training answer as Chat does on the same weights, and
    faster, since a fp32 adapter on bf16 weights casts and multiplies in fp32 in every adapted layer at every step
    (38 answers on the starter model: 6.7 s with it, 5.4 s with it in bf16, measured alone). Training is over when this is called; quantized weights keep
    their fp32 adapter, as PEFT keeps it."""
    from peft.tuners.tuners_utils import BaseTunerLayer  # deferred: peft imports torch

    for module in model.modules():
        if not isinstance(module, BaseTunerLayer):
            continue
        weight = getattr(module.get_base_layer(), "weight", None)
        if weight is None or not weight.dtype.is_floating_point:
            continue
        for name in module.adapter_layer_names:
            layer = getattr(module, name, None)
            if layer is not None and hasattr(layer, "to"):
                layer.to(weight.dtype)
    return model


@contextmanager
def as_base(model):
    """The model as it was before training, for the base model's answers: a PEFT model's adapter switched off.
    A fresh LoRA adapter adds exactly nothing, so the answers are the same, but every adapted layer's extra
    products cost about a third of a small model's generation time; a resumed run's adapter is not the base."""
    disable = getattr(model, "disable_adapter", None)
    if disable is None or not getattr(model, "peft_config", None):
        yield model
        return
    with disable():
        yield model
