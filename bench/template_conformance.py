"""Which chat templates train exactly, which leave replies untrained (named to the user), and why.

    python bench/template_conformance.py

Runs the conversations of tests/test_template_conformance.py through every template in TRL's chat_templates/
folder and tests/data/templates/, and prints one line per template: how the answers are found (TRL's training
variant, the template's own markers, or the studio's prefix / sentinel finding) and, per conversation, "ok",
"untrained N" (reply N not trained), "reasoning N" (its reasoning not trained), "split N" (reply N trained with
its reasoning in a sequence of its own, since the template drops earlier reasoning) or "refused" (a row problem).
The test asserts the rules; this prints the table for the notes.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def main() -> None:
    from conftest import build_tokenizer
    from test_template_conformance import CONVERSATIONS, TEMPLATES, WEATHER

    from studio.templates.chat_template import render_messages
    from studio.templates.template_profile import template_profile

    base = build_tokenizer()
    print(f"{'template':<40} {'answers found by':<18} " + " ".join(f"{n[:14]:<14}" for n in CONVERSATIONS))
    for path in TEMPLATES:
        tokenizer = copy.copy(base)
        tokenizer.chat_template = path.read_text(encoding="utf-8")
        profile = template_profile(tokenizer)
        cells = []
        for name, messages in CONVERSATIONS.items():
            r = render_messages(tokenizer, messages, tools=WEATHER if name == "tools" else None)
            cells.append("refused" if r.problem else " ".join(
                [f"untrained {r.untrained}"] * bool(r.untrained) + [f"reasoning {r.reasoning_lost}"] *
                bool(r.reasoning_lost) + [f"split {r.reasoning_split}"] * bool(r.reasoning_split)) or "ok")
        origin = {"trl": "TRL training", "marked": "own markers", "model": "studio"}[profile.origin]
        print(f"{path.stem:<40} {origin:<18} " + " ".join(f"{c:<14}" for c in cells))


if __name__ == "__main__":
    main()
