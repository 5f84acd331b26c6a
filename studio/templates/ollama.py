"""An Ollama `Modelfile` for a GGUF export: FROM the file, the chat template in Ollama's Go template syntax, the
stop tokens, the default system prompt and the run's generation settings.

Ollama cannot be installed here, so the template is checked, not trusted. Each family's template is written in
a small subset of Go's text/template, the one Ollama's own templates use, and `render_go` implements exactly
that subset:
  * text, and actions `{{ ... }}` with Go's trim markers (`{{-` drops the whitespace before, `-}}` after);
  * `{{ .Field }}` (the current message's `.Role` / `.Content`, or the top level's `.System`), `{{ $.Field }}`;
  * `{{ range .Messages }} ... {{ end }}`;
  * `{{ if P }} ... {{ else if P }} ... {{ else }} ... {{ end }}`, where P is `.Field`, `eq .Field "text"` or
    `ne .Field "text"`.
Ollama renders a chat as `.Messages` with the Modelfile's SYSTEM prepended as a system message when the request
has none, and llama.cpp adds the BOS token itself where the GGUF says so. `template_for` renders sample
conversations both ways, with the model's Jinja template and with the family's Go template, and writes the
TEMPLATE only when every sample renders to the same text; otherwise the Modelfile leaves TEMPLATE out, so Ollama
uses the template embedded in the GGUF, and says why. No torch.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace

from studio.core.text import Msg, render

CHATML = ("{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
          "{{ end }}<|im_start|>assistant\n")
LLAMA3 = ("{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>"
          "{{- end }}<|start_header_id|>assistant<|end_header_id|>\n\n")
PHI3 = ("{{- range .Messages }}<|{{ .Role }}|>\n{{ .Content }}<|end|>\n{{ end }}<|assistant|>\n")
ZEPHYR = ("{{- range .Messages }}<|{{ .Role }}|>\n{{ .Content }}</s>\n{{ end }}<|assistant|>\n")
GEMMA = ("{{- range .Messages }}<start_of_turn>{{ if eq .Role \"assistant\" }}model{{ else }}{{ .Role }}{{ end }}\n"
         "{{ .Content }}<end_of_turn>\n{{ end }}<start_of_turn>model\n")
# marker in the Jinja template -> the family's Go template, tried in this order
FAMILIES = (("<|im_start|>", "chatml", CHATML), ("<|start_header_id|>", "llama3", LLAMA3),
            ("<|end|>", "phi3", PHI3), ("<|user|>", "zephyr", ZEPHYR), ("<start_of_turn>", "gemma", GEMMA))
SAMPLES = (
    [{"role": "user", "content": "Hello there"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
     {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "How are you?"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! 你好"}, {"role": "user", "content": "Bye"}],
)
SYSTEM_MARK = "\u2063SYSTEM\u2063"


# ---------------------------------------------------------------- the Go template subset

_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


def _tokens(template: str) -> list[tuple[str, str]]:
    """[('text', ...), ('action', ...)] with Go's trim markers applied to the neighbouring text."""
    out: list[tuple[str, str]] = []
    pos, trim_next = 0, False
    for match in _ACTION.finditer(template):
        text = template[pos:match.start()]
        if trim_next:
            text = text.lstrip()
        if match.group(1):
            text = text.rstrip()
        if text:
            out.append(("text", text))
        out.append(("action", match.group(2)))
        pos, trim_next = match.end(), bool(match.group(3))
    tail = template[pos:]
    if tail := (tail.lstrip() if trim_next else tail):
        out.append(("text", tail))
    return out


def _parse(tokens: list, i: int = 0, until: tuple = ()) -> tuple[list, int, str]:
    """A node list up to one of the `until` actions; returns (nodes, next index, the action that ended it)."""
    nodes = []
    while i < len(tokens):
        kind, value = tokens[i]
        if kind == "text":
            nodes.append(("text", value))
            i += 1
            continue
        word = value.split(" ", 1)[0]
        if word in until or word == "else":
            if not until:
                raise ValueError(f"{value!r} outside a block")
            return nodes, i, value
        if word == "range":
            body, i, _ = _parse(tokens, i + 1, ("end",))
            nodes.append(("range", value[len("range"):].strip(), body))
            i += 1
        elif word == "if":
            branches, i = _parse_if(tokens, i, value[len("if"):].strip())
            nodes.append(("if", branches))
        else:
            nodes.append(("value", value))
            i += 1
    if until:
        raise ValueError(f"template ends inside a block (expected {'/'.join(until)})")
    return nodes, i, ""


