"""What a model's chat template expects, found once per template by rendering small probe conversations.

Model makers' templates differ in what they accept: some refuse a system role (Gemma 1/2), some read content only
as a list of parts (vision-language models), some want tool-call arguments as a JSON string (DeepSeek-V3) and
others as an object (Qwen3, GLM-4.5), some read tool definitions from a system message (GLM-4) rather than from
`tools=`. Rather than keep a table of families, the studio asks the template itself: each probe renders a tiny
conversation and looks for its text in the output. `adapt()` then hands every conversation to the template in the
form it expects, and says what it changed.

The training template is TRL's where TRL knows the model (`get_training_chat_template`: prefix-preserving, with
`{% generation %}` markers, kept current by TRL's own drift check); otherwise the model's own. No torch here at
module level.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, replace


THINK_OPEN, THINK_CLOSE = "<think>\n", "\n</think>\n\n"  # default reasoning markup when the template has none

TOOLS_OPEN, TOOLS_CLOSE = "You can call these tools:\n<tools>", "</tools>"  # for templates without tool support
PROBE_TOOL = {"type": "function", "function": {"name": "probe_lookup", "description": "probe tool",
                                               "parameters": {"type": "object",
                                                              "properties": {"q": {"type": "string"}}}}}
CALL = [{"role": "user", "content": "q"}]  # the user turn every probe starts from


@dataclass(frozen=True)
class TemplateProfile:
    template: str  # what training renders with (TRL's training variant where TRL knows the model)
    origin: str  # "trl" (TRL's training variant), "marked" (the model's own, with generation markers), "model"
    marked: bool  # {% generation %} markers give the answer spans
    extra: tuple  # special tokens the template may read (bos_token, eos_token, ...), as apply_chat_template passes
    system: bool = True  # renders a system message (else it is folded into the first user turn)
    content_parts: bool = False  # content must be a list of {"type": "text", "text": ...}
    thinking: bool = False  # renders reasoning_content
    tool_calls: bool = False  # renders tool calls itself
    arguments_as_text: bool = False  # tool-call arguments as a JSON string rather than an object
    tools_at: str = "text"  # where tool definitions go: "kwarg" (tools=), "system" (message['tools']), "text"

    def render(self, messages: list[dict], add_generation_prompt: bool = False, tools=None,
               indices: bool = False):
        """The template's text (and, with indices, its generation spans). Raises what the template raises."""
        from transformers.utils.chat_template_utils import render_jinja_template  # deferred: heavy

        texts, spans = render_jinja_template([self.finish(messages)], tools=tools, chat_template=self.template,
                                             add_generation_prompt=add_generation_prompt,
                                             return_assistant_tokens_mask=indices, **dict(self.extra))
        return (texts[0], spans[0]) if indices else texts[0]

    def finish(self, messages: list[dict]) -> list[dict]:
        """The last, purely formal step before the template: content as parts where the template reads parts."""
        if not self.content_parts:
            return messages
        return [{**m, "content": [{"type": "text", "text": m["content"]}]} if isinstance(m.get("content"), str)
                else m for m in messages]

    def adapt(self, messages: list[dict], tools: list[dict] | None = None) -> tuple[list[dict], list | None, bool]:
        """(messages, tools for tools=, whether the system text was folded into the first user turn): what the
        template cannot render is written as visible text, since a model must never learn to call tools whose
        definitions it was not shown, nor lose the reasoning the data holds."""
        messages, tools = self._place_tools(messages, tools)
        folded = not self.system and bool(messages) and messages[0]["role"] == "system"
        if folded:  # as the model makers advise for templates without a system role
            messages = _fold_system(messages)
        return [self._adapt_message(m) for m in messages], tools, folded

    def _place_tools(self, messages, tools):
        if not tools or self.tools_at == "kwarg":
            return messages, tools or None
        if self.tools_at == "system":
            if messages and messages[0]["role"] == "system":
                return [{**messages[0], "tools": tools}, *messages[1:]], None
            return [{"role": "system", "content": "", "tools": tools}, *messages], None
        listed = "\n".join(json.dumps(tool, ensure_ascii=False) for tool in tools)
        definitions = f"{TOOLS_OPEN}\n{listed}\n{TOOLS_CLOSE}"
        if messages and messages[0]["role"] == "system":
            return [{**messages[0], "content": f"{messages[0]['content']}\n\n{definitions}"}, *messages[1:]], None
        return [{"role": "system", "content": definitions}, *messages], None

    def _adapt_message(self, m: dict) -> dict:
        m = dict(m)
        reasoning = m.pop("reasoning_content", None)
        if reasoning and not self.thinking:
            m["content"] = f"{THINK_OPEN}{reasoning}{THINK_CLOSE}{m.get('content') or ''}"
        elif reasoning:
            m["reasoning_content"] = reasoning
        if m.get("tool_calls") and not self.tool_calls:
            calls = "\n".join(json.dumps(c.get("function", c), ensure_ascii=False) for c in m.pop("tool_calls"))
            m["content"] = f"{m.get('content') or ''}<tool_call>\n{calls}\n</tool_call>".lstrip()
        elif m.get("tool_calls"):
            m["tool_calls"] = [self._call(c) for c in m["tool_calls"]]
        return m

    def _call(self, call: dict) -> dict:
        function = dict(call.get("function", call))
        arguments = function.get("arguments", {})
        if self.arguments_as_text and not isinstance(arguments, str):
            function["arguments"] = json.dumps(arguments, ensure_ascii=False)
        elif not self.arguments_as_text and isinstance(arguments, str):
            try:
                function["arguments"] = json.loads(arguments)
            except ValueError:
                pass  # not JSON: the template gets the text as it is
        return {"type": "function", **{k: v for k, v in call.items() if k != "function"}, "function": function}


