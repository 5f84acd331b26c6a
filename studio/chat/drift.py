"""The general-ability drift check: a forgetting measure that needs no outside data.

Before training, the base model answers a fixed set of general prompts greedily (studio/chat/drift_prompts/, about 60
in English and Chinese: facts, reasoning, instructions, code, chat; or the user's own file). The answers are
cached per base model, so a second run on the same model pays only for one scoring pass.
After training, the tuned model scores the base model's own answers. Reported:
- the drift: the tuned model's mean negative log-likelihood per answer token minus the base model's (nats per
  token; 0 for an untouched model, positive when the tuned model finds its old answers less likely);
- the prompts whose greedy answer changed. Greedy decoding is deterministic, so the tuned model's greedy answer
  is the base answer exactly when its top-1 choice agrees with the base model's at every answer position; both
  are read from the same scoring pass, and no second generation is needed;
- three prompts with the base and the tuned answer (the most changed ones), generated for the reader.
Torch is imported inside the functions that run the models.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from studio.core.text import Msg
from studio.templates.chat_template import answer_text, generation_prompt
from .generation import GENERATE_BATCH, GENERATE_TOKENS, cache_word, forward_parameters, greedy

PROMPTS_FILE = Path(__file__).parent / "drift_prompts" / "general.jsonl"
MAX_NEW_TOKENS = 32  # enough to show a changed answer; the check must stay a small share of a run
MAX_OWN_PROMPTS = 100
SAMPLES = 3
BATCH = 32  # rows per scoring pass (and within LOGIT_ELEMENTS)
CACHE_VERSION = 3  # bump when the scores' batching changes: a cached score must be the one this code measures


@dataclass
class Prompt:
    id: str
    kind: str
    language: str
    messages: list[dict]

    @property
    def text(self) -> str:
        return self.messages[-1]["content"]


def builtin_prompts() -> list[Prompt]:
    rows = [json.loads(line) for line in PROMPTS_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [Prompt(r["id"], r["kind"], r["language"], [{"role": "user", "content": r["prompt"]}]) for r in rows]


def own_prompts(path: str) -> tuple[list[Prompt], list]:
    """Each row of a data file without its last answer (the first MAX_OWN_PROMPTS rows that have one)."""
    from studio.data.data import load_dataset_file  # deferred: the training job only

    loaded = load_dataset_file(path)
    prompts = []
    for row in loaded.rows:
        messages = row.messages or []
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
        if last and any(m["role"] == "user" for m in messages[:last]):
            prompts.append(Prompt(f"row-{row.number}", "own", "", [dict(m) for m in messages[:last]]))
        if len(prompts) == MAX_OWN_PROMPTS:
            break
    return prompts, loaded.problems


def prompts_for(path: str) -> tuple[list[Prompt], str]:
    """(prompts, where they come from): the user's general file when named, else the studio's own set."""
    if path.strip():
        prompts, _ = own_prompts(path)
        return prompts, path
    return builtin_prompts(), "built-in"


# ---------------------------------------------------------------- the base model's answers, cached per model

def cache_dir() -> Path:
    from studio.core.runs import studio_home  # deferred: models imports heavy helpers lazily

    return studio_home() / "drift"


def model_identity(model_path: str) -> list:
    """What makes two base models the same: the folder and its weight and config files' sizes and times."""
    folder = Path(model_path)
    files = sorted(p for p in folder.glob("*") if p.suffix in (".json", ".safetensors", ".bin", ".model")) \
        if folder.is_dir() else []
    return [str(folder.resolve()) if folder.exists() else model_path,
            [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]]


def cache_key(model_path: str, model, tokenizer, prompts: list[Prompt]) -> str:
    parts = [model_identity(model_path), str(getattr(model, "dtype", "")), str(getattr(model, "device", "")),
             getattr(tokenizer, "chat_template", None), [p.messages for p in prompts], MAX_NEW_TOKENS, BATCH,
             GENERATE_BATCH, GENERATE_TOKENS, LOGIT_ELEMENTS, CACHE_VERSION]
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False, default=str).encode()).hexdigest()[:24]


@dataclass
class Baseline:
    """The base model's side of the check, kept by the training job until the run ends."""
    prompts: list[Prompt]
    source: str
    prompt_ids: list[list[int]]
    answer_ids: list[list[int]]
    answers: list[str]
    nll: list[float] = field(default_factory=list)  # summed over each answer's tokens
    top1: list[list[int]] = field(default_factory=list)  # the base model's top-1 token at each answer position
    cached: bool = False
    seconds: float = 0.0


