"""Base vs tuned answers from one copy of the base weights.

For a LoRA run the tuned answer enables the adapter and the base answer disables it (`disable_adapter()`), so
memory stays about that of one model. A full or freeze run has its own weights and is loaded as a second model.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .config import GenerationSettings
from .text import Msg


@dataclass
class Answer:
    text: str
    new_tokens: int
    seconds: float
    first_token_s: float | None = None

    @property
    def ms_per_token(self) -> float:
        return 1000 * self.seconds / max(self.new_tokens, 1)


class ChatPair:
    """Holds the base model (and the tuned adapter or model) of one run."""

    def __init__(self, base_path: str, tuned_path: str | None, tokenizer, base_model, tuned_model=None):
        self.base_path, self.tuned_path = base_path, tuned_path
        self.tokenizer, self.base_model, self.tuned_model = tokenizer, base_model, tuned_model
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def side(self, tuned: bool):
        """The model that answers for one side, held by the caller alone. With shared weights the base side turns
        the adapter off; every browser session uses this one pair, so one session's switch must never land in the
        middle of another's forward pass (that gave a "tuned" answer from the base model)."""
        with self._lock:
            if tuned and self.tuned_model is not None:
                yield self.tuned_model
            elif not tuned and self.shares_weights:
                with self.base_model.disable_adapter():
                    yield self.base_model
            else:
                yield self.base_model

    @property
    def shares_weights(self) -> bool:
        return self.tuned_model is None and hasattr(self.base_model, "disable_adapter")

    @classmethod
    def from_run(cls, run_dir: str | Path, progress=print) -> "ChatPair":
        from . import models

        run_dir = Path(run_dir)
        if run_dir.parent.name == "checkpoints":  # a checkpoint of a run: its own weights, the run's settings
            checkpoint, run_dir = run_dir, run_dir.parent.parent
            adapter = full = checkpoint
        else:
            adapter, full = run_dir / "adapter", run_dir / "model"
        preset = json.loads((run_dir / "preset.json").read_text(encoding="utf-8"))
        base_path = models.resolve_model_path(preset["settings"]["model"]["model_name_or_path"], progress)
        if not (adapter / "adapter_config.json").exists():
            adapter = run_dir / "__none__"
        if adapter.is_dir():
            return cls.with_adapter(base_path, str(adapter))
        tokenizer = models.load_tokenizer(base_path)
        dtype, device = inference_placement()
        base = models.load_model(base_path, dtype).to(device).eval()
        tuned = models.load_model(str(full), dtype).to(device).eval() if (full / "config.json").exists() else None
        return cls(base_path, str(full) if tuned is not None else None, tokenizer, base, tuned)

    @classmethod
    def with_adapter(cls, base_path: str, adapter_path: str) -> "ChatPair":
        from peft import PeftModel

        from . import models

        tokenizer = models.load_tokenizer(base_path)
        dtype, device = inference_placement()
        base = models.load_model(base_path, dtype).to(device)
        model = PeftModel.from_pretrained(base, adapter_path).to(device).eval()
        return cls(base_path, adapter_path, tokenizer, model)

    def answer(self, messages: list[dict], tuned: bool, settings: GenerationSettings | None = None) -> Answer:
        if tuned and self.tuned_model is None and not self.shares_weights:
            raise ValueError(Msg("chat.no_tuned"))
        with self.side(tuned) as model:
            return generate(model, self.tokenizer, messages, settings or GenerationSettings())


def generate(model, tokenizer, messages: list[dict], settings: GenerationSettings) -> Answer:
    import torch

    from .chat_template import generation_prompt

    prompt = generation_prompt(tokenizer, messages)
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
    sampling = settings.temperature > 0
    kwargs = dict(max_new_tokens=settings.max_new_tokens, do_sample=sampling,
                  repetition_penalty=settings.repetition_penalty, pad_token_id=tokenizer.pad_token_id)
    if sampling:
        kwargs.update(temperature=settings.temperature, top_p=settings.top_p)
    else:  # keep greedy decoding free of the model's sampling defaults (which would only warn)
        kwargs.update(temperature=None, top_p=None, top_k=None)
    started = time.perf_counter()
    with torch.inference_mode():
        output = model.generate(**inputs, **kwargs)
    seconds = time.perf_counter() - started
    new = output[0][inputs["input_ids"].shape[1]:]
    return Answer(tokenizer.decode(new, skip_special_tokens=True).strip(), len(new), seconds)


