"""COCO-standard caption metrics (BLEU-1..4, METEOR, ROUGE-L, CIDEr-D) via pycocoevalcap.

`compute_caption_metrics` runs the same pipeline as pycocoevalcap's `COCOEvalCap.evaluate`
(minus SPICE, which downloads Stanford models): tokenise references and candidates, then
score them with pycocoevalcap's `Bleu(4)`, `Meteor()`, `Rouge()` and `Cider()`.

- **BLEU** is corpus-level (n-gram counts summed over all images, "closest" reference length
  for the brevity penalty), not the mean of per-image scores. pycocoevalcap adds 1e-15 /
  1e-9 to every ratio to avoid dividing by zero, so a perfect candidate scores a hair
  *below* 1 (1 - ~1e-10), and BLEU-n with no matching n-gram is tiny but not 0 (~1e-5).
- **CIDEr**: pycocoevalcap's `Cider` class *is* CIDEr-D (Vedantam et al. 2015, §5): no
  stemming, n-gram tf-idf vectors with clipped candidate counts, a Gaussian length penalty
  (sigma = 6) and the x10 scale, averaged over n = 1..4 and the references. Its idf comes
  from the references of the images being scored (CIDEr-D's "corpus" mode), so the score of
  one image depends on the other images in the call, and a call with one image scores 0
  (log 1 = 0 idf).
- **ROUGE-L** is the mean over images of the best-reference LCS F-measure (beta = 1.2).
- **METEOR 1.5** runs in a Java process (`meteor-1.5.jar`; loading its paraphrase table takes
  ~15 s). The process is started on first use and reused by later calls in the same Python
  process (guarded by a lock, restarted if it died, killed by `close_meteor()` or at exit),
  so only the first call pays the start-up. Without Java, METEOR is NaN (with a logged
  warning), never 0.

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

>>> references = {"1": ["A dog runs on the grass.", "A brown dog running."],
...               "2": ["A cat sits on a mat.", "The cat is sitting."]}
>>> candidates = {"1": "a dog runs on grass", "2": "a dog sits on the mat"}
>>> scores = compute_caption_metrics(
...     references, candidates, tokenizer="simple", metrics=("bleu", "rouge_l")
... )
>>> sorted(scores)
['bleu_1', 'bleu_2', 'bleu_3', 'bleu_4', 'rouge_l']
>>> round(scores["bleu_1"], 4), round(scores["bleu_4"], 4)  # 10 of 11 words right
(0.9091, 0.3898)
>>> tokenize_captions(["A man's dog (brown), running!"], tokenizer="simple")
["a man 's dog -lrb- brown -rrb- running"]
"""

import atexit
import collections
import json
import logging
import math
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer import ptbtokenizer

from xmodal_keras.atomic_files import atomic_write_text

logger = logging.getLogger(__name__)

TOKENIZERS = ("auto", "ptb", "simple")
METRIC_GROUPS = ("bleu", "meteor", "rouge_l", "cider")
METRIC_KEYS = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider")

# The tokens pycocoevalcap's PTBTokenizer drops after tokenising (kept in sync by import).
PTB_PUNCTUATIONS = frozenset(ptbtokenizer.PUNCTUATIONS)
_PTB_JAR = pathlib.Path(ptbtokenizer.__file__).with_name(ptbtokenizer.STANFORD_CORENLP_3_4_1_JAR)
_PTB_TIMEOUT_S = 600
_MAX_LISTED_IDS = 5


def java_available() -> bool:
    """Whether a `java` executable is on PATH (needed by the PTB tokenizer and METEOR)."""
    return shutil.which("java") is not None


# ---------------------------------------------------------------------------------------
# Tokenisation
# ---------------------------------------------------------------------------------------

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


def _resolve_tokenizer(tokenizer: str) -> str:
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
    kind = _resolve_tokenizer(tokenizer)
    if kind == "ptb":
        return _ptb_tokenize(list(texts))
    return [simple_tokenize(text) for text in texts]


# ---------------------------------------------------------------------------------------
# METEOR: one reusable Java process
# ---------------------------------------------------------------------------------------


class _OwnedMeteor(Meteor):
    """pycocoevalcap's `Meteor`, closed explicitly by `_MeteorServer` instead of `__del__`.

    pycocoevalcap's `__del__` takes the scorer's lock (it deadlocks when a failed
    `compute_score` left the lock held) and kills the process even from a forked child that
    only inherited the object. Here closing is explicit and only the owning process does it.
    """

    def __del__(self) -> None:
        pass


