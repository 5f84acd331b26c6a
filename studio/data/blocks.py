"""Continued pre-training on long documents: each document (its tokens, ending with the end-of-text token the
template adds) is cut into blocks of the cutoff length at token boundaries, so a 100,000-character article trains
whole instead of being truncated to its first cutoff tokens or refused. A block never holds the end of one
document and the start of the next: documents stay apart (packing, where it is on, lays blocks side by side with
attention kept per block).

Pure functions on token-id lists plus one `datasets` map; no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from studio.core.text import Msg

MIN_BLOCK_TOKENS = 2  # a last block of one token (the end-of-text alone) teaches nothing


def cut(ids: list[int], length: int) -> list[list[int]]:
    """`ids` as consecutive blocks of at most `length` tokens; the concatenation of the blocks is `ids`, except
    for a final block shorter than MIN_BLOCK_TOKENS when there are others."""
    blocks = [ids[start:start + length] for start in range(0, len(ids), max(1, length))]
    if len(blocks) > 1 and len(blocks[-1]) < MIN_BLOCK_TOKENS:
        blocks.pop()
    return blocks


def blocked(dataset, length: int):
    """A tokenised split of text rows with every row longer than `length` cut into blocks (masks cut alike)."""
    def split(batch):
        out = {name: [] for name in batch}
        for index, ids in enumerate(batch["input_ids"]):
            pieces = cut(list(ids), length)
            out["input_ids"].extend(pieces)
            if "assistant_masks" in batch:
                mask = list(batch["assistant_masks"][index])
                out["assistant_masks"].extend(mask[i * length:(i + 1) * length] for i in range(len(pieces)))
        return out

    if dataset is None or all(len(ids) <= length for ids in dataset["input_ids"]):
        return dataset
    return dataset.map(split, batched=True, batch_size=64, remove_columns=dataset.column_names,
                       keep_in_memory=True, desc=None)


@dataclass(frozen=True)
class BlockFigures:
    documents: int
    blocks: int
    tokens: int
    truncated_share: float  # of the tokens, what truncating each document to the cutoff would have kept

    def message(self, cutoff: int) -> Msg:
        return Msg("blocks.summary", documents=self.documents, blocks=self.blocks, tokens=self.tokens,
                   cutoff=cutoff, kept=self.truncated_share)


def figures(token_counts: list[int], length: int) -> BlockFigures:
    """Documents, blocks and tokens for documents of `token_counts` tokens (end-of-text included) at the cutoff."""
    counts = [n for n in token_counts if n > 0]
    blocks = sum(len(cut(range(n), length)) for n in counts) if counts else 0  # type: ignore[arg-type]
    total = sum(counts)
    kept = sum(min(n, length) for n in counts) / total if total else 1.0
    return BlockFigures(len(counts), blocks, total, kept)


CHARS_PER_TOKEN = 3.5  # before any tokenizer is loaded: English text runs at 4, code and Chinese lower


def estimated_blocks(rows: list[dict], length: int) -> int:
    """Blocks the text rows will be cut into, from their characters (the plan runs before tokenising)."""
    per_block = CHARS_PER_TOKEN * max(1, length)
    return sum(max(1, -(-len(row.get("text") or "") // int(per_block))) if "text" in row else 1 for row in rows)