def _fold_system(messages: list[dict]) -> list[dict]:
    system, rest = messages[0]["content"], messages[1:]
    if rest and rest[0]["role"] == "user":
        return [{**rest[0], "content": f"{system}\n\n{rest[0]['content']}"}, *rest[1:]]
    return [{"role": "user", "content": system}, *rest]


def template_profile(tokenizer) -> TemplateProfile:
    template = tokenizer.chat_template or ""
    if isinstance(template, dict):  # named variants: the default one is the chat template
        template = template.get("default", next(iter(template.values()), ""))
    extra = tuple(sorted((k, v) for k, v in tokenizer.special_tokens_map.items() if isinstance(v, str)))
    return _profile(template, extra, _training_template(tokenizer, template))


@functools.lru_cache(maxsize=32)
def _profile(template: str, extra: tuple, training: str | None) -> TemplateProfile:
    marked = training is not None or _has_markers(template)
    profile = TemplateProfile(training or template, "trl" if training else ("marked" if marked else "model"),
                              marked, extra)
    user = [{"role": "user", "content": "PROBEQ"}]
    if not _renders(profile, user, "PROBEQ") and _renders(replace(profile, content_parts=True), user, "PROBEQ"):
        profile = replace(profile, content_parts=True)
    calls = _probe_calls(profile)
    return replace(
        profile, tool_calls=calls is not None, arguments_as_text=calls is True, tools_at=_probe_tools_at(profile),
        system=_renders(profile, [{"role": "system", "content": "PROBES"}, *CALL], "PROBES"),
        thinking=_renders(profile, [*CALL, {"role": "assistant", "content": "a", "reasoning_content": "PROBER"}],
                          "PROBER"))


def _has_markers(template: str) -> bool:
    return re.search(r"\{%-?\s*generation\s*-?%\}", template) is not None


def _training_template(tokenizer, template: str) -> str | None:
    """TRL's training variant of this template, or None where TRL does not know it (or it needs none)."""
    if not template or _has_markers(template):
        return None
    try:
        from trl.chat_template_utils import get_training_chat_template  # deferred: imports torch
    except ImportError:
        return None
    try:
        return get_training_chat_template(tokenizer)
    except Exception:  # noqa: BLE001 - "not supported for this template": the studio finds the spans itself
        return None


def _renders(profile: TemplateProfile, messages: list[dict], probe: str, **kwargs) -> bool:
    try:
        return probe in profile.render(messages, **kwargs)
    except Exception:  # noqa: BLE001 - a template that refuses the probe does not support what it probes
        return False


def _probe_calls(profile: TemplateProfile) -> bool | None:
    """None: the template does not render tool calls; True: it wants the arguments as a JSON string; False: as an
    object (the default where both render)."""
    def conversation(arguments):
        call = {"type": "function", "function": {"name": "probe_lookup", "arguments": arguments}}
        return CALL + [{"role": "assistant", "content": "", "tool_calls": [call]}]

    try:
        as_object = profile.render(conversation({"q": "PROBEA"}))
    except Exception:  # noqa: BLE001
        as_object = ""
    if "probe_lookup" in as_object and "PROBEA" in as_object and '\\"' not in as_object:
        return False
    try:
        as_text = profile.render(conversation(json.dumps({"q": "PROBEA"})))
    except Exception:  # noqa: BLE001
        as_text = ""
    if "probe_lookup" in as_text and "PROBEA" in as_text:
        return True
    return None


def _probe_tools_at(profile: TemplateProfile) -> str:
    if _renders(profile, CALL, "probe tool", tools=[PROBE_TOOL]):
        return "kwarg"
    in_system = [{"role": "system", "content": "", "tools": [PROBE_TOOL]}, *CALL]
    if _renders(profile, in_system, "probe tool"):
        return "system"
    return "text"


@functools.lru_cache(maxsize=32)
def profile_name(profile: TemplateProfile) -> str:
    """The file name TRL stores this training template under (e.g. "qwen3_training"), for messages."""
    try:
        import importlib.util
        from pathlib import Path

        folder = Path(importlib.util.find_spec("trl").origin).parent / "chat_templates"
        return next((p.stem for p in sorted(folder.glob("*.jinja")) if p.read_text(encoding="utf-8") ==
                     profile.template), "TRL")
    except Exception:  # noqa: BLE001 - only a name for a message
        return "TRL"
