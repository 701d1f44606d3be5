"""Write the two corpora of the built-in ``causal-lm`` task into ``hps/catalog/data``:

``python-docstrings.txt`` — the pretraining corpus: prose paragraphs from the docstrings of the Python
standard library's public modules, classes and functions, read with ``ast`` from the installed standard
library's source (nothing is imported, so no module's side effects run). Paragraphs are separated by a blank
line; code examples (``>>>`` lines, indented blocks) and very short paragraphs are left out, each paragraph is
kept once, and the file stops at :data:`PRETRAIN_BYTES`.

``debian-descriptions.jsonl`` — the fine-tuning dataset: the one-line package descriptions of
``debian-packages.csv`` (Debian 12's package index, see ``make_debian_packages.py``) as ``{"text", "split"}``
records, split 70/15/15 into train, val and test with a fixed seed. A different domain from the
pretraining corpus (terse package blurbs rather than API prose), so fine-tuning has something to adapt to.

Why these: both ship inside hps, so every machine pretrains and fine-tunes on the same bytes, offline; the
docstrings are a snapshot (the standard library's text changes between Python versions, so reading it at
run time would make the built-in model differ from machine to machine).

    python scripts/make_causal_lm_data.py [--stdlib PATH] [--output-dir PATH]

The same standard library and CSV give the same bytes.
"""

from __future__ import annotations

import argparse
import ast
import csv
import inspect
import json
import random
import re
import sysconfig
from collections.abc import Iterator
from pathlib import Path

SEED = 20261203
PRETRAIN_BYTES = 400_000
MIN_PARAGRAPH = 60
SPLITS = (("train", 0.70), ("val", 0.15), ("test", 0.15))
DATA = Path(__file__).resolve().parent.parent / "hps" / "catalog" / "data"
# Packages of the standard library that are tools, tests or GUI demos rather than library prose.
SKIPPED = re.compile(r"^(test|idlelib|lib2to3|tkinter|turtledemo|ensurepip|pydoc_data|site-packages|__)")


def stdlib_sources(stdlib: Path) -> Iterator[Path]:
    """The public ``.py`` files of the standard library, in sorted order."""
    for path in sorted(stdlib.rglob("*.py")):
        parts = path.relative_to(stdlib).parts
        if SKIPPED.match(parts[0]) or any(part.startswith("_") and part != "__init__.py" for part in parts):
            continue
        yield path


def docstrings(source: Path) -> Iterator[str]:
    """The module's docstring, then those of its public classes and functions, in file order."""
    try:
        tree = ast.parse(source.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return
    nodes: list[ast.AST] = [tree]
    for node in ast.walk(tree):
        if isinstance(
            node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
        ) and not node.name.startswith("_"):
            nodes.append(node)
    for node in nodes:
        text = ast.get_docstring(node, clean=False)  # type: ignore[arg-type]
        if text:
            yield inspect.cleandoc(text)


def prose_paragraphs(docstring: str) -> Iterator[str]:
    """Paragraphs of running text, each joined onto one line; code and lists are left out."""
    for block in re.split(r"\n\s*\n", docstring):
        lines = block.splitlines()
        if any(line.startswith((" ", "\t", ">>>", "...", "-", "*", ":")) for line in lines):
            continue
        paragraph = " ".join(line.strip() for line in lines)
        if len(paragraph) >= MIN_PARAGRAPH and paragraph.isascii() and paragraph[-1] in ".:;)?!":
            yield paragraph


def pretraining_corpus(stdlib: Path) -> str:
    seen: set[str] = set()
    paragraphs: list[str] = []
    size = 0
    for source in stdlib_sources(stdlib):
        for docstring in docstrings(source):
            for paragraph in prose_paragraphs(docstring):
                if paragraph in seen:
                    continue
                if size + len(paragraph) + 2 > PRETRAIN_BYTES:
                    return "\n\n".join(paragraphs) + "\n"
                seen.add(paragraph)
                paragraphs.append(paragraph)
                size += len(paragraph) + 2
    return "\n\n".join(paragraphs) + "\n"


def fine_tuning_records(csv_path: Path) -> str:
    with csv_path.open(newline="", encoding="utf-8") as file:
        texts = sorted({row["text"] for row in csv.DictReader(file)})
    random.Random(SEED).shuffle(texts)
    lines = []
    start = 0
    for index, (split, fraction) in enumerate(SPLITS):
        end = len(texts) if index == len(SPLITS) - 1 else start + round(len(texts) * fraction)
        lines += [json.dumps({"text": text, "split": split}) for text in texts[start:end]]
        start = end
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stdlib", type=Path, default=Path(sysconfig.get_paths()["stdlib"]))
    parser.add_argument("--output-dir", type=Path, default=DATA)
    args = parser.parse_args()
    corpus = pretraining_corpus(args.stdlib)
    (args.output_dir / "python-docstrings.txt").write_text(corpus, encoding="utf-8")
    records = fine_tuning_records(DATA / "debian-packages.csv")
    (args.output_dir / "debian-descriptions.jsonl").write_text(records, encoding="utf-8")
    paragraphs = corpus.count("\n\n") + 1
    print(f"wrote {paragraphs} paragraphs ({len(corpus)} bytes) and {records.count(chr(10))} records")


if __name__ == "__main__":
    main()