def before_training(model, tokenizer, model_path: str, drift_dataset_path: str = "",
                    system_prompt: str = "") -> Baseline | None:
    """The base model's answers and its scores on them: from the cache (keyed by the model's files, dtype and
    device, the template and the prompts, so a cached score is the score this run would measure), or measured
    and cached. Call before the first step: a new LoRA adapter changes nothing yet, so the model is the base.
    `system_prompt`: the run's own, given to every prompt that has none, as Chat gives it: the check measures
    the model as it will be used."""
    started = time.perf_counter()
    prompts, source = prompts_for(drift_dataset_path)
    if not prompts:
        return None
    prompts, prompt_ids, path = _asked(prompts, model, tokenizer, model_path, system_prompt)
    cached = _read_cache(path, len(prompts))
    if cached is None:
        answer_ids = greedy(model, tokenizer, prompt_ids, MAX_NEW_TOKENS)
        keep = [i for i, ids in enumerate(answer_ids) if ids]  # an empty answer has nothing to score
        nll, top1 = score(model, [prompt_ids[i] for i in keep], [answer_ids[i] for i in keep])
        cached = {"answer_ids": answer_ids, "keep": keep, "nll": nll, "top1": top1}
        _write_cache(path, cached)
        from_cache = False
    else:
        from_cache = True
    keep = cached["keep"]
    return Baseline([prompts[i] for i in keep], source, [prompt_ids[i] for i in keep],
                    [cached["answer_ids"][i] for i in keep],
                    [answer_text(tokenizer, cached["answer_ids"][i]) for i in keep],
                    nll=cached["nll"], top1=cached["top1"], cached=from_cache, seconds=time.perf_counter() - started)


def _asked(prompts: list[Prompt], model, tokenizer, model_path: str, system_prompt: str):
    """(prompts, their token ids, the cache file): each prompt under the run's system prompt where it has none."""
    if system_prompt.strip():
        prompts = [p if p.messages[0]["role"] == "system" else
                   Prompt(p.id, p.kind, p.language, [{"role": "system", "content": system_prompt.strip()}, *p.messages])
                   for p in prompts]
    prompt_ids = [tokenizer(generation_prompt(tokenizer, p.messages), add_special_tokens=False)["input_ids"]
                  for p in prompts]
    return prompts, prompt_ids, cache_dir() / f"{cache_key(model_path, model, tokenizer, prompts)}.json"


def base_asks(model, tokenizer, model_path: str, drift_dataset_path: str = "",
              system_prompt: str = "") -> list[tuple[list[int], int]]:
    """The (prompt ids, cap) pairs before_training will generate: none where the base model's answers are cached.
    Answered ahead in one pass with the run's other base-model answers (generation.answer_ahead)."""
    prompts, _ = prompts_for(drift_dataset_path)
    if not prompts:
        return []
    prompts, prompt_ids, path = _asked(prompts, model, tokenizer, model_path, system_prompt)
    if _read_cache(path, len(prompts)) is not None:
        return []
    return [(ids, MAX_NEW_TOKENS) for ids in prompt_ids]


def _read_cache(path: Path, count: int) -> dict | None:
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
        fits = len(cached["answer_ids"]) == count and len(cached["nll"]) == len(cached["top1"]) == len(cached["keep"])
        return cached if fits else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_cache(path: Path, cached: dict) -> None:
    try:  # a cache that cannot be written costs the next run a generation, never this run
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")  # two processes filling the same cache never share a file
        tmp.write_text(json.dumps(cached), encoding="utf-8")
        tmp.replace(path)
    except OSError:
        pass


# ---------------------------------------------------------------- the two passes