def _parse_if(tokens: list, i: int, condition: str) -> tuple[list, int]:
    branches = []
    while True:
        body, i, ended = _parse(tokens, i + 1, ("end",))
        branches.append((condition, body))
        if ended == "end":
            return branches, i + 1
        if ended.startswith("else if"):
            condition = ended[len("else if"):].strip()
        elif ended == "else":
            condition = None
        else:
            raise ValueError(f"unsupported action {ended!r}")


def _lookup(expr: str, dot: dict, root: dict):
    if expr.startswith("$."):
        return root.get(expr[2:], "")
    if expr.startswith("."):
        return dot.get(expr[1:], "")
    if expr.startswith('"') and expr.endswith('"'):
        return json.loads(expr)  # Go's string literals escape as JSON's do
    raise ValueError(f"unsupported expression {expr!r}")


def _true(condition: str | None, dot: dict, root: dict) -> bool:
    if condition is None:
        return True
    parts = re.findall(r'"(?:[^"\\]|\\.)*"|\S+', condition)
    if parts[0] in ("eq", "ne") and len(parts) == 3:
        same = _lookup(parts[1], dot, root) == _lookup(parts[2], dot, root)
        return same if parts[0] == "eq" else not same
    if len(parts) == 1:
        return bool(_lookup(parts[0], dot, root))
    raise ValueError(f"unsupported condition {condition!r}")


def _run(nodes: list, dot: dict, root: dict) -> str:
    out = []
    for node in nodes:
        if node[0] == "text":
            out.append(node[1])
        elif node[0] == "value":
            out.append(str(_lookup(node[1], dot, root)))
        elif node[0] == "range":
            out += [_run(node[2], item, root) for item in _lookup(node[1], dot, root) or []]
        else:
            out += [_run(body, dot, root) for condition, body in node[1] if _true(condition, dot, root)][:1]
    return "".join(out)


def render_go(template: str, messages: list[dict], system: str = "") -> str:
    """The text Ollama would send the model for `messages`, with the Modelfile's SYSTEM prepended where the chat
    has no system message (as Ollama does)."""
    if system and not any(m["role"] == "system" for m in messages):
        messages = [{"role": "system", "content": system}, *messages]
    turns = [{"Role": m["role"], "Content": m["content"]} for m in messages]  # Ollama's api.Message fields
    root = {"Messages": turns, "System": next((m["content"] for m in messages if m["role"] == "system"), "")}
    nodes, _, _ = _parse(_tokens(template))
    return _run(nodes, root, root)


# ---------------------------------------------------------------- choosing and checking the template

@dataclass
class OllamaTemplate:
    family: str | None
    template: str | None  # None: left to the template embedded in the GGUF
    system: str  # the Jinja template's default system prompt ("" if it has none)
    reason: Msg | None = None  # why no TEMPLATE was written


def jinja_text(tokenizer, messages: list[dict]) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def default_system(tokenizer) -> str:
    """The system prompt the Jinja template adds when a chat has none (SmolLM2's, Qwen's), or ""."""
    user = [{"role": "user", "content": "Hello there"}]
    plain = jinja_text(tokenizer, user)
    try:
        marked = jinja_text(tokenizer, [{"role": "system", "content": SYSTEM_MARK}, *user])
    except Exception:  # noqa: BLE001 - a template without system turns
        return ""
    if SYSTEM_MARK not in marked:
        return ""
    before, after = marked.split(SYSTEM_MARK, 1)
    if plain.startswith(before) and plain.endswith(after) and len(plain) > len(before) + len(after):
        return plain[len(before):len(plain) - len(after)]
    return ""


def template_for(tokenizer, adds_bos: bool) -> OllamaTemplate:
    """The family's Go template when it renders every sample exactly as the model's Jinja template does."""
    source = getattr(tokenizer, "chat_template", None) or ""
    if not source:
        return OllamaTemplate(None, None, "", Msg("ollama.no_template"))
    system = default_system(tokenizer)
    bos = tokenizer.bos_token or "" if adds_bos else ""
    for marker, family, template in FAMILIES:
        if marker not in source:
            continue
        differs = [i for i, sample in enumerate(SAMPLES, start=1)
                   if _jinja_or_none(tokenizer, sample, bos) != render_go(template, sample, system)]
        if not differs:
            return OllamaTemplate(family, template, system)
        return OllamaTemplate(family, None, system, Msg("ollama.differs", family=family, sample=differs[0]))
    return OllamaTemplate(None, None, system, Msg("ollama.unknown_family"))


