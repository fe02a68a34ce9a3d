"""WordPiece tokenisation speed: `CoreWordPieceTokenizer` (core TF ops) vs KerasHub's.

Prints sentences per second, in the same run, on the same sentences and vocabulary, for:

- ours: `xmodal_keras.data.CoreWordPieceTokenizer` -- `tf.strings` regexes, character
  tables and a vocabulary `StaticHashTable`, greedy longest match in a `tf.while_loop`:
  what a stock TF Serving graph can run;
- KerasHub: `keras_hub.tokenizers.WordPieceTokenizer` on its tensorflow-text kernels
  (`FastWordpieceTokenize*`, `RegexSplitWithOffsets`, `CaseFoldUTF8`, `NormalizeUTF8`).

Both run inside a `tf.function` with a `[None]` string signature (traced once, warmed up),
at each batch size, for the uncased (`lowercase=True, strip_accents=True`) and cased
settings. The script checks that both give the same ids on every timed batch and exits
with status 1 (after the table) when they do not.

Data: seeded sentences of 8-30 words, mostly English with a share of accented Latin,
Greek, Vietnamese, CJK, digits and punctuation; the vocabulary holds the frequent words,
every character (alone and as a "##" piece) and random word pieces.

Run:

    .venv/bin/python benchmarks/wordpiece.py --batch-sizes 1 256 --seconds 3
"""

import argparse
import random
import sys
import time
import unicodedata

import keras_hub
import tensorflow as tf

from xmodal_keras.data.core_wordpiece_tokenizer import CoreWordPieceTokenizer

WORDS = (
    "the a of and to in is was for on that with as by at from his her it an be this are "
    "which or had not but have were their one all been has there when who its more would "
    "tokenizer serving graph sentence running jumped quickly internationalization model "
    "Keras TensorFlow BERT WordPiece Paris London Tokyo 2024 3.14 1,000 don't U.S. e-mail"
).split()
OTHER = (
    "café naïve Straße São Łódź İstanbul Ångström déjà Καλημέρα ελληνικά Tiếng Việt người "
    "Hà Nội 中文 北京 日本語 한국어 Москва 😀 — « » … ! ? ( ) , . ;"
).split()


def make_sentences(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    sentences = []
    for _ in range(count):
        words = [
            rng.choice(OTHER) if rng.random() < 0.15 else rng.choice(WORDS)
            for _ in range(rng.randrange(8, 31))
        ]
        words[0] = words[0].capitalize()
        sentences.append(" ".join(words) + rng.choice([".", "!", "?", ""]))
    return sentences


def make_vocabulary(sentences: list[str], seed: int) -> list[str]:
    rng = random.Random(seed)
    tokens = {"[PAD]": None, "[UNK]": None, "[CLS]": None, "[SEP]": None}
    words = set()
    for text in sentences:
        stripped = unicodedata.normalize("NFD", text.lower())
        stripped = "".join(c for c in stripped if unicodedata.category(c) != "Mn")
        for form in (text, stripped):
            words.update(form.split())
    for word in sorted(words):
        if rng.random() < 0.6:
            tokens[word] = None
        elif len(word) > 2:
            cut = rng.randrange(1, len(word))
            tokens[word[:cut]] = None
            tokens["##" + word[cut:]] = None
        for char in word:
            tokens[char] = None
            tokens["##" + char] = None
    return list(tokens)


def time_tokenizer(function, batches, seconds: float) -> tuple[float, list]:
    """Sentences per second over at least `seconds` (all batches at least once)."""
    outputs = [function(batch) for batch in batches[:2]]  # warm-up
    done = 0
    start = time.perf_counter()
    outputs = []
    while True:
        for batch in batches:
            outputs.append(function(batch))
            done += int(batch.shape[0])
        if time.perf_counter() - start >= seconds:
            break
    return done / (time.perf_counter() - start), outputs[: len(batches)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 256])
    parser.add_argument("--num-sentences", type=int, default=2048)
    parser.add_argument("--seconds", type=float, default=3.0, help="timed per method and size")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    sentences = make_sentences(args.num_sentences, args.seed)
    vocabulary = make_vocabulary(sentences, args.seed)
    signature = [tf.TensorSpec([None], tf.string)]
    rows, mismatches = [], 0
    for setting, lowercase, strip_accents in (("uncased", True, True), ("cased", False, False)):
        settings = {"lowercase": lowercase, "strip_accents": strip_accents}
        ours = CoreWordPieceTokenizer(vocabulary=vocabulary, **settings)
        theirs = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=vocabulary, **settings)
        functions = {
            "ours (core TF ops)": tf.function(ours, input_signature=signature),
            "KerasHub (tensorflow-text)": tf.function(theirs, input_signature=signature),
        }
        for batch_size in args.batch_sizes:
            batches = [
                tf.constant(sentences[i : i + batch_size])
                for i in range(0, min(len(sentences), 64 * batch_size), batch_size)
            ]
            results = {}
            for name, function in functions.items():
                rate, outputs = time_tokenizer(function, batches, args.seconds)
                results[name] = (rate, [output.to_list() for output in outputs])
            reference = results["KerasHub (tensorflow-text)"]
            for name, (rate, ids) in results.items():
                if ids != reference[1]:
                    mismatches += 1
                    print(f"MISMATCH: {name}, {setting}, batch {batch_size}", file=sys.stderr)
                rows.append((setting, batch_size, name, rate, rate / reference[0]))

    print(f"\n{len(sentences)} sentences, vocabulary of {len(vocabulary)} tokens\n")
    print(
        f"| {'setting':<8} | {'batch':>5} | {'tokenizer':<27} | {'sentences/s':>11} | vs KerasHub |"
    )
    print(f"|{'-' * 10}|{'-' * 7}|{'-' * 29}|{'-' * 13}|{'-' * 13}|")
    for setting, batch_size, name, rate, ratio in rows:
        print(f"| {setting:<8} | {batch_size:>5} | {name:<27} | {rate:>11,.0f} | {ratio:>10.2f}x |")
    if mismatches:
        sys.exit(1)


if __name__ == "__main__":
    main()
