"""Write ``hps/catalog/data/debian-packages.csv``: what a Debian package is for, from its one-line
description, in twelve topics — a real few-label text classification set.

The source is the package index of Debian 12 ("bookworm", main, amd64) that apt keeps in
``/var/lib/apt/lists``: each package's maintainer wrote its one-line ``Description`` and filed it in a
``Section``. Twelve sections that name what a program is for (admin, database, editors, games, graphics,
mail, math, net, science, sound, text, video) are the labels. Packages that are not programs
(libraries, documentation, development files, data files, plugins, debug symbols, transitional or dummy
packages) are left out by their description; each source package gives one row (the binary package named
like the source, else the first), and a description seen twice is kept once, so no near-duplicate can sit on
both sides of a split. Per label, a fixed-seed draw puts 16 rows in ``train`` (few labels: fine-tuning is
the point), 32 in ``val`` (what the search sees) and 64 in ``test`` (held out: it never steers a search).

The topics overlap (science and math; sound and video; mail and net; editors and text), descriptions
are five to ten words, and 16 examples per class leave a pretrained encoder much to do: accuracy is far
from saturated, and it depends on the optimizer settings (see docs/benchmarks.md).

    python scripts/make_debian_packages.py [--packages PATH] [--output PATH]

The same index gives the same bytes (a test checks the bundled file's shape and balance).
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import re
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

SEED = 20261202
LABELS = (
    "admin", "database", "editors", "games", "graphics", "mail",
    "math", "net", "science", "sound", "text", "video",
)  # fmt: skip
PER_SPLIT = {"train": 16, "val": 32, "test": 64}
DEFAULT_PACKAGES = Path(
    "/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4"
)
DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "hps" / "catalog" / "data" / "debian-packages.csv"
# Descriptions of packages that are parts of programs, not programs: their wording, not their topic,
# would give their section away.
NOT_A_PROGRAM = re.compile(
    r"librar|documentation|development files|debug|transitional|data files|dummy|metapackage|headers"
    r"|plugin|bindings|module for|extension|\(data\)|\(common|common files|arch-independent|shared files",
    re.IGNORECASE,
)


def read_index(path: Path) -> Iterator[dict[str, str]]:
    """The stanzas of a Debian ``Packages`` file (plain or lz4-compressed), as field → value; only the
    first line of multi-line fields is kept."""
    if path.suffix == ".lz4":
        text = subprocess.run(["lz4cat", str(path)], check=True, capture_output=True).stdout.decode()
    else:
        text = path.read_text(encoding="utf-8")
    stanza: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if stanza:
                yield stanza
            stanza = {}
        elif not line[0].isspace():
            field, _, value = line.partition(":")
            stanza[field] = value.strip()
    if stanza:
        yield stanza


def rows_by_label(stanzas: Iterator[dict[str, str]]) -> dict[str, list[str]]:
    """One description per source package, per wanted section, duplicates and non-programs dropped."""
    chosen: dict[tuple[str, str], tuple[bool, str]] = {}
    for stanza in stanzas:
        section, description = stanza.get("Section", ""), stanza.get("Description", "")
        if section not in LABELS or not description or NOT_A_PROGRAM.search(description):
            continue
        source = stanza.get("Source", stanza["Package"]).split()[0]
        named_like_source = stanza["Package"] == source
        key = (section, source)
        if key not in chosen or (named_like_source and not chosen[key][0]):
            chosen[key] = (named_like_source, description)
    by_label: dict[str, list[str]] = defaultdict(list)
    seen: set[str] = set()
    for (section, _), (_, description) in sorted(chosen.items()):
        folded = description.casefold()
        if folded not in seen:
            seen.add(folded)
            by_label[section].append(description)
    return by_label


def render(by_label: dict[str, list[str]]) -> str:
    """The CSV text: ``text,label,split``, rows in a seeded order."""
    rng = random.Random(SEED)
    rows: list[tuple[str, str, str]] = []
    needed = sum(PER_SPLIT.values())
    for label in LABELS:
        descriptions = by_label.get(label, [])
        if len(descriptions) < needed:
            raise SystemExit(f"section {label} has {len(descriptions)} usable packages; {needed} needed")
        drawn = rng.sample(descriptions, needed)
        start = 0
        for split, count in PER_SPLIT.items():
            rows.extend((text, label, split) for text in drawn[start : start + count])
            start += count
    rng.shuffle(rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["text", "label", "split"])
    writer.writerows(rows)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=Path, default=DEFAULT_PACKAGES)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    text = render(rows_by_label(read_index(args.packages)))
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output} ({text.count(chr(10)) - 1} rows)")


if __name__ == "__main__":
    main()
