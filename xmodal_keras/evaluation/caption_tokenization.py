"""Caption tokenisation for the COCO metrics: Stanford PTB (the standard) or a Python fallback.

Tokenisation (``tokenizer=``):

- ``"ptb"``: the COCO standard: Stanford CoreNLP 3.4.1's `PTBTokenizer` (the jar shipped in
  pycocoevalcap; needs Java) with ``-preserveLines -lowerCase``, then pycocoevalcap's
  punctuation tokens are dropped. We run the jar ourselves with the same flags (a temp
  file outside site-packages, line breaks inside a caption turned into spaces, and the
  output line count checked), because pycocoevalcap's wrapper writes into its install
  directory and silently misaligns captions when one contains ``\\r``, ``\\f``, ``\\v`` or
  ``\\u2028`` (Java reads those as line breaks).
- ``"simple"``: a pure-Python fallback that mimics PTB on ordinary English: lowercase,
  split off punctuation (runs of ``!``/``?``, ``...``, ``--``), clitics (``dog's`` ->
  ``dog 's``, ``can't`` -> ``ca n't``) and symbols (``%``, ``$``, ``&``, ``+``), keep hyphenated
  words, numbers (``3.5``, ``1,000``) and abbreviations (``u.s.a.``, ``mr.``) whole, write
  brackets as PTB does (``-lrb-`` ..., which PTB's lowercasing keeps out of the removal
  list, so they stay in COCO scores), then drop the same punctuation tokens.
  Rare forms can still differ (``'tis``, ``<tag>``, ``lemme``).
- ``"auto"`` (default): ``"ptb"`` when ``java`` is on PATH, else ``"simple"``.

Example:

>>> tokenize_captions(["A man's dog (brown), running!"], tokenizer="simple")
["a man 's dog -lrb- brown -rrb- running"]
"""

import os
import pathlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence

from pycocoevalcap.tokenizer import ptbtokenizer

TOKENIZERS = ("auto", "ptb", "simple")


# The tokens pycocoevalcap's PTBTokenizer drops after tokenising (kept in sync by import).
PTB_PUNCTUATIONS = frozenset(ptbtokenizer.PUNCTUATIONS)


_PTB_JAR = pathlib.Path(ptbtokenizer.__file__).with_name(ptbtokenizer.STANFORD_CORENLP_3_4_1_JAR)


_PTB_TIMEOUT_S = 600


def java_available() -> bool:
    """Whether a `java` executable is on PATH (needed by the PTB tokenizer and METEOR)."""
    return shutil.which("java") is not None


# Characters PTB rewrites, applied before splitting (PTB 3.4.1 output, lowercased).
_SIMPLE_REPLACEMENTS = {
    "(": " -lrb- ",
    ")": " -rrb- ",
    "[": " -lsb- ",
    "]": " -rsb- ",
    "{": " -lcb- ",
    "}": " -rcb- ",
    '"': " '' ",
    "\u201c": " `` ",  # left double quote
    "\u201d": " '' ",  # right double quote
    "\u2018": " ` ",  # left single quote
    "\u2019": "'",  # right single quote / apostrophe
    "\u2014": " -- ",  # em dash
    "\u2013": " -- ",  # en dash
    "\u2026": " ... ",  # ellipsis
    "\u00a3": " # ",  # pound sign (PTB 3.4.1 writes it as #)
    "\u20ac": " $ ",  # euro sign (PTB 3.4.1 writes it as $)
}


_SIMPLE_REPLACE = re.compile("|".join(re.escape(c) for c in _SIMPLE_REPLACEMENTS))


_SPLIT_WORDS = {"cannot": "can not", "gonna": "gon na", "gotta": "got ta", "wanna": "wan na"}


_SPLIT_WORDS_RE = re.compile(r"\b(" + "|".join(_SPLIT_WORDS) + r")\b")


_NEGATION = re.compile(r"(?<=\w)(n't)\b")


_CLITIC = re.compile(r"(?<=\w)('(?:s|re|ve|ll|d|m))\b")


_ABBREVIATIONS = ("mr", "mrs", "ms", "dr", "st", "jr", "sr", "prof", "mt", "vs", "etc", "ft")