def inference_placement() -> tuple[str, str]:
    """Where chat answers are computed: on a CUDA GPU in its fast half precision (bf16 where native, else fp16);
    on a CPU in fp32, as trained and as the tests compare."""
    from . import hardware

    facts = hardware.detect()
    if facts.device == "cuda":
        return ("bf16" if facts.cuda_bf16 else "fp16"), "cuda"
    return "fp32", "cpu"


@dataclass
class _Pane:
    tuned: bool
    ids: list[int]
    prompt_length: int
    past: object = None
    done: bool = False
    first_token_s: float | None = None
    seconds: float = 0.0  # this pane's own decoding time: the other pane's interleaved steps are not counted

    @property
    def new_tokens(self) -> int:
        return len(self.ids) - self.prompt_length


def _processors(settings: GenerationSettings):
    from transformers import (LogitsProcessorList, RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
                              TopPLogitsWarper)

    processors = LogitsProcessorList()
    if settings.repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(settings.repetition_penalty))
    if settings.temperature > 0:
        processors.append(TemperatureLogitsWarper(settings.temperature))
        processors.append(TopPLogitsWarper(settings.top_p))
    return processors


def _eos_ids(model, tokenizer) -> set[int]:
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    return ids | ({tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set())


def stream_pair(pair: ChatPair, base_messages: list[dict], tuned_messages: list[dict],
                settings: GenerationSettings | None = None, stop=None, seed: int | None = None):
    """Answer in both panes at once: each step decodes one token for the base pane (adapter off) and one for the
    tuned pane (adapter on) from the same weights, each with its own KV cache. Yields (base Answer, tuned Answer)
    after every step; `stop` (a threading.Event) ends generation early."""
    import torch

    from .chat_template import generation_prompt

    settings = settings or GenerationSettings()
    tokenizer, processors = pair.tokenizer, _processors(settings)
    generator = torch.Generator().manual_seed(settings.sampling_seed if seed is None else seed)
    panes = []
    for tuned, messages in ((False, base_messages), (True, tuned_messages)):
        ids = tokenizer(generation_prompt(tokenizer, messages), add_special_tokens=False)["input_ids"]
        panes.append(_Pane(tuned, list(ids), len(ids)))
    eos = _eos_ids(pair.base_model, tokenizer)
    for _ in range(settings.max_new_tokens):
        for pane in panes:
            if pane.done:
                continue
            started = time.perf_counter()
            _decode_step(pair, pane, processors, settings, generator, eos)
            pane.seconds += time.perf_counter() - started
            pane.first_token_s = pane.first_token_s or pane.seconds
        yield tuple(_answer(tokenizer, pane) for pane in panes)
        if all(p.done for p in panes) or (stop is not None and stop.is_set()):
            return


def _decode_step(pair: ChatPair, pane: _Pane, processors, settings, generator, eos) -> None:
    import torch

    new_input = pane.ids if pane.past is None else pane.ids[-1:]
    # One step at a time under the pair's lock: two sessions' answers interleave step by step, both stream.
    with pair.side(pane.tuned) as model, torch.inference_mode():
        out = model(input_ids=torch.tensor([new_input], device=model.device), past_key_values=pane.past,
                    use_cache=True)
        scores = processors(torch.tensor([pane.ids], device=model.device), out.logits[:, -1, :].float())
        if settings.temperature > 0:
            token = int(torch.multinomial(torch.softmax(scores, dim=-1).cpu(), 1, generator=generator))
        else:
            token = int(scores.argmax(dim=-1))
    pane.past = out.past_key_values
    pane.ids.append(token)
    pane.done = token in eos


def _answer(tokenizer, pane: _Pane) -> Answer:
    text = tokenizer.decode(pane.ids[pane.prompt_length:], skip_special_tokens=True).strip()
    return Answer(text, pane.new_tokens, pane.seconds, pane.first_token_s)
