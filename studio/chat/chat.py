"""Base vs tuned answers from one copy of the base weights.

For a LoRA run the tuned answer enables the adapter and the base answer disables it (`disable_adapter()`), so
memory stays about that of one model. A full or freeze run has its own weights and is loaded as a second model.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from studio.core.config import GenerationSettings
from studio.core.runs import RunFolder
from studio.core.text import Msg
from studio.models import hardware, models
from studio.templates.chat_template import answer_text, end_of_turn_ids, generation_prompt


# What one chat request may ask, checked before any model work: a 400,000-character prompt once held the server
# for minutes. Characters first (free), then tokens against the model's context.
MAX_CHARS = {"chat.what_prompt": 32_000, "chat.what_system": 16_000, "chat.what_history": 200_000}
MAX_HISTORY_MESSAGES = 400
MAX_PROMPT_TOKENS = 16_384  # whatever the model's context: longer prompts take minutes on a CPU
MAX_ANSWER_SECONDS = 300.0  # one answer's wall time; then it ends as if it had reached max_new_tokens


@dataclass
class Answer:
    text: str
    new_tokens: int
    seconds: float
    first_token_s: float | None = None
    ids: list[int] = field(default_factory=list)  # the new tokens (exports compare them with their reloaded copy)
    timed_out: bool = False  # ended by MAX_ANSWER_SECONDS

    @property
    def ms_per_token(self) -> float:
        return 1000 * self.seconds / max(self.new_tokens, 1)


def text_problem(system, history, prompt) -> Msg | None:
    """Over-long or malformed chat input, refused at once in the user's language (no model is touched)."""
    history = [] if history is None else history
    if not isinstance(history, list) or len(history) > MAX_HISTORY_MESSAGES or not all(
            isinstance(m, dict) and m.get("role") in ("user", "assistant", "system") for m in history):
        return Msg("chat.too_long", what=Msg("chat.what_history"), size=len(str(history)),
                   limit=MAX_CHARS["chat.what_history"])
    sizes = {"chat.what_prompt": len(str(prompt or "")), "chat.what_system": len(str(system or "")),
             "chat.what_history": sum(len(str(m.get("content") or "")) for m in history)}
    for what, size in sizes.items():
        if size > MAX_CHARS[what]:
            return Msg("chat.too_long", what=Msg(what), size=size, limit=MAX_CHARS[what])
    return None


def token_problem(pair: "ChatPair", messages: list[dict], max_new_tokens: int) -> Msg | None:
    """The rendered conversation plus the answer must fit the model's context and MAX_PROMPT_TOKENS."""
    tokens = len(pair.tokenizer(generation_prompt(pair.tokenizer, messages), add_special_tokens=False)["input_ids"])
    limit = min(pair.context_length, MAX_PROMPT_TOKENS + max_new_tokens)
    if tokens + max_new_tokens > limit:
        return Msg("chat.too_many_tokens", tokens=tokens, new=max_new_tokens, limit=limit, cap=MAX_PROMPT_TOKENS)
    return None


