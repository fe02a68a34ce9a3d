"""In-graph greedy decoding over any `step` function."""

from collections.abc import Callable

import tensorflow as tf

# step(token_ids [batch], state, index) -> (logits [batch, vocab], state, attention or None)
StepFunction = Callable[[tf.Tensor, object, tf.Tensor], tuple[tf.Tensor, object, object]]


def write_column(matrix: tf.Tensor, index: tf.Tensor, values: tf.Tensor) -> tf.Tensor:
    """`matrix[:, index] = values` with a broadcast select (builtin ops only; three ops
    when the matrix's length is static, as in every decoding loop)."""
    length = matrix.shape[1] if matrix.shape[1] is not None else tf.shape(matrix)[1]
    column = tf.equal(tf.range(length), index)
    if len(matrix.shape) > 2:
        column = tf.reshape(column, [length] + [1] * (len(matrix.shape) - 2))
    return tf.where(column, tf.expand_dims(values, 1), matrix)


def greedy_search(
    step: StepFunction,
    state,
    *,
    batch_size: tf.Tensor,
    start_id: int,
    end_id: int,
    max_length: int,
    num_regions: int | None = None,
) -> dict:
    """Pick the most likely token at each step until every caption has ended.

    Runs a `tf.while_loop` (no Python loop over steps), so it traces into a
    `tf.function`, a SavedModel or a TFLite `WHILE`. Tokens after `end_id` are 0 (pad).
    Argmax uses `tf.argmax`, which LiteRT runs as a builtin op.

    Args:
        step: the decoder's step function.
        state: its initial state (any nest of tensors with fixed shapes).
        batch_size: scalar int tensor.
        start_id, end_id: special token ids.
        max_length: most tokens generated (the end token included).
        num_regions: when set, also collect the per-step attention `[batch, regions]`
            that `step` returns.

    Returns:
        `{"tokens": int32 [batch, max_length], "scores": float32 [batch]` (sum of the
        chosen tokens' log-probabilities), `"attention": [batch, max_length, regions]`
        when `num_regions` is set`}`.

    Example:

    >>> import tensorflow as tf
    >>> def step(token, state, index):  # always prefers token (index + 4), then 3 = end
    ...     logits = tf.one_hot(tf.where(index < 2, index + 4, 3) + 0 * token, 6)
    ...     return logits, state, None
    >>> out = greedy_search(step, (), batch_size=tf.constant(1), start_id=2, end_id=3,
    ...                     max_length=5)
    >>> out["tokens"].numpy().tolist()
    [[4, 5, 3, 0, 0]]
    """
    tokens = tf.zeros([batch_size, max_length], tf.int32)
    scores = tf.zeros([batch_size], tf.float32)
    finished = tf.zeros([batch_size], tf.bool)
    token = tf.fill([batch_size], tf.constant(start_id, tf.int32))
    attention = (
        tf.zeros([batch_size, max_length, num_regions], tf.float32) if num_regions else tf.zeros([])
    )

    def condition(index, token, state, tokens, scores, finished, attention):
        return tf.logical_and(index < max_length, tf.logical_not(tf.reduce_all(finished)))

    def body(index, token, state, tokens, scores, finished, attention):
        logits, state, step_attention = step(token, state, index)
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
        next_token = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
        next_token = tf.where(finished, 0, next_token)
        chosen = tf.gather(log_probs, next_token, batch_dims=1)
        scores += tf.where(finished, 0.0, chosen)
        tokens = write_column(tokens, index, next_token)
        if num_regions:
            step_attention = tf.cast(step_attention, tf.float32)
            step_attention = tf.where(finished[:, None], 0.0, step_attention)
            attention = write_column(attention, index, step_attention)
        finished = tf.logical_or(finished, tf.equal(next_token, end_id))
        return index + 1, next_token, state, tokens, scores, finished, attention

    _, _, _, tokens, scores, _, attention = tf.while_loop(
        condition,
        body,
        (tf.constant(0), token, state, tokens, scores, finished, attention),
        maximum_iterations=max_length,
    )
    result = {"tokens": tokens, "scores": scores}
    if num_regions:
        result["attention"] = attention
    return result
