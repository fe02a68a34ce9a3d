"""In-graph beam search over any `step` function, with length normalisation."""

import tensorflow as tf

from xmodal_keras.decoding.greedy_search import StepFunction, write_column

NEGATIVE_INFINITY = -1e9


def _repeat_beams(tensor: tf.Tensor, beam_width: int) -> tf.Tensor:
    return tf.repeat(tensor, beam_width, axis=0)


def _gather_beams(tensor: tf.Tensor, parent: tf.Tensor) -> tf.Tensor:
    """Rows of `tensor` picked by `parent`, keeping the loop variable's static shape."""
    return tf.ensure_shape(tf.gather(tensor, parent), tensor.shape)


def beam_search(
    step: StepFunction,
    state,
    *,
    batch_size: tf.Tensor,
    start_id: int,
    end_id: int,
    max_length: int,
    beam_width: int = 3,
    length_penalty: float = 0.0,
) -> dict:
    """Keep the `beam_width` most likely prefixes per image; return the best caption.

    A finished beam keeps its score and only extends with padding; the search stops
    when every beam of every image has ended, or at `max_length`. The returned caption
    maximises `sum(log p) / length ** length_penalty` over the final beams (length
    counts the end token); `length_penalty=0` is the plain sum, so `beam_width=1`
    equals greedy search. KerasHub's `BeamSampler` is not used because it returns no
    per-caption scores and its `keras.ops` argmax/top-k add Flex ops under TFLite.

    Args:
        step, state, batch_size, start_id, end_id, max_length: as in `greedy_search`.
        beam_width: int >= 1.
        length_penalty: float >= 0, the exponent above. Defaults to 0.

    Returns:
        `{"tokens": int32 [batch, max_length], "scores": float32 [batch]}` where the
        score is the length-normalised log-probability.

    Example:

    >>> import tensorflow as tf
    >>> def step(token, state, index):  # prefers 4 then end (3)
    ...     logits = tf.one_hot(tf.where(index < 1, 4, 3) + 0 * token, 6)
    ...     return logits, state, None
    >>> out = beam_search(step, (), batch_size=tf.constant(2), start_id=2, end_id=3,
    ...                   max_length=4, beam_width=2)
    >>> out["tokens"].numpy().tolist()
    [[4, 3, 0, 0], [4, 3, 0, 0]]
    """
    if not isinstance(beam_width, int) or beam_width < 1:
        raise ValueError(f"`beam_width` must be an int >= 1. Received: beam_width={beam_width!r}")
    if length_penalty < 0:
        raise ValueError(f"`length_penalty` must be >= 0. Received: {length_penalty!r}")
    flat_size = batch_size * beam_width
    state = tf.nest.map_structure(lambda t: _repeat_beams(t, beam_width), state)
    tokens = tf.zeros([flat_size, max_length], tf.int32)
    # Only the first beam is live at the start, so the k beams do not all repeat it.
    first_beam = tf.one_hot(0, beam_width, on_value=0.0, off_value=NEGATIVE_INFINITY)
    scores = tf.tile(first_beam[None, :], [batch_size, 1])
    finished = tf.zeros([flat_size], tf.bool)
    lengths = tf.zeros([flat_size], tf.float32)
    token = tf.fill([flat_size], tf.constant(start_id, tf.int32))
    batch_offsets = tf.range(batch_size)[:, None] * beam_width

    def condition(index, token, state, tokens, scores, finished, lengths):
        return tf.logical_and(index < max_length, tf.logical_not(tf.reduce_all(finished)))

    def body(index, token, state, tokens, scores, finished, lengths):
        logits, state, _ = step(token, state, index)
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
        vocabulary_size = tf.shape(log_probs)[-1]
        # A finished beam continues with pad (id 0) at no cost, and nothing else.
        pad_only = tf.one_hot(0, vocabulary_size, on_value=0.0, off_value=NEGATIVE_INFINITY)
        log_probs = tf.where(finished[:, None], pad_only[None, :], log_probs)
        candidates = scores[:, :, None] + tf.reshape(log_probs, [batch_size, beam_width, -1])
        top = tf.math.top_k(tf.reshape(candidates, [batch_size, -1]), k=beam_width)
        scores = tf.ensure_shape(top.values, scores.shape)
        flat_indices = top.indices
        parent = tf.reshape(batch_offsets + flat_indices // vocabulary_size, [-1])
        next_token = tf.ensure_shape(tf.reshape(flat_indices % vocabulary_size, [-1]), token.shape)
        state = tf.nest.map_structure(lambda t: _gather_beams(t, parent), state)
        tokens = write_column(_gather_beams(tokens, parent), index, next_token)
        was_finished = _gather_beams(finished, parent)
        lengths = _gather_beams(lengths, parent) + tf.cast(tf.logical_not(was_finished), tf.float32)
        finished = tf.logical_or(was_finished, tf.equal(next_token, end_id))
        return index + 1, next_token, state, tokens, scores, finished, lengths

    _, _, _, tokens, scores, _, lengths = tf.while_loop(
        condition,
        body,
        (tf.constant(0), token, state, tokens, scores, finished, lengths),
        maximum_iterations=max_length,
    )
    lengths = tf.reshape(tf.maximum(lengths, 1.0), [batch_size, beam_width])
    normalised = scores / tf.pow(lengths, length_penalty)
    best = tf.argmax(normalised, axis=-1, output_type=tf.int32)
    best_flat = tf.reshape(batch_offsets, [-1]) + best
    return {
        "tokens": tf.gather(tokens, best_flat),
        "scores": tf.gather(normalised, best, batch_dims=1),
    }