def score(model, prompt_ids: list[list[int]], answer_ids: list[list[int]]) -> tuple[list[float], list[list[int]]]:
    """Each answer's summed negative log-likelihood given its prompt, and the model's top-1 token at each answer
    position, in one teacher-forced pass (right-padded batches). The prompts' common start (a template's default
    system prompt, often half the tokens) is run once and its cache shared by every row. Only the positions that
    predict answer tokens reach the vocabulary projection (`logits_to_keep`), so a batch's logits cover its
    answers, not its prompts (Gemma's 262k vocabulary made those the largest tensors of a whole run)."""
    import torch  # deferred: heavy

    shared = _common_prefix(prompt_ids)
    nll: list[float] = [0.0] * len(prompt_ids)
    top1: list[list[int]] = [[] for _ in prompt_ids]
    rows = [p[shared:] + a for p, a in zip(prompt_ids, answer_ids)]
    spans = [(len(p) - shared - 1, len(row) - 1) for p, row in zip(prompt_ids, rows)]  # positions predicting answers
    keeps, word = _takes_logits_to_keep(model), cache_word(forward_parameters(model))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            prefix = getattr(model(input_ids=torch.tensor([prompt_ids[0][:shared]], device=model.device),
                                   use_cache=True), word) if shared else None  # the output names it as forward does
            vocab = model.get_output_embeddings().weight.shape[0]
            for batch in _batches(rows, vocab, spans if keeps else None):
                width = max(len(rows[i]) for i in batch)
                ids = torch.tensor([rows[i] + [0] * (width - len(rows[i])) for i in batch], device=model.device)
                mask = torch.tensor([[1] * (shared + len(rows[i])) + [0] * (width - len(rows[i])) for i in batch],
                                    device=model.device)
                first = min(spans[i][0] for i in batch) if keeps else 0
                extra = {"logits_to_keep": torch.arange(first, max(spans[i][1] for i in batch),
                                                        device=model.device)} if keeps else {}
                past = _repeated(prefix, len(batch))
                logits = model(input_ids=ids, attention_mask=mask, use_cache=past is not None,
                               **{word: past}, **extra).logits
                for k, i in enumerate(batch):
                    start, end = spans[i]
                    answer = logits[k, start - first:end - first]
                    logprobs = torch.log_softmax(answer, dim=-1, dtype=torch.float32)
                    nll[i] = float(-logprobs.gather(1, ids[k, start + 1:end + 1, None]).sum())
                    # in the logits' own dtype: the same top-1 as on a fp32 copy (the cast is exact), without the
                    # copy, and max's reduction runs several times faster than argmax here (262k-word vocabularies)
                    top1[i] = answer.max(dim=-1).indices.tolist()
                del logits
    finally:
        model.train(was_training)
    return nll, top1


def _takes_logits_to_keep(model) -> bool:
    """transformers' own causal LMs take `logits_to_keep` (positions to project); remote code may not."""
    return "logits_to_keep" in forward_parameters(model)


def _common_prefix(prompt_ids: list[list[int]]) -> int:
    """Tokens every prompt starts with, less one, so each row still has the position that predicts its answer."""
    if len(prompt_ids) < 2:
        return 0
    shortest = min(map(len, prompt_ids))
    n = next((k for k in range(shortest) if len({p[k] for p in prompt_ids}) > 1), shortest)
    return max(0, n - 1)


def _repeated(prefix, rows: int):
    """The shared start's cache, one copy per row of the batch (the forward pass extends it in place)."""
    if prefix is None:
        return None
    import copy

    past = copy.deepcopy(prefix)
    past.batch_repeat_interleave(rows)
    return past


# A scoring batch's logits (rows x kept positions x vocabulary): 512 MiB in fp32, 256 MiB in bf16, a quarter of
# those a default training step makes without a fused loss (4 rows x 512 tokens x Gemma's 262k words). At 2**25,
# Gemma scored 3-4 rows a pass and read every weight again for each few (bench/checks_speed.py --scoring: -24%).
LOGIT_ELEMENTS = 2**27


def _batches(sequences: list[list[int]], vocab: int = 0, spans: list[tuple[int, int]] | None = None) -> list[list[int]]:
    """Indices in batches of similar length, so little of each batch is padding; with `vocab`, each batch small
    enough that its logits stay within LOGIT_ELEMENTS: over the positions `spans` keep (from the batch's earliest
    start to its latest end), or over whole rows (Gemma's 262k vocabulary: a few rows per batch)."""
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    spans = spans or [(0, len(sequence)) for sequence in sequences]
    batches: list[list[int]] = []
    for i in order:
        if batches and len(batches[-1]) < BATCH:
            batch = batches[-1] + [i]
            kept = max(spans[j][1] for j in batch) - min(spans[j][0] for j in batch)
            if len(batch) * kept * vocab <= LOGIT_ELEMENTS:
                batches[-1] = batch
                continue
        batches.append([i])
    return batches


# ---------------------------------------------------------------- after training