class _MeteorServer:
    """Owns one METEOR 1.5 Java process, shared by all calls in this Python process."""

    # Generous: 10 min for the JVM start + paraphrase table, then 50 ms a caption.
    START_TIMEOUT_S = 600.0
    TIMEOUT_S_PER_IMAGE = 0.05

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._meteor: _OwnedMeteor | None = None
        self._owner_pid: int | None = None
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        self._stderr_thread: threading.Thread | None = None
        self._atexit_registered = False

    def score(self, gts: dict[Any, list[str]], res: dict[Any, list[str]]) -> float:
        with self._lock:
            meteor = self._ensure_started()
            process = meteor.meteor_p
            timed_out = threading.Event()

            def kill_on_timeout() -> None:
                timed_out.set()
                process.kill()

            timeout = self.START_TIMEOUT_S + self.TIMEOUT_S_PER_IMAGE * len(gts)
            timer = threading.Timer(timeout, kill_on_timeout)
            timer.daemon = True
            timer.start()
            try:
                score, _ = meteor.compute_score(gts, res)
            except Exception as error:
                stderr = " | ".join(self._stderr_tail)
                self._close_locked()
                reason = f"timed out after {timeout:.0f} s" if timed_out.is_set() else "failed"
                raise RuntimeError(
                    f"METEOR (java -jar meteor-1.5.jar) {reason}: {error!r}. Java stderr: "
                    f"{stderr or '(empty)'}"
                ) from error
            finally:
                timer.cancel()
            return float(score)

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _ensure_started(self) -> _OwnedMeteor:
        meteor = self._meteor
        if meteor is not None and self._owner_pid != os.getpid():
            # Forked child: the process belongs to the parent. Forget it without killing it.
            for stream in (meteor.meteor_p.stdin, meteor.meteor_p.stdout, meteor.meteor_p.stderr):
                stream.close()
            meteor.meteor_p.returncode = -1  # never signal or reap the parent's child
            self._meteor = meteor = None
        if meteor is not None and meteor.meteor_p.poll() is not None:
            self._close_locked()  # died: restart it
            meteor = None
        if meteor is None:
            meteor = _OwnedMeteor()
            self._meteor, self._owner_pid = meteor, os.getpid()
            self._stderr_tail.clear()
            # Drain stderr so a chatty JVM can never fill the pipe and block.
            self._stderr_thread = threading.Thread(
                target=self._drain_stderr,
                args=(meteor.meteor_p.stderr,),
                name="meteor-stderr",
                daemon=True,
            )
            self._stderr_thread.start()
            if not self._atexit_registered:
                atexit.register(self.close)
                self._atexit_registered = True
        return meteor

    def _drain_stderr(self, stream) -> None:
        try:
            for line in iter(stream.readline, b""):
                self._stderr_tail.append(line.decode("utf-8", "replace").rstrip())
        except (OSError, ValueError):
            pass

    def _close_locked(self) -> None:
        meteor, self._meteor = self._meteor, None
        if meteor is None:
            return
        process = meteor.meteor_p
        if self._owner_pid == os.getpid():
            try:
                process.stdin.close()
            except OSError:
                pass
            process.kill()
            process.wait()
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=5)
            self._stderr_thread = None
        process.stdout.close()
        process.stderr.close()


_METEOR = _MeteorServer()


def close_meteor() -> None:
    """Stop the shared METEOR Java process (frees its ~1-2 GB); the next call restarts it.

    Example:

    >>> close_meteor()
    """
    _METEOR.close()


# ---------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------


def _first_ids(ids: Iterable[Any]) -> str:
    ids = sorted(ids, key=str)
    listed = ", ".join(repr(i) for i in ids[:_MAX_LISTED_IDS])
    more = f", ... ({len(ids)} in all)" if len(ids) > _MAX_LISTED_IDS else ""
    return f"[{listed}{more}]"


