"""One lock-guarded first import of the heavy libraries.

transformers' lazy module is not safe to import from two threads at once: the UI's advice callback and the
training thread did exactly that and one got "cannot import name 'AutoConfig'". Every code path that needs them
calls `ensure_imported()` first; after the first call it costs a lock acquisition.
"""

from __future__ import annotations

import threading

_LOCK = threading.Lock()
_DONE = False


def ensure_imported() -> None:
    global _DONE
    if _DONE:
        return
    with _LOCK:
        if _DONE:
            return
        import peft  # noqa: F401  (this module exists to defer these imports)
        import torch  # noqa: F401
        import transformers
        import trl  # noqa: F401
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, TrainerCallback  # noqa: F401

        _DONE = transformers is not None
