"""Greedy answers of exported GGUF files in llama.cpp itself (not only transformers' GGUF loader).

    pip install --target /tmp/lcp llama-cpp-python diskcache     # builds llama.cpp (~5 min on 2 cores)
    PYTHONPATH=/tmp/lcp python bench/gguf_llamacpp_check.py RUN/export/*.gguf [--system "..."]

Not part of the dependency set or the tests: llama.cpp is built from source. On this machine the build
(llama-cpp-python 0.3.36) crashed when evaluating more than one token per batch, with the starter model's own
GGUF file as well, so tokens are fed one at a time (n_batch=1); greedy = argmax of the logits.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

SMOLLM_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"  # the template's default


def greedy(llm, prompt: str, max_tokens: int = 40) -> str:
    llm.reset()
    llm.eval(llm.tokenize(prompt.encode(), add_bos=False, special=True))
    out = []
    for _ in range(max_tokens):
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        if token == llm.token_eos():
            break
        out.append(token)
        llm.eval([token])
    return llm.detokenize(out).decode(errors="replace")


def main() -> None:
    from llama_cpp import Llama

    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="+")
    parser.add_argument("--system", default=SMOLLM_SYSTEM)
    parser.add_argument("--prompt", action="append", default=None)
    args = parser.parse_args()
    for path in args.files:
        llm = Llama(model_path=path, n_ctx=512, n_batch=1, n_ubatch=1, logits_all=True, n_threads=2, verbose=False)
        for question in args.prompt or ["Who are you?", "你是谁？"]:
            prompt = (f"<|im_start|>system\n{args.system}<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n"
                      "<|im_start|>assistant\n")
            print(f"{os.path.basename(path)}  {question}  ->  {greedy(llm, prompt)!r}", flush=True)
    os._exit(0)  # the same build also crashed while tearing the model down


if __name__ == "__main__":
    main()