def _validate_inputs(references: Any, candidates: Any) -> None:
    if not isinstance(references, Mapping) or not isinstance(candidates, Mapping):
        raise ValueError(
            "`references` must be a dict image_id -> list of reference captions and "
            "`candidates` a dict image_id -> generated caption. Received: "
            f"references of type {type(references).__name__}, "
            f"candidates of type {type(candidates).__name__}"
        )
    if not references:
        raise ValueError(
            "`references` and `candidates` must hold at least one image. Received: "
            f"{len(references)} reference ids and {len(candidates)} candidate ids"
        )
    missing = references.keys() - candidates.keys()
    extra = candidates.keys() - references.keys()
    if missing or extra:
        parts = []
        if missing:
            parts.append(
                f"{len(missing)} ids have references but no candidate: {_first_ids(missing)}"
            )
        if extra:
            parts.append(
                f"{len(extra)} ids have a candidate but no references: {_first_ids(extra)}"
            )
        raise ValueError(
            "`references` and `candidates` must have the same image ids; "
            + "; ".join(parts)
            + f". Received: {len(references)} reference ids and {len(candidates)} candidate ids"
        )
    for image_id, refs in references.items():
        if isinstance(refs, str) or not isinstance(refs, Sequence) or not refs:
            raise ValueError(
                f"references[{image_id!r}] must be a non-empty list of caption strings. "
                f"Received: {refs!r}"
            )
        for ref in refs:
            if not isinstance(ref, str):
                raise ValueError(
                    f"references[{image_id!r}] must hold only strings. Received: "
                    f"{ref!r} of type {type(ref).__name__}"
                )
    for image_id, candidate in candidates.items():
        if not isinstance(candidate, str):
            raise ValueError(
                f"candidates[{image_id!r}] must be one caption string. Received: "
                f"{candidate!r} of type {type(candidate).__name__}"
            )


def _validate_metric_groups(metrics: Sequence[str]) -> tuple[str, ...]:
    if isinstance(metrics, str):
        metrics = (metrics,)
    unknown = [m for m in metrics if m not in METRIC_GROUPS]
    if unknown or not metrics:
        raise ValueError(
            f"`metrics` must be a non-empty subset of {METRIC_GROUPS}. Received: {metrics=!r}"
        )
    return tuple(m for m in METRIC_GROUPS if m in metrics)


def compute_caption_metrics(
    references: Mapping[str, Sequence[str]],
    candidates: Mapping[str, str],
    *,
    tokenizer: str = "auto",
    metrics: Sequence[str] = METRIC_GROUPS,
) -> dict[str, float]:
    """Score generated captions against references with the COCO caption metrics.

    Args:
        references: image id -> non-empty list of reference captions (raw text).
        candidates: image id -> the one generated caption (raw text; may be empty). Must
            have exactly the ids of `references`.
        tokenizer: `"ptb"`, `"simple"` or `"auto"` (PTB when `java` is on PATH); see the
            module docstring. Defaults to `"auto"`.
        metrics: which of `"bleu"` (BLEU-1..4), `"meteor"`, `"rouge_l"`, `"cider"` to compute;
            e.g. `("bleu", "cider")` skips METEOR's Java start-up. Defaults to all four.

    Returns:
        A dict with the keys of the requested metrics among `"bleu_1"` .. `"bleu_4"`,
        `"meteor"`, `"rouge_l"`, `"cider"` (CIDEr-D), as Python floats. `"meteor"` is NaN
        when Java is not available.

    Example:

    >>> refs = {"a": ["a red circle", "a small red circle"], "b": ["a blue square"]}
    >>> cands = {"a": "a red circle", "b": "a blue square"}
    >>> scores = compute_caption_metrics(refs, cands, tokenizer="simple", metrics=("rouge_l",))
    >>> scores
    {'rouge_l': 1.0}
    """
    _validate_inputs(references, candidates)
    groups = _validate_metric_groups(metrics)
    kind = _resolve_tokenizer(tokenizer)

    image_ids = list(references)
    flat = [ref for image_id in image_ids for ref in references[image_id]]
    flat += [candidates[image_id] for image_id in image_ids]
    tokens = tokenize_captions(flat, tokenizer=kind)
    gts: dict[Any, list[str]] = {}
    position = 0
    for image_id in image_ids:
        count = len(references[image_id])
        gts[image_id] = tokens[position : position + count]
        position += count
    res = {image_id: [tokens[position + i]] for i, image_id in enumerate(image_ids)}

    scores: dict[str, float] = {}
    if "bleu" in groups:
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)  # verbose=0: no prints
        scores.update({f"bleu_{n}": float(value) for n, value in enumerate(bleu, start=1)})
    if "meteor" in groups:
        if java_available():
            scores["meteor"] = _METEOR.score(gts, res)
        else:
            logger.warning(
                "METEOR needs Java (`java` on PATH) and none was found: reporting "
                "meteor=NaN. Install a JRE (e.g. `apt-get install default-jre-headless`)."
            )
            scores["meteor"] = math.nan
    if "rouge_l" in groups:
        scores["rouge_l"] = float(Rouge().compute_score(gts, res)[0])
    if "cider" in groups:
        scores["cider"] = float(Cider().compute_score(gts, res)[0])
    return scores


