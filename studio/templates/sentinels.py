"""Sentinel finding: where a reply lies in a rendering when the template breaks the prefix property (the studio's
own; no library covers it). Every message's text is replaced by a unique marker, the reply is found by its
marker, and the markers are mapped back onto the real text. See chat_template.py for where this is used."""

from __future__ import annotations

import bisect
import functools
import re

SENTINEL = "QZX{}XZQ"  # plain letters: templates strip, split and tojson content, and must leave this alone
SENTINEL_RE = re.compile(r"QZX(\d+)XZQ")


def _with_sentinels(messages: list[dict]) -> tuple[list[dict], dict[int, str]]:
    """Every non-empty content and reasoning replaced by a numbered marker; the markers' original texts."""
    out, originals = [], {}
    for m in messages:
        m = dict(m)
        for key in ("content", "reasoning_content"):
            if isinstance(m.get(key), str) and m[key]:
                originals[len(originals)] = m[key]
                m[key] = SENTINEL.format(len(originals) - 1)
        out.append(m)
    return out, originals


def sentinel_spans(profile, messages, tools, broken: list[int], full: str):
    """({reply index: span in `full`}, [reply indices whose reasoning the template drops])."""
    marked, originals = _with_sentinels(messages)
    render = functools.partial(profile.render, tools=tools)
    whole = render(marked)
    to_real = _sentinel_map(whole, full, originals)
    if to_real is None:  # the real text is not the marked one with the texts put back: nothing can be isolated
        return {}, []
    spans, lost = {}, []
    for i in broken:
        prompt, upto = render(marked[:i], add_generation_prompt=True), render(marked[: i + 1])
        reply = upto[_common_prefix(prompt, upto):]  # the reply as the template writes a last turn
        located = _locate(reply, whole, marked, i)
        if located is None:
            continue
        (begin, end), reasoning_kept = located
        spans[i] = (to_real(begin), to_real(end))
        if marked[i].get("reasoning_content") and not reasoning_kept:
            lost.append(i)
    return spans, lost


def _locate(reply: str, whole: str, marked: list[dict], i: int):
    """Where the reply lies in the whole marked rendering: ((begin, end), whether its reasoning is inside), or
    None. The reply is anchored on its content marker; what the template writes before it (reasoning, tool calls)
    counts only where it stands whole right before the marker, and what follows (tool calls, end-of-turn) as far
    as the whole rendering agrees."""
    content = marked[i].get("content")
    anchor = content if content and SENTINEL_RE.fullmatch(content) else None
    if anchor is None or anchor not in reply or anchor not in whole:
        begin = _window_find(reply, whole, marked, i)
        return None if begin is None else ((begin, begin + len(reply)), True)
    before, after = reply.split(anchor, 1)
    at = whole.index(anchor)
    begin = at - len(before) if whole[:at].endswith(before) else at
    tail = at + len(anchor)
    end = tail + _common_prefix(after, whole[tail:])
    reasoning = marked[i].get("reasoning_content")
    return (begin, end), bool(reasoning) and reasoning in whole[begin:end]


def _window_find(reply: str, whole: str, marked: list[dict], i: int) -> int | None:
    """A reply without a content marker (a tool call only) between the markers of the messages around it."""
    before = [SENTINEL_RE.search(m.get("content") or "") for m in marked[:i]]
    after = [SENTINEL_RE.search(m.get("content") or "") for m in marked[i + 1:]]
    start = max((whole.find(s.group()) + len(s.group()) for s in before if s and s.group() in whole), default=0)
    stop = min((whole.find(s.group()) for s in after if s and s.group() in whole), default=len(whole))
    found = whole.find(reply, start, stop) if reply else -1
    return None if found < 0 else found


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _sentinel_map(marked: str, real: str, originals: dict[int, str]):
    """A function from positions in the marked rendering (outside markers) to positions in the real one, or None
    where the two are not the same text around the markers. A template may trim what it renders."""
    pieces = SENTINEL_RE.split(marked)  # [text, id, text, id, ..., text]
    breaks, at_marked, at_real = [], 0, 0  # (where a stretch of plain text starts in each rendering)
    for j in range(0, len(pieces), 2):
        segment = pieces[j]
        if not real.startswith(segment, at_real):
            return None
        breaks.append((at_marked, at_real))
        at_marked, at_real = at_marked + len(segment), at_real + len(segment)
        if j + 1 == len(pieces):
            break
        original, following = originals[int(pieces[j + 1])], pieces[j + 2]
        for shown in (original, original.strip(), original.lstrip(), original.rstrip()):
            if real.startswith(shown, at_real) and real.startswith(following, at_real + len(shown)):
                break
        else:
            return None
        at_marked, at_real = at_marked + len(SENTINEL.format(pieces[j + 1])), at_real + len(shown)
    if at_real != len(real):
        return None
    starts = [b[0] for b in breaks]

    def to_real(position: int) -> int:
        k = bisect.bisect_right(starts, position) - 1
        return breaks[k][1] + position - breaks[k][0]
    return to_real
