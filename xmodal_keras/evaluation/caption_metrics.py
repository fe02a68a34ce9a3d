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

Tokenisation (``tokenizer=``: ``"ptb"``, ``"simple"`` or ``"auto"``) is
`caption_tokenization.py`; the METEOR process is `meteor_server.py`.

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
"""

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

from xmodal_keras.evaluation.caption_tokenization import (
    java_available,
    resolve_tokenizer,
    tokenize_captions,
)
from xmodal_keras.evaluation.meteor_server import SHARED_METEOR

logger = logging.getLogger(__name__)


METRIC_GROUPS = ("bleu", "meteor", "rouge_l", "cider")


METRIC_KEYS = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider")


_MAX_LISTED_IDS = 5


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
    kind = resolve_tokenizer(tokenizer)

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
            scores["meteor"] = SHARED_METEOR.score(gts, res)
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
