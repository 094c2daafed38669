"""Text for training and evaluation, split by document into a training part and a held-out part.

About one document in HELDOUT_EVERY is held out, chosen by a hash of its text, so no held-out text is ever
trained on (even where the corpus repeats a document), and the split is the same for every run, idea and
preset that reads the same corpus.

- 'offline-wiki': the shortened English Wikipedia dump and the Lee news corpus that gensim ships
  (about 690k + 74k Gemma tokens), cleaned with gensim's filter_wiki.
- Any other name: a Hugging Face dataset with a 'text' column. Runs have no network (the orchestrator's sandbox),
  so they read the local copy that `prefetch_corpus` wrote into the cache before the run; without one, the
  dataset is streamed from the hub.
"""

import bz2
import hashlib
import itertools
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import torch

from .config import ConfigError

HELDOUT_EVERY = 8
MIN_ARTICLE_CHARS = 2000
SPLITS = ("train", "heldout")


def documents(corpus: str, split: str, cache_dir: Path | None = None) -> Iterator[str]:
    """The documents of one split, in a fixed order."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    if corpus == "offline-wiki":
        source = _offline_documents()
    elif cache_dir is not None and local_copy(corpus, cache_dir).exists():
        source = _local_documents(local_copy(corpus, cache_dir))
    else:
        source = _hub_documents(corpus)
    for text in source:
        if is_heldout(text) == (split == "heldout"):
            yield text


def is_heldout(text: str) -> bool:
    """Split by a hash of the content, so that a document repeated in the corpus lands in one split only."""
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16) % HELDOUT_EVERY == 0


def _offline_documents() -> Iterator[str]:
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki
    from gensim.test.utils import datapath

    wiki = Path(datapath("enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"))
    with bz2.open(wiki, "rt", encoding="utf-8") as dump:
        for _title, markup, _page_id in extract_pages(dump):
            text = _tidy(filter_wiki(markup))
            if len(text) >= MIN_ARTICLE_CHARS:
                yield text
    news = Path(datapath("lee_background.cor"))
    for line in news.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.strip():
            yield line.strip()


def _tidy(text: str) -> str:
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def local_copy(corpus: str, cache_dir: Path) -> Path:
    """Where prefetch_corpus keeps the documents of a hub corpus (JSON lines, one {"text": ...} per document)."""
    return cache_dir / "corpora" / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', corpus)}.jsonl"


def prefetch_corpus(corpus: str, cache_dir: Path, n_chars: int) -> Path:
    """Copy the first documents of a hub corpus, n_chars of text at least, to local_copy; written whole or not at
    all (a temporary file renamed into place), so a run never reads half a copy. Returns the copy's path."""
    target = local_copy(corpus, cache_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.partial")
    have = 0
    with open(partial, "w", encoding="utf-8") as out:
        for text in _hub_documents(corpus):
            out.write(json.dumps({"text": text}) + "\n")
            have += len(text)
            if have >= n_chars:
                break
    os.replace(partial, target)
    return target


def _local_documents(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            yield json.loads(line)["text"]


def _hub_documents(dataset_path: str) -> Iterator[str]:
    from datasets import load_dataset

    try:
        rows = iter(load_dataset(dataset_path, split="train", streaming=True))
        first = next(rows)
    except (OSError, ConnectionError) as err:
        raise ConfigError(
            f"corpus {dataset_path}: could not stream it from the Hugging Face hub ({type(err).__name__}: "
            f"{str(err)[:300]}); without hub access use preset = \"gemma-3-270m\"."
        ) from None
    yield first["text"]
    for row in rows:
        yield row["text"]


def token_rows(corpus: str, split: str, tokenizer, context_length: int, n_tokens: int,
               cache_dir: Path | None = None) -> torch.Tensor:
    """Rows of context_length tokens: BOS, then documents packed one after another, each followed by BOS.

    Every row starts with BOS (Gemma's loss goes from about 3.6 to 5.4 nats without it), and packing wastes
    no compute on padding. Rows are taken until they hold n_tokens text tokens (BOS and padding excluded);
    only the last row may be padded. A corpus that is too small is an error, not a silent shortfall.
    """
    bos, pad = tokenizer.bos_token_id, _pad_id(tokenizer)
    rows, row, have = [], [bos], 0
    for text in documents(corpus, split, cache_dir):
        for token in tokenizer(text, add_special_tokens=False)["input_ids"] + [bos]:
            if len(row) == context_length:
                rows.append(row)
                row = [bos]
            row.append(token)
            have += token != bos
            if have == n_tokens:
                rows.append(row + [pad] * (context_length - len(row)))
                return torch.tensor(rows, dtype=torch.long)
    raise ConfigError(
        f"corpus {corpus!r} split {split!r} has only {have} tokens, fewer than the {n_tokens} asked for; "
        "lower training_tokens (or heldout_tokens) in config.toml or its SAE_* override."
    )


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def heldout_texts(corpus: str, n_docs: int, cache_dir: Path | None = None) -> list[str]:
    """Held-out documents as text, for evaluators (SAEBench) that tokenise for themselves."""
    return list(itertools.islice(documents(corpus, "heldout", cache_dir), n_docs))


def valid_token_mask(tokens: torch.Tensor, tokenizer) -> torch.Tensor:
    """True where a position is a real text token: not BOS and not padding."""
    return (tokens != tokenizer.bos_token_id) & (tokens != _pad_id(tokenizer))
