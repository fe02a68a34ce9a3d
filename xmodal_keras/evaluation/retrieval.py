"""Cross-modal retrieval recall@K from embeddings (several captions per image allowed).

Image->text: a query image hits at K when *any* of its captions is among the K texts
most similar to it. Text->image: a query caption hits at K when its own image is among
the K most similar images. Similarity is the dot product (cosine for L2-normalised
embeddings); ties are broken against the query (a tied wrong item ranks first), so a
constant model scores no better than chance.

Example:

>>> import numpy as np
>>> images = np.eye(3, dtype="float32")
>>> texts = np.eye(3, dtype="float32")[[0, 0, 1, 2]]
>>> recall = retrieval_recall(images, texts, caption_image_index=[0, 0, 1, 2], ks=(1,))
>>> recall["image_to_text_recall@1"], recall["text_to_image_recall@1"]
(1.0, 1.0)
"""

from collections.abc import Sequence

import numpy as np

DEFAULT_KS: tuple[int, ...] = (1, 5, 10)


def _as_matrix(name: str, value) -> np.ndarray:
    array = np.asarray(value, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(
            f"`{name}` must be a non-empty [count, dim] array. Received: {name}.shape={array.shape}"
        )
    return array


def _hit_ranks(similarity: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """Rank (0-based) of the best positive of each row; ties count against the query."""
    best_positive = np.where(positive, similarity, -np.inf).max(axis=1)
    negatives_at_least = np.where(positive, False, similarity >= best_positive[:, None])
    return negatives_at_least.sum(axis=1)


def retrieval_recall(
    image_embeddings,
    text_embeddings,
    caption_image_index: Sequence[int],
    *,
    ks: Sequence[int] = DEFAULT_KS,
    chunk_size: int = 1024,
) -> dict[str, float]:
    """Recall@K image->text and text->image, plus the mean of them all (`"mean_recall"`).

    Args:
        image_embeddings: `[num_images, dim]`.
        text_embeddings: `[num_captions, dim]`.
        caption_image_index: for each caption, the row of its image in
            `image_embeddings` (`[num_captions]` ints).
        ks: the K values. Defaults to `(1, 5, 10)`.
        chunk_size: query rows scored at once (bounds memory). Defaults to 1024.

    Returns:
        `{"image_to_text_recall@K": float, "text_to_image_recall@K": float, ...,
        "mean_recall": float}` with values in [0, 1].
    """
    images = _as_matrix("image_embeddings", image_embeddings)
    texts = _as_matrix("text_embeddings", text_embeddings)
    if images.shape[1] != texts.shape[1]:
        raise ValueError(
            "Image and text embeddings must have the same dim. Received: "
            f"image_embeddings.shape={images.shape}, text_embeddings.shape={texts.shape}"
        )
    owner = np.asarray(caption_image_index)
    if (
        owner.shape != (texts.shape[0],)
        or not np.issubdtype(owner.dtype, np.integer)
        or owner.min() < 0
        or owner.max() >= images.shape[0]
    ):
        raise ValueError(
            "`caption_image_index` must give one image row in [0, num_images) per caption. "
            f"Received: caption_image_index with shape {owner.shape}, dtype {owner.dtype} "
            f"for {texts.shape[0]} captions and {images.shape[0]} images"
        )
    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
        raise ValueError(f"`ks` must be positive ints. Received: ks={ks!r}")
    if not np.all(np.isin(np.arange(images.shape[0]), owner)):
        missing = np.setdiff1d(np.arange(images.shape[0]), owner)[:5].tolist()
        raise ValueError(f"Every image needs a caption. Received: no caption for images {missing}")

    image_ranks = np.concatenate(
        [
            _hit_ranks(
                images[start : start + chunk_size] @ texts.T,
                owner[None, :] == np.arange(start, min(start + chunk_size, len(images)))[:, None],
            )
            for start in range(0, len(images), chunk_size)
        ]
    )
    text_ranks = np.concatenate(
        [
            _hit_ranks(
                texts[start : start + chunk_size] @ images.T,
                owner[start : start + chunk_size, None] == np.arange(len(images))[None, :],
            )
            for start in range(0, len(texts), chunk_size)
        ]
    )
    result = {}
    for k in ks:
        result[f"image_to_text_recall@{k}"] = float(np.mean(image_ranks < k))
    for k in ks:
        result[f"text_to_image_recall@{k}"] = float(np.mean(text_ranks < k))
    result["mean_recall"] = float(np.mean(list(result.values())))
    return result