class ChatPair:
    """Holds the base model (and the tuned adapter or model) of one run."""

    def __init__(self, base_path: str, tuned_path: str | None, tokenizer, base_model, tuned_model=None,
                 reference: str | None = None):
        self.base_path, self.tuned_path = base_path, tuned_path
        self.tokenizer, self.base_model, self.tuned_model = tokenizer, base_model, tuned_model
        self.reference = reference  # another run's adapter on the same base answers for the "base" side
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def side(self, tuned: bool):
        """The model that answers for one side, held by the caller alone. With shared weights the base side turns
        the adapter off; every browser session uses this one pair, so one session's switch must never land in the
        middle of another's forward pass (that gave a "tuned" answer from the base model)."""
        with self._lock:
            if self.reference is not None:  # two runs, one base: the side picks its adapter
                self.base_model.set_adapter("default" if tuned else "reference")
                try:
                    yield self.base_model
                finally:
                    self.base_model.set_adapter("default")
            elif tuned and self.tuned_model is not None:
                yield self.tuned_model
            elif not tuned and self.shares_weights:
                with self.base_model.disable_adapter():
                    yield self.base_model
            else:
                yield self.base_model

    @property
    def shares_weights(self) -> bool:
        return self.tuned_model is None and hasattr(self.base_model, "disable_adapter")

    @property
    def context_length(self) -> int:
        config = getattr(self.base_model, "config", None)
        return int(getattr(config, "max_position_embeddings", None) or MAX_PROMPT_TOKENS)

    @classmethod
    def from_run(cls, run_dir: str | Path, progress=print) -> "ChatPair":
        """The run's base model with its trained weights; `run_dir` may also be one of the run's checkpoints."""
        run, checkpoint = RunFolder.of(run_dir)
        base_path = models.resolve_model_path(run.base_model(), progress)
        adapter, full = (checkpoint, checkpoint) if checkpoint else (run.adapter_dir, run.model_dir)
        if (adapter / "adapter_config.json").exists():
            return cls.with_adapter(base_path, str(adapter))
        tokenizer = models.load_tokenizer(base_path)
        dtype, device = inference_placement()
        base = models.load_model(base_path, dtype).to(device).eval()
        tuned = models.load_model(str(full), dtype).to(device).eval() if (full / "config.json").exists() else None
        return cls(base_path, str(full) if tuned is not None else None, tokenizer, base, tuned)

    @classmethod
    def of_two_runs(cls, run_dir: str | Path, other_dir: str | Path, progress=print) -> "ChatPair":
        """Two runs side by side from one copy of their shared base model: `run_dir`'s adapter answers for the
        tuned side, `other_dir`'s (loaded beside it) for the other. Runs that share no base, or that trained
        every weight, cannot share a copy: refused with the reason rather than loading a second model."""
        (run, checkpoint), (other, other_checkpoint) = RunFolder.of(run_dir), RunFolder.of(other_dir)
        adapters = [checkpoint or run.adapter_dir, other_checkpoint or other.adapter_dir]
        if not all((a / "adapter_config.json").exists() for a in adapters):
            raise ValueError(Msg("chat.compare_adapters_only"))
        if run.base_model() != other.base_model():
            raise ValueError(Msg("chat.compare_other_base", base=run.base_model(), other=other.base_model()))
        pair = cls.with_adapter(models.resolve_model_path(run.base_model(), progress), str(adapters[0]))
        pair.base_model.load_adapter(str(adapters[1]), adapter_name="reference", autocast_adapter_dtype=False)
        pair.base_model.set_adapter("default")
        pair.base_model.eval()
        pair.reference = str(other_dir)
        return pair

    @classmethod
    def with_adapter(cls, base_path: str, adapter_path: str) -> "ChatPair":
        from peft import PeftModel  # deferred: peft imports torch

        tokenizer = models.load_tokenizer(base_path)
        dtype, device = inference_placement()
        base = models.load_model(base_path, dtype).to(device)
        # the adapter in the weights' own dtype, as the run's checks answered after training (generation.as_served):
        # faster, and where Chat's weights are in the run's dtype (a GPU's bf16) its answers are the verdict's
        model = PeftModel.from_pretrained(base, adapter_path, autocast_adapter_dtype=False).to(device).eval()
        return cls(base_path, adapter_path, tokenizer, model)

    def answer(self, messages: list[dict], tuned: bool, settings: GenerationSettings | None = None) -> Answer:
        if tuned and self.tuned_model is None and not self.shares_weights:
            raise ValueError(Msg("chat.no_tuned"))
        return _last(stream([(lambda: self.side(tuned), messages)], self.tokenizer, settings))[0]


def answer(model, tokenizer, messages: list[dict], settings: GenerationSettings | None = None) -> Answer:
    """One model's answer (an export's check, a test), from the same decoder as the Chat tab."""
    return _last(stream([(lambda: contextlib.nullcontext(model), messages)], tokenizer, settings))[0]


def _last(updates):
    last = None
    for last in updates:
        pass
    return last


def inference_placement() -> tuple[str, str]:
    """Where chat answers are computed: on a CUDA GPU in its fast half precision (bf16 where native, else fp16);
    on a CPU in fp32, the dtype the run's checks answer in there too (studio/training/run_steps.py: answers_dtype),
    so the verdict's answers are the ones Chat shows."""
    facts = hardware.detect()
    if facts.device == "cuda":
        return ("bf16" if facts.cuda_bf16 else "fp16"), "cuda"
    if facts.device == "mps":
        return ("bf16" if facts.mps_bf16 else "fp32"), "mps"
    return "fp32", "cpu"


@dataclass
class _Pane:
    open_model: Callable  # () -> a context manager giving the model that answers
    ids: list[int]
    prompt_length: int
    eos: set[int] | None = None
    past: object = None
    done: bool = False
    first_token_s: float | None = None
    seconds: float = 0.0  # this pane's own decoding time: the other pane's interleaved steps are not counted

    @property
    def new_tokens(self) -> int:
        return len(self.ids) - self.prompt_length


