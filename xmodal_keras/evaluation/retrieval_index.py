"""`RetrievalIndex`: embedded images and captions of a split, for recall@K and search.

Built once from a trained dual encoder's towers (`build_retrieval_index`), saved as one
`.npz` file in the run directory and searched by `retrieve` without re-embedding the
gallery.

Example:

>>> import numpy as np
>>> index = RetrievalIndex(
...     image_ids=["a", "b"], image_paths=["/a.png", "/b.png"],
...     image_embeddings=np.eye(2, dtype="float32"),
...     captions=["a cat", "a dog", "one cat"], caption_image_index=np.array([0, 1, 0]),
...     text_embeddings=np.array([[1, 0], [0, 1], [0.9, 0.1]], "float32"))
>>> [m["image_id"] for m in index.search_images(np.array([0.0, 1.0]), k=2)]
['b', 'a']
>>> [m["caption"] for m in index.search_captions(np.array([1.0, 0.0]), k=2)]
['a cat', 'one cat']
>>> index.recall(ks=(1,))["text_to_image_recall@1"]
1.0
"""

import dataclasses
import os
from collections.abc import Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from xmodal_keras.atomic_files import atomic_write
from xmodal_keras.data.image_preprocessing import load_image
from xmodal_keras.evaluation.retrieval import DEFAULT_KS, retrieval_recall


@dataclasses.dataclass(eq=False)
class RetrievalIndex:
    """Embeddings of a gallery of images and their captions (rows aligned with the lists).

    Attributes:
        image_ids, image_paths: one entry per unique image.
        image_embeddings: float32 `[num_images, dim]` (L2-normalised).
        captions: one entry per caption (raw text).
        caption_image_index: int `[num_captions]`, the image row of each caption.
        text_embeddings: float32 `[num_captions, dim]` (L2-normalised).
    """

    image_ids: list[str]
    image_paths: list[str]
    image_embeddings: np.ndarray
    captions: list[str]
    caption_image_index: np.ndarray
    text_embeddings: np.ndarray

    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    def recall(self, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
        """Recall@K both ways (see `retrieval_recall`)."""
        return retrieval_recall(
            self.image_embeddings, self.text_embeddings, self.caption_image_index, ks=ks
        )

    def search_images(self, query_embedding, k: int = 5) -> list[dict]:
        """Top `k` images: `[{"rank", "score", "image_id", "image_path"}]`, best first."""
        scores = self.image_embeddings @ np.asarray(query_embedding, np.float32).reshape(-1)
        top = np.argsort(-scores, kind="stable")[:k]
        return [
            {
                "rank": rank + 1,
                "score": float(scores[i]),
                "image_id": self.image_ids[i],
                "image_path": self.image_paths[i],
            }
            for rank, i in enumerate(top)
        ]

    def search_captions(self, query_embedding, k: int = 5) -> list[dict]:
        """Top `k` distinct caption texts: `[{"rank", "score", "caption", "image_id"}]`.

        A caption text that appears several times (common in synthetic data) is listed
        once, with its best score.
        """
        scores = self.text_embeddings @ np.asarray(query_embedding, np.float32).reshape(-1)
        matches, seen = [], set()
        for i in np.argsort(-scores, kind="stable"):
            if self.captions[i] in seen:
                continue
            seen.add(self.captions[i])
            matches.append(
                {
                    "rank": len(matches) + 1,
                    "score": float(scores[i]),
                    "caption": self.captions[i],
                    "image_id": self.image_ids[int(self.caption_image_index[i])],
                }
            )
            if len(matches) == k:
                break
        return matches

    def save(self, path: str | os.PathLike) -> None:
        """Write one `.npz` file (atomically: `atomic_write`)."""
        atomic_write(
            path,
            lambda staging: np.savez(
                staging,
                image_ids=np.asarray(self.image_ids, dtype=str),
                image_paths=np.asarray(self.image_paths, dtype=str),
                image_embeddings=self.image_embeddings,
                captions=np.asarray(self.captions, dtype=str),
                caption_image_index=self.caption_image_index,
                text_embeddings=self.text_embeddings,
            ),
            suffix=".npz",
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RetrievalIndex":
        """Read a file written by `save`."""
        with np.load(path, allow_pickle=False) as data:
            return cls(
                image_ids=data["image_ids"].tolist(),
                image_paths=data["image_paths"].tolist(),
                image_embeddings=data["image_embeddings"],
                captions=data["captions"].tolist(),
                caption_image_index=data["caption_image_index"],
                text_embeddings=data["text_embeddings"],
            )


def embed_images(
    image_tower: keras.Model,
    image_paths: Sequence[str],
    *,
    image_size: tuple[int, int],
    batch_size: int = 64,
) -> np.ndarray:
    """Decode, resize and embed image files (tf.data, parallel decode): `[N, dim]` float32."""
    dataset = (
        tf.data.Dataset.from_tensor_slices(tf.constant(list(image_paths)))
        .map(lambda p: load_image(p, image_size), num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    return np.concatenate(
        [np.asarray(image_tower(batch, training=False)) for batch in dataset]
    ).astype(np.float32)


def embed_texts(
    text_tower: keras.Model, tokenizer, texts: Sequence[str], *, batch_size: int = 256
) -> np.ndarray:
    """Tokenise raw texts in-graph and embed them: `[N, dim]` float32."""
    texts = [str(t) for t in texts]
    chunks = [
        np.asarray(text_tower(tokenizer(texts[i : i + batch_size]), training=False))
        for i in range(0, len(texts), batch_size)
    ]
    return np.concatenate(chunks).astype(np.float32)


def build_retrieval_index(
    image_tower: keras.Model,
    text_tower: keras.Model,
    tokenizer,
    frame: pd.DataFrame,
    *,
    image_size: tuple[int, int],
    batch_size: int = 64,
) -> RetrievalIndex:
    """Embed every unique image and every caption of a caption frame.

    Args:
        image_tower: uint8 images -> embeddings (`dual_encoder.get_layer("image_tower")`).
        text_tower: token ids -> embeddings (`dual_encoder.get_layer("text_tower")`).
        tokenizer: a `CaptionTokenizer` whose output length is the text tower's input length.
        frame: caption rows (`image_id`, `image_path`, `caption`).
        image_size: `(height, width)` the tower reads.
        batch_size: images per forward pass. Defaults to 64.
    """
    if len(frame) == 0:
        raise ValueError("The caption frame is empty. Received: len(frame)=0")
    paths = frame["image_path"].astype(str)
    unique_paths = paths.unique().tolist()
    position = pd.Index(unique_paths).get_indexer(paths)
    if "image_id" in frame.columns:
        first = frame.groupby(paths, sort=False)["image_id"].first()
        image_ids = [str(first[p]) for p in unique_paths]
    else:
        image_ids = [os.path.basename(p) for p in unique_paths]
    return RetrievalIndex(
        image_ids=image_ids,
        image_paths=unique_paths,
        image_embeddings=embed_images(
            image_tower, unique_paths, image_size=image_size, batch_size=batch_size
        ),
        captions=frame["caption"].astype(str).tolist(),
        caption_image_index=position.astype(np.int64),
        text_embeddings=embed_texts(text_tower, tokenizer, frame["caption"].tolist()),
    )