def _jinja_or_none(tokenizer, messages: list[dict], bos: str) -> str | None:
    try:
        text = jinja_text(tokenizer, messages)
    except Exception:  # noqa: BLE001 - a template that refuses a sample (no system turn) cannot be matched
        return None
    return text[len(bos):] if bos and text.startswith(bos) else text


# ---------------------------------------------------------------- the Modelfile

def stop_tokens(tokenizer) -> list[str]:
    from .chat_template import end_of_turn_ids  # deferred: chat_template reads the template's tokens

    ids = [*end_of_turn_ids(tokenizer), *([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])]
    return list(dict.fromkeys(t for t in (tokenizer.convert_ids_to_tokens(i) for i in ids) if t))


class ModelfileValueError(ValueError):
    """A value that Ollama's Modelfile grammar cannot hold; the message says which."""


# A value between triple quotes ends at the first three quotes; Ollama's parser has no escape for them, so a value
# that holds them, or ends in a quote (which would merge with the closing ones), cannot be written there at all.
TRIPLE_QUOTABLE = re.compile(r'(?!.*""")(?:.*[^"])?', re.S)
ONE_LINE_VALUE = re.compile(r'[^"\\\n\r]+')  # what may stand between the quotes of PARAMETER stop "..."


def triple_quoted(value: str) -> str | None:
    """`value` as a triple-quoted Modelfile value, or None when the grammar cannot hold it."""
    return f'"""{value}"""' if TRIPLE_QUOTABLE.fullmatch(value) else None


def modelfile(gguf_name: str, tokenizer, generation, adds_bos: bool, system_prompt: str = "") -> tuple[str, OllamaTemplate]:
    """The Modelfile text for the GGUF next to it, and the template decision (for the export's message). The run's
    own system prompt (the one it was trained with) replaces the template's default one."""
    chosen = template_for(tokenizer, adds_bos)
    if system_prompt.strip():
        chosen = replace(chosen, system=system_prompt.strip())
    if chosen.system and triple_quoted(chosen.system) is None:
        raise ModelfileValueError(Msg("export.modelfile_bad_system"))
    if chosen.template and triple_quoted(chosen.template) is None:  # the studio's own templates: never, but checked
        chosen = replace(chosen, template="", reason=Msg("export.modelfile_bad_template"))
    lines = [f"# Written by Fine-tuning Studio. Create and run: ollama create NAME -f {gguf_name[:-5]}.Modelfile"
             f" && ollama run NAME", f"FROM ./{gguf_name}", ""]
    if chosen.template:
        lines += [f"# Chat template ({chosen.family}), checked against the model's own template on "
                  f"{len(SAMPLES)} sample chats", f"TEMPLATE {triple_quoted(chosen.template)}", ""]
    else:
        lines += [f"# No TEMPLATE: {render(chosen.reason)}; Ollama uses the chat template stored in the GGUF.", ""]
    if chosen.system:
        lines += [f"SYSTEM {triple_quoted(chosen.system)}", ""]
    lines += [f'PARAMETER stop "{token}"' for token in stop_tokens(tokenizer) if ONE_LINE_VALUE.fullmatch(token)]
    lines += [f"PARAMETER temperature {generation.temperature:g}", f"PARAMETER top_p {generation.top_p:g}",
              f"PARAMETER repeat_penalty {generation.repetition_penalty:g}",
              f"PARAMETER num_predict {generation.max_new_tokens}", f"PARAMETER seed {generation.sampling_seed}"]
    return "\n".join(lines) + "\n", chosen


def parse_modelfile(text: str) -> dict:
    """The instructions of a Modelfile as {instruction: [values]} (triple-quoted values whole), for the checks."""
    found: dict[str, list[str]] = {}
    for match in re.finditer(r'^(FROM|TEMPLATE|SYSTEM|PARAMETER)[ \t]+(?:"""(.*?)"""|([^\n]*))$', text, re.S | re.M):
        found.setdefault(match.group(1), []).append(match.group(2) if match.group(2) is not None
                                                    else match.group(3).strip())
    return found
