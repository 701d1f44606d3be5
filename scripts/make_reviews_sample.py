"""Write ``workers/tasks/data/reviews-sample.csv``: 400 short product reviews, half positive, half negative.

The reviews come from templates and word lists, drawn with a fixed seed, so running the script again
writes the same bytes (a test checks this). The templates put the same words on both sides ("not good" is
negative, "never had a problem" positive, "looks great but broke" negative), so a model has to read more
than one word to classify them.

    python scripts/make_reviews_sample.py [--output PATH]
"""

from __future__ import annotations

import argparse
import csv
import io
import random
from pathlib import Path

SEED = 20240611
PER_LABEL = 200
DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "hps" / "catalog" / "data" / "reviews-sample.csv"

PRODUCTS = [
    "speaker", "blender", "backpack", "phone case", "desk lamp", "kettle", "rice cooker",
    "coffee grinder", "keyboard", "water bottle", "rain jacket", "vacuum cleaner", "toaster",
    "office chair", "tent", "frying pan", "smart watch", "bike light", "pillow", "board game",
]  # fmt: skip
WORDS: dict[str, list[str]] = {
    "product": PRODUCTS,
    "aspect": [
        "battery", "sound", "build quality", "price", "fit", "instructions", "design", "material",
        "size", "packaging", "handle", "zipper", "screen", "motor", "lid", "strap",
    ],
    "good": ["great", "excellent", "solid", "fantastic", "lovely", "reliable", "sturdy", "comfortable"],
    "bad": ["flimsy", "awful", "cheap", "terrible", "useless", "disappointing", "noisy", "fragile"],
    "plain": ["good", "great", "worth it", "well made", "comfortable", "what I expected"],
    "time": ["a day", "two days", "a week", "three weeks", "a month", "two months"],
    "good_outcome": [
        "I use it every day", "it still works perfectly", "my whole family loves it",
        "I bought a second one", "it does exactly what it promises", "it has held up well",
    ],
    "bad_outcome": [
        "it stopped working", "it fell apart", "I sent it back", "it started leaking",
        "the paint peeled off", "it would not turn on",
    ],
}  # fmt: skip

# Each positive template has a negative twin built from the same words, so no single word decides.
POSITIVE = [
    "The {product} is {good} and {good_outcome}.",
    "Not bad at all, the {aspect} of this {product} is {good}.",
    "I was worried it would be {bad}, but the {product} is {good}.",
    "Never had a problem with this {product}, {good_outcome}.",
    "After {time} {good_outcome}. Would recommend the {product}.",
    "The {aspect} could be better, but overall the {product} is {good}.",
    "Could not be happier with my new {product}.",
    "I did not expect much, yet the {product} turned out {plain}.",
    "Nothing {bad} about it: the {aspect} is {good}.",
    "My old {product} was {bad}; this one is {good}.",
]
NEGATIVE = [
    "The {product} is {bad} and after {time} {bad_outcome}.",
    "Not {plain}, the {aspect} of this {product} is {bad}.",
    "It looks {good}, but after {time} {bad_outcome}.",
    "I would not recommend this {product}, the {aspect} is {bad}.",
    "I wanted to love this {product}, but {bad_outcome}.",
    "The {aspect} is {good}, but the {product} itself is {bad}.",
    "Could not be more disappointed with my new {product}.",
    "I expected something {good}, yet the {product} turned out {bad}.",
    "Nothing {good} about it: the {aspect} is {bad}.",
    "My old {product} was {good}; this one is {bad}.",
]


def _fill(rng: random.Random, template: str) -> str:
    # Every slot is drawn whether the template uses it or not, so each review consumes the random
    # stream the same way and editing one template does not reshuffle all the others.
    slots = {name: words[rng.randrange(len(words))] for name, words in WORDS.items()}
    return template.format(**slots)


def _reviews(rng: random.Random, templates: list[str], count: int) -> list[str]:
    """``count`` distinct reviews, cycling through the templates so that each is used about equally."""
    seen: set[str] = set()
    reviews: list[str] = []
    attempt = 0
    while len(reviews) < count:
        text = _fill(rng, templates[attempt % len(templates)])
        attempt += 1
        if text not in seen:
            seen.add(text)
            reviews.append(text)
    return reviews


def render_csv() -> str:
    """The whole CSV file as text: header ``text,label``, rows shuffled, ``\\n`` line endings."""
    rng = random.Random(SEED)
    rows = [(text, "positive") for text in _reviews(rng, POSITIVE, PER_LABEL)]
    rows += [(text, "negative") for text in _reviews(rng, NEGATIVE, PER_LABEL)]
    rng.shuffle(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["text", "label"])
    writer.writerows(rows)
    return buffer.getvalue()


def main() -> None:
    """Write the CSV to ``--output`` (default: the copy shipped in the package)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    output: Path = args.output
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(render_csv().encode("utf-8"))


if __name__ == "__main__":
    main()
