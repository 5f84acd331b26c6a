"""The Ollama Modelfile: the documented Go template subset, each family's template rendered against the model's
own Jinja template (TRL's shipped originals and the starter model's), and the file a GGUF export writes."""

import os
from pathlib import Path

import pytest

from studio.core import config
from studio.templates import ollama
from studio.export import export
from conftest import build_tokenizer


def trl_template(name: str) -> str:
    import trl

    return (Path(os.path.dirname(trl.__file__)) / "chat_templates" / f"{name}.jinja").read_text()


LONG_CHAT = [{"role": "system", "content": "You answer in one line."}, {"role": "user", "content": "What is 2+2?"},
             {"role": "assistant", "content": "4"}, {"role": "user", "content": "用中文说一遍"},
             {"role": "assistant", "content": "四"}, {"role": "user", "content": "Thanks!\nBye."}]


def test_the_go_subset_trims_branches_and_ranges_as_go_does():
    template = ('{{- if .System }}S:{{ .System }}\n{{ end }}\n  {{- range .Messages }}'
                '{{ if eq .Role "user" }}U:{{ .Content }}{{ else if ne .Role "system" }}A:{{ .Content }}'
                '{{ else }}-{{ end }} {{- end }}|{{ $.System }}')
    chat = [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "yo"}]
    assert ollama.render_go(template, chat) == "S:sys\n-U:hiA:yo|sys"
    assert ollama.render_go(template, chat[1:]) == "U:hiA:yo|"
    assert ollama.render_go(template, chat[1:], system="dflt") == "S:dflt\n-U:hiA:yo|dflt"  # as Ollama's SYSTEM
    for unsupported in ("{{ range .Messages }}x", "{{ len .Messages }}", "{{ else }}"):
        with pytest.raises(ValueError):
            ollama.render_go(unsupported, chat)


@pytest.mark.parametrize("name,family,adds_bos", [("llama3", "llama3", True), ("phi3", "phi3", False),
                                                  ("qwen2_5", "chatml", False)])
def test_family_templates_render_like_the_original_jinja(name, family, adds_bos):
    tokenizer = build_tokenizer()
    tokenizer.bos_token = "<|begin_of_text|>" if adds_bos else None
    tokenizer.chat_template = trl_template(name)
    chosen = ollama.template_for(tokenizer, adds_bos)
    assert chosen.family == family and chosen.template, chosen.reason
    for chat in (LONG_CHAT, LONG_CHAT[1:], LONG_CHAT[1:2]):
        jinja = ollama.jinja_text(tokenizer, chat).removeprefix(tokenizer.bos_token or "")
        assert ollama.render_go(chosen.template, chat, chosen.system) == jinja
    if name == "qwen2_5":
        assert chosen.system == "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


def test_a_template_the_subset_cannot_match_is_left_to_the_gguf_with_the_reason():
    tokenizer = build_tokenizer()
    tokenizer.chat_template = trl_template("llama3_1")  # dates written into every system turn
    chosen = ollama.template_for(tokenizer, True)
    assert chosen.template is None and chosen.reason.key == "ollama.differs"
    text, _ = ollama.modelfile("m.gguf", tokenizer, config.GenerationSettings(), True)
    assert "TEMPLATE" not in ollama.parse_modelfile(text) and "# No TEMPLATE:" in text


def test_a_gguf_export_writes_a_checked_modelfile_and_the_ollama_commands(lora_run, tmp_path):
    result = export.export_gguf(lora_run, tmp_path / "tuned-F16.gguf", "F16")
    assert {"tuned-F16.Modelfile", "tuned-F16.README.md"} <= set(result.files)
    parsed = ollama.parse_modelfile((tmp_path / "tuned-F16.Modelfile").read_text())
    assert parsed["FROM"] == ["./tuned-F16.gguf"]
    generation = config.GenerationSettings()
    assert parsed["SYSTEM"] == ["You are a helpful assistant."]  # the tiny model's template's default
    assert 'stop "<|im_end|>"' in parsed["PARAMETER"]
    assert f"num_predict {generation.max_new_tokens}" in parsed["PARAMETER"]
    assert f"repeat_penalty {generation.repetition_penalty:g}" in parsed["PARAMETER"]
    template = parsed["TEMPLATE"][0]
    from studio.models import models

    tokenizer = models.load_tokenizer(str(Path(lora_run) / "adapter"))
    assert ollama.render_go(template, LONG_CHAT[1:], parsed["SYSTEM"][0]) == ollama.jinja_text(tokenizer, LONG_CHAT[1:])
    card = (tmp_path / "tuned-F16.README.md").read_text()
    assert "ollama create" in card and "-f tuned-F16.Modelfile" in card and "ollama run" in card
    assert "chatml" in str(result.check)
