"""In-graph top-k / top-p (nucleus) sampling over any `step` function."""

import tensorflow as tf

from xmodal_keras.decoding.greedy_search import StepFunction, write_column

NEGATIVE_INFINITY = -1e9


def filter_logits(logits: tf.Tensor, *, top_k: int | None, top_p: float | None) -> tf.Tensor:
    """Set logits outside the top-k and outside the top-p nucleus to -1e9.

    Example:

    >>> import tensorflow as tf
    >>> filter_logits(tf.math.log([[0.5, 0.3, 0.2]]), top_k=None, top_p=0.7).numpy() > -1e8
    array([[ True,  True, False]])
    """
    if top_k is not None:
        kth = tf.math.top_k(logits, k=top_k).values[:, -1:]
        logits = tf.where(logits < kth, NEGATIVE_INFINITY, logits)
    if top_p is not None:
        sorted_logits = tf.sort(logits, direction="DESCENDING", axis=-1)
        probs = tf.nn.softmax(sorted_logits, axis=-1)
        # Keep a token while the mass before it is below top_p (the first is always kept).
        mass_before = tf.cumsum(probs, axis=-1, exclusive=True)
        kept = tf.where(mass_before < top_p, sorted_logits, tf.fill(tf.shape(logits), 1e9))
        threshold = tf.reduce_min(kept, axis=-1, keepdims=True)
        logits = tf.where(logits < threshold, NEGATIVE_INFINITY, logits)
    return logits


def sample_search(
    step: StepFunction,
    state,
    *,
    batch_size: tf.Tensor,
    start_id: int,
    end_id: int,
    max_length: int,
    top_k: int | None = None,
    top_p: float | None = None,
    temperature: float = 1.0,
    seed: int = 0,
) -> dict:
    """Sample each token from the (temperature-scaled, filtered) next-token distribution.

    Stateless random ops seeded by `(seed, step index)` make a run reproducible inside a
    graph. KerasHub's `TopKSampler` / `TopPSampler` are not used because they return no
    scores and draw from Keras' global seed generator, which does not export.

    Args:
        step, state, batch_size, start_id, end_id, max_length: as in `greedy_search`.
        top_k: keep the k most likely tokens. Defaults to None (all).
        top_p: keep the smallest set of tokens whose mass reaches p. Defaults to None.
        temperature: float > 0. Defaults to 1.
        seed: int. Defaults to 0.

    Returns:
        `{"tokens": int32 [batch, max_length], "scores": float32 [batch]}`, the score being
        the sampled tokens' summed log-probability under the unfiltered distribution.
    """
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"`top_k` must be None or an int >= 1. Received: top_k={top_k!r}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"`top_p` must be None or in (0, 1]. Received: top_p={top_p!r}")
    if temperature <= 0:
        raise ValueError(f"`temperature` must be > 0. Received: temperature={temperature!r}")
    tokens = tf.zeros([batch_size, max_length], tf.int32)
    scores = tf.zeros([batch_size], tf.float32)
    finished = tf.zeros([batch_size], tf.bool)
    token = tf.fill([batch_size], tf.constant(start_id, tf.int32))

    def condition(index, token, state, tokens, scores, finished):
        return tf.logical_and(index < max_length, tf.logical_not(tf.reduce_all(finished)))

    def body(index, token, state, tokens, scores, finished):
        logits, state, _ = step(token, state, index)
        logits = tf.cast(logits, tf.float32) / temperature
        filtered = filter_logits(logits, top_k=top_k, top_p=top_p)
        next_token = tf.random.stateless_categorical(
            filtered, 1, seed=tf.stack([tf.constant(seed), index]), dtype=tf.int32
        )[:, 0]
        next_token = tf.where(finished, 0, next_token)
        chosen = tf.gather(tf.nn.log_softmax(logits, axis=-1), next_token, batch_dims=1)
        scores += tf.where(finished, 0.0, chosen)
        tokens = write_column(tokens, index, next_token)
        finished = tf.logical_or(finished, tf.equal(next_token, end_id))
        return index + 1, next_token, state, tokens, scores, finished

    _, _, _, tokens, scores, _ = tf.while_loop(
        condition,
        body,
        (tf.constant(0), token, state, tokens, scores, finished),
        maximum_iterations=max_length,
    )
    return {"tokens": tokens, "scores": scores}