def after_training(baseline: Baseline, model, tokenizer, taught=None) -> dict:
    """The tuned model's side, and the report the run folder keeps (drift.json). The answers are read as well as
    scored: a changed answer is generated, and general answers that now carry what the data taught (`taught`,
    studio/data/facts.py: an identity leak) or that collapse to one phrase are named."""
    from studio.data.facts import collapsed, leaked

    started = time.perf_counter()
    nll, top1 = score(model, baseline.prompt_ids, baseline.answer_ids)
    tokens = [len(a) for a in baseline.answer_ids]
    changed = [mine != base for mine, base in zip(top1, baseline.top1)]
    per_prompt = [(t - b) / n for t, b, n in zip(nll, baseline.nll, tokens)]
    picked = _samples(baseline.prompts, changed, per_prompt)
    scored = time.perf_counter()
    # an unchanged answer is the base answer (greedy, same top-1 everywhere); only the changed ones are generated
    asked = sorted(set(picked) | {i for i, c in enumerate(changed) if c})
    answered = dict(zip(asked, (answer_text(tokenizer, ids) for ids in
                                greedy(model, tokenizer, [baseline.prompt_ids[i] for i in asked], MAX_NEW_TOKENS))))
    tuned_text = [answered.get(i, baseline.answers[i]) for i in range(len(baseline.prompts))]
    texts = [p.text for p in baseline.prompts]
    leaks, collapse = leaked(taught, texts, baseline.answers, tuned_text), collapsed(baseline.answers, tuned_text)
    base_loss, tuned_loss = sum(baseline.nll) / sum(tokens), sum(nll) / sum(tokens)
    return {
        "drift": round(tuned_loss - base_loss, 4), "base_loss": round(base_loss, 4), "tuned_loss": round(tuned_loss, 4),
        "changed": sum(changed), "prompts": len(changed), "source": baseline.source,
        "by_kind": _by_kind(baseline.prompts, per_prompt),
        "samples": [{"prompt": baseline.prompts[i].text, "language": baseline.prompts[i].language,
                     "base": baseline.answers[i],
                     "tuned": tuned_text[i],
                     "drift": round(per_prompt[i], 4), "changed": changed[i]}
                    for i in picked],
        "leak": [{"prompt": texts[i], "base": baseline.answers[i], "tuned": tuned_text[i]} for i in leaks],
        "collapse": [{"prompt": texts[i], "tuned": tuned_text[i]} for i in collapse],
        "seconds": {"before": round(baseline.seconds, 2), "after": round(time.perf_counter() - started, 2),
                    "after_scoring": round(scored - started, 2), "base_answers_cached": baseline.cached},
    }


def _samples(prompts: list[Prompt], changed: list[bool], per_prompt: list[float]) -> list[int]:
    """The SAMPLES most changed prompts of each language (the changed first, then by drift), so a reader sees
    prompts in their own language."""
    picked = []
    for language in dict.fromkeys(p.language for p in prompts):
        mine = [i for i, p in enumerate(prompts) if p.language == language]
        picked += sorted(mine, key=lambda i: (not changed[i], -per_prompt[i]))[:SAMPLES]
    return picked


def _by_kind(prompts: list[Prompt], per_prompt: list[float]) -> dict[str, float]:
    kinds: dict[str, list[float]] = {}
    for prompt, value in zip(prompts, per_prompt):
        kinds.setdefault(prompt.kind, []).append(value)
    return {kind: round(sum(v) / len(v), 4) for kind, v in kinds.items()}


# ---------------------------------------------------------------- reading it

SOME, HIGH = 0.05, 0.3  # nats per token: e^0.05 ≈ 5% less likely, e^0.3 ≈ 35% less likely per token


def level(report: dict) -> str:
    """'low', 'some' or 'high' forgetting, graded by the drift, and at least 'some' where general answers now
    carry what the data taught or collapse to one phrase (a small drift in nats can hide a model that now says
    its new name when asked how many months a year has). An answer counts as changed when any one of its tokens
    flips, which near-ties do after the slightest training, so that share is reported, not graded."""
    if report["drift"] >= HIGH:
        return "high"
    return "some" if report["drift"] >= SOME or report.get("leak") or report.get("collapse") else "low"


def summary(report: dict) -> Msg:
    line = Msg(f"drift.summary_{level(report)}", drift=report["drift"], changed=report["changed"],
               prompts=report["prompts"])
    named = []
    if leaks := report.get("leak"):
        named.append(Msg("drift.leak", count=len(leaks), prompts=report["prompts"], prompt=leaks[0]["prompt"],
                         tuned=leaks[0]["tuned"][:120]))
    if collapse := report.get("collapse"):
        named.append(Msg("drift.collapse", count=len(collapse), prompts=report["prompts"],
                         start=collapse[0]["tuned"][:40]))
    return Msg("paragraphs", items=[line, *named]) if named else line


SAMPLE_COLUMNS = ["col.prompt", "col.base", "col.tuned", "col.drift"]  # the tables' headers, as message keys
SAMPLE_WIDTHS = ["22%", "34%", "34%", "10%"]  # both answers in view side by side, wrapped


def sample_rows(report: dict | None, language: str = "en") -> list[list]:
    """[prompt, base answer, tuned answer, drift] for the samples a report keeps (Train and Chat tabs): those in
    the reader's language where there are any (a user's own prompts have no language: all of them)."""
    samples = (report or {}).get("samples", [])
    mine = [x for x in samples if x.get("language") == language] or \
        [x for x in samples if not x.get("language")] or samples[:SAMPLES]
    return [[x["prompt"], x["base"], x["tuned"], x["drift"]] for x in mine]