# ---------------------------------------------------------------------------------------
# Writing results
# ---------------------------------------------------------------------------------------


def _caption_row(index: int, row: Any) -> dict[str, Any]:
    def bad(expected: str) -> ValueError:
        return ValueError(f"rows[{index}] {expected}. Received: {row!r}")

    if not isinstance(row, Mapping):
        raise bad("must be a dict with 'image_id', 'generated', 'references'")
    for key in ("image_id", "generated", "references"):
        if key not in row:
            raise bad(f"has no {key!r} key")
    out: dict[str, Any] = {"image_id": row["image_id"]}
    if not isinstance(row["image_id"], str | int) or isinstance(row["image_id"], bool):
        raise bad("'image_id' must be a string or an int")
    if row.get("image_path") is not None:
        if not isinstance(row["image_path"], str | os.PathLike):
            raise bad("'image_path' must be a path string")
        out["image_path"] = os.fspath(row["image_path"])
    if not isinstance(row["generated"], str):
        raise bad("'generated' must be a string")
    refs = row["references"]
    if isinstance(refs, str) or not isinstance(refs, Sequence):
        raise bad("'references' must be a list of strings")
    if not all(isinstance(ref, str) for ref in refs):
        raise bad("'references' must hold only strings")
    out["generated"] = row["generated"]
    out["references"] = list(refs)
    return out


def write_caption_results(
    out_dir: str | os.PathLike,
    metrics: Mapping[str, float],
    rows: Iterable[Mapping[str, Any]],
) -> dict[str, pathlib.Path]:
    """Write `metrics.json` and `captions.jsonl` into `out_dir`, each atomically.

    `metrics.json` has sorted keys and indent 2; NaN (e.g. METEOR without Java) is written
    as `null` so the file stays strict JSON. `captions.jsonl` has one object per row, in
    order: `{"image_id", "image_path" (if given), "generated", "references"}`. Each file is
    written atomically (`atomic_write_text`), so a reader never sees half a file.

    Args:
        out_dir: directory (created if missing).
        metrics: metric name -> value, e.g. from `compute_caption_metrics`.
        rows: dicts with `image_id` (str or int), `generated` (str), `references` (list of
            str) and optionally `image_path`.

    Returns:
        `{"metrics": path of metrics.json, "captions": path of captions.jsonl}`.

    Example:

    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> paths = write_caption_results(
    ...     out, {"bleu_4": 0.5}, [{"image_id": "1", "generated": "a dog", "references": ["a dog"]}]
    ... )
    >>> print(paths["captions"].read_text(), end="")
    {"image_id": "1", "generated": "a dog", "references": ["a dog"]}
    """
    out = pathlib.Path(out_dir)
    clean_metrics: dict[str, float | None] = {}
    for name, value in metrics.items():
        if not isinstance(name, str) or isinstance(value, bool):
            raise ValueError(f"`metrics` must map names to numbers. Received: {name!r}: {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"`metrics` must map names to numbers. Received: {name!r}: {value!r}"
            ) from None
        clean_metrics[name] = None if math.isnan(number) else number
    lines = [
        json.dumps(_caption_row(index, row), ensure_ascii=False, allow_nan=False)
        for index, row in enumerate(rows)
    ]
    out.mkdir(parents=True, exist_ok=True)
    metrics_path, captions_path = out / "metrics.json", out / "captions.jsonl"
    atomic_write_text(
        metrics_path, json.dumps(clean_metrics, sort_keys=True, indent=2, allow_nan=False) + "\n"
    )
    atomic_write_text(captions_path, "".join(line + "\n" for line in lines))
    return {"metrics": metrics_path, "captions": captions_path}