_SIMPLE_TOKEN = re.compile(
    r"""
    -(?:lrb|rrb|lsb|rsb|lcb|rcb)-         # brackets, already rewritten
    | `` | ''                              # quotes, already rewritten
    | n't | '(?:s|re|ve|ll|d|m)\b          # clitics, already split off
    | [!?]+ | \.{2,} | -{2,}               # punctuation runs: !!! ?! ... --
    | (?:[^\W\d_]\.){2,}                   # u.s.a. e.g.
    | (?:"""
    + "|".join(_ABBREVIATIONS)
    + r""")\.(?!\w)                        # mr. st. etc.
    | \d+(?:[.,:/]\d+)+(?![-'])            # 3.5 1,000 10:30 1/2, also 3.5kg -> 3.5 kg
    | \w+(?:[-'./]\w+)*                    # words, black-and-white, o'neil, and/or
    | \S                                   # any other single character
    """,
    re.VERBOSE,
)


def simple_tokenize(text: str) -> str:
    """Pure-Python stand-in for the COCO PTB tokenisation of one caption (no Java).

    Lowercases, splits like Stanford's PTBTokenizer on ordinary English and drops the
    punctuation tokens pycocoevalcap drops. Returns space-joined tokens.

    Example:

    >>> print(simple_tokenize("The black-and-white dog can't jump... really!!"))
    the black-and-white dog ca n't jump really !!
    """
    text = _SIMPLE_REPLACE.sub(lambda m: _SIMPLE_REPLACEMENTS[m.group(0)], text.lower())
    text = _SPLIT_WORDS_RE.sub(lambda m: _SPLIT_WORDS[m.group(1)], text)
    text = _CLITIC.sub(r" \1", _NEGATION.sub(r" \1", text))
    tokens = _SIMPLE_TOKEN.findall(text)
    return " ".join(token for token in tokens if token not in PTB_PUNCTUATIONS)


def _ptb_tokenize(texts: Sequence[str]) -> list[str]:
    """Tokenise with Stanford CoreNLP 3.4.1's PTBTokenizer exactly as pycocoevalcap does."""
    if not texts:
        return []
    # Java treats \r, \v, \f, \x1c-\x1e, \x85, \u2028, \u2029 as line breaks too: one caption
    # must stay one line, or every later caption would be shifted.
    lines = [" ".join(text.splitlines()) for text in texts]
    with tempfile.TemporaryDirectory(prefix="xmodal_ptb_") as tmp_dir:
        path = os.path.join(tmp_dir, "captions.txt")
        with open(path, "w", encoding="utf-8", newline="\n") as file:
            file.write("\n".join(lines) + "\n")
        command = [
            "java",
            "-cp",
            str(_PTB_JAR),
            "edu.stanford.nlp.process.PTBTokenizer",
            "-preserveLines",
            "-lowerCase",
            path,
        ]
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_PTB_TIMEOUT_S,
            check=False,
        )
    if result.returncode != 0:
        raise RuntimeError(
            f"The PTB tokenizer (Java) failed with exit code {result.returncode}: "
            f"{result.stderr.decode('utf-8', 'replace').strip()[-2000:]}"
        )
    output = result.stdout.decode("utf-8").split("\n")
    if output and output[-1] == "":
        output.pop()  # the newline after the last line
    if len(output) != len(lines):
        raise RuntimeError(
            f"The PTB tokenizer returned {len(output)} lines for {len(lines)} captions."
        )
    return [
        " ".join(word for word in line.rstrip().split(" ") if word not in PTB_PUNCTUATIONS)
        for line in output
    ]


def resolve_tokenizer(tokenizer: str) -> str:
    if tokenizer not in TOKENIZERS:
        raise ValueError(f"`tokenizer` must be one of {TOKENIZERS}. Received: {tokenizer=!r}")
    if tokenizer == "auto":
        return "ptb" if java_available() else "simple"
    if tokenizer == "ptb" and not java_available():
        raise ValueError(
            "tokenizer='ptb' runs Stanford's PTBTokenizer on Java, but `java` is not on PATH. "
            "Install a JRE (e.g. `apt-get install default-jre-headless`) or pass "
            f"tokenizer='simple' or 'auto'. Received: {tokenizer=!r}"
        )
    return tokenizer


def tokenize_captions(texts: Sequence[str], *, tokenizer: str = "auto") -> list[str]:
    """Tokenise captions the COCO way; returns one space-joined string per caption.

    Args:
        texts: raw captions.
        tokenizer: `"ptb"` (Stanford PTBTokenizer on Java, the COCO standard), `"simple"`
            (pure-Python look-alike) or `"auto"` (PTB when `java` is on PATH). Defaults to
            `"auto"`.

    Example:

    >>> tokenize_captions(["A dog, running!", "Two cats."], tokenizer="simple")
    ['a dog running', 'two cats']
    """
    kind = resolve_tokenizer(tokenizer)
    if kind == "ptb":
        return _ptb_tokenize(list(texts))
    return [simple_tokenize(text) for text in texts]