def _processors(settings: GenerationSettings):
    """Every generation setting that shapes the next token's scores."""
    from transformers import (LogitsProcessorList, RepetitionPenaltyLogitsProcessor,  # deferred: heavy
                              TemperatureLogitsWarper, TopPLogitsWarper)

    processors = LogitsProcessorList()
    if settings.repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(settings.repetition_penalty))
    if settings.temperature > 0:
        processors.append(TemperatureLogitsWarper(settings.temperature))
        processors.append(TopPLogitsWarper(settings.top_p))
    return processors


def _eos_ids(model, tokenizer) -> set[int]:
    """The model's end tokens and the template's end-of-turn token (a base model given a template by the studio
    learns to end its turn with <end_of_turn> or <|im_end|>, which its generation config does not know)."""
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    ids |= set(end_of_turn_ids(tokenizer))
    return ids | ({tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set())


def stream_pair(pair: ChatPair, base_messages: list[dict], tuned_messages: list[dict],
                settings: GenerationSettings | None = None, stop=None, seed: int | None = None):
    """Answer in both panes at once: each step decodes one token for the base pane (adapter off) and one for the
    tuned pane (adapter on) from the same weights, each with its own KV cache. Yields (base Answer, tuned Answer)
    after every step; `stop` (a threading.Event) ends generation early."""
    sides = [(lambda: pair.side(False), base_messages), (lambda: pair.side(True), tuned_messages)]
    return stream(sides, pair.tokenizer, settings, stop, seed)


def stream(sides: list[tuple[Callable, list[dict]]], tokenizer, settings: GenerationSettings | None = None,
           stop=None, seed: int | None = None, time_limit_s: float = MAX_ANSWER_SECONDS):
    """The studio's one decoder. `sides`: (a function that opens a context giving the model, messages) per
    answer; each step decodes one token of every unfinished answer, so several answers stream together. Yields
    a tuple of Answers after every step. Generation settings act only through `_processors` and the sampling
    below: a new knob is a field in config.GenerationSettings and a line there."""
    import torch  # deferred: the UI imports this module on start-up

    settings = settings or GenerationSettings()
    processors = _processors(settings)
    generator = torch.Generator().manual_seed(settings.sampling_seed if seed is None else seed)
    panes = []
    for open_model, messages in sides:
        ids = tokenizer(generation_prompt(tokenizer, messages), add_special_tokens=False)["input_ids"]
        panes.append(_Pane(open_model, list(ids), len(ids)))
    deadline = time.monotonic() + time_limit_s
    for _ in range(settings.max_new_tokens):
        for pane in panes:
            if pane.done:
                continue
            started = time.perf_counter()
            _decode_step(tokenizer, pane, processors, settings, generator)
            pane.seconds += time.perf_counter() - started
            pane.first_token_s = pane.first_token_s or pane.seconds
        timed_out = time.monotonic() > deadline
        yield tuple(_answer(tokenizer, pane, timed_out and not pane.done) for pane in panes)
        if timed_out or all(p.done for p in panes) or (stop is not None and stop.is_set()):
            return


def _decode_step(tokenizer, pane: _Pane, processors, settings: GenerationSettings, generator) -> None:
    import torch  # deferred: the UI imports this module on start-up

    new_input = pane.ids if pane.past is None else pane.ids[-1:]
    # One step at a time under the side's lock (ChatPair.side): two sessions' answers interleave step by step.
    with pane.open_model() as model, torch.inference_mode():
        out = model(input_ids=torch.tensor([new_input], device=model.device), past_key_values=pane.past,
                    use_cache=True)
        scores = processors(torch.tensor([pane.ids], device=model.device), out.logits[:, -1, :].float())
        if settings.temperature > 0:
            token = int(torch.multinomial(torch.softmax(scores, dim=-1).cpu(), 1, generator=generator))
        else:
            token = int(scores.argmax(dim=-1))
        if pane.eos is None:
            pane.eos = _eos_ids(model, tokenizer)
    pane.past = out.past_key_values
    pane.ids.append(token)
    pane.done = token in pane.eos


def _answer(tokenizer, pane: _Pane, timed_out: bool = False) -> Answer:
    new = pane.ids[pane.prompt_length:]
    return Answer(answer_text(tokenizer, new), len(new), pane.seconds, pane.first_token_s,
                  new, timed_out)
