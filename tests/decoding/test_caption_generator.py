"""In-graph decoding: KV cache vs recomputation, greedy vs beam, sampling, attention."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from xmodal_keras.data.text_tokenizer import CaptionTokenizer
from xmodal_keras.decoding import (
    CaptionGenerator,
    beam_search,
    filter_logits,
    greedy_search,
    sample_search,
)
from xmodal_keras.decoding.caption_generator import BATCHED_MATMUL_ROWS
from xmodal_keras.models import (
    build_gru_captioner,
    build_lstm_captioner,
    build_transformer_captioner,
)

WORDS = ["a", "red", "blue", "circle", "square", "left", "of", "the"]
TOKENIZER = CaptionTokenizer(
    vocabulary=["<pad>", "<unk>", "<start>", "<end>", *WORDS], sequence_length=8
)
IMAGE = (32, 32, 3)
BUILDERS = {
    "gru": lambda: build_gru_captioner(
        vocabulary_size=TOKENIZER.vocabulary_size,
        sequence_length=8,
        image_shape=IMAGE,
        encoder_kwargs={"hidden_dim": 8},
        embedding_dim=8,
        hidden_dim=16,
    ),
    "lstm": lambda: build_lstm_captioner(
        vocabulary_size=TOKENIZER.vocabulary_size,
        sequence_length=8,
        image_shape=IMAGE,
        encoder_kwargs={"hidden_dim": 8},
        embedding_dim=8,
        hidden_dim=16,
    ),
    "transformer": lambda: build_transformer_captioner(
        vocabulary_size=TOKENIZER.vocabulary_size,
        sequence_length=8,
        image_shape=IMAGE,
        encoder_kwargs={"hidden_dim": 8},
        hidden_dim=16,
        num_heads=2,
        num_layers=2,
    ),
}
IMAGES = np.random.default_rng(1).integers(0, 256, (3, *IMAGE)).astype("uint8")


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def generator(request):
    tf.keras.utils.set_random_seed(3)
    return CaptionGenerator(BUILDERS[request.param](), TOKENIZER)


def _recompute_greedy(generator, images, max_length):
    """The keras.io way: run the whole model on the prefix for every new token."""
    batch = images.shape[0]
    token_ids = np.zeros((batch, generator.max_length), "int32")
    token_ids[:, 0] = TOKENIZER.start_id
    tokens = np.zeros((batch, max_length), "int32")
    finished = np.zeros(batch, bool)
    for index in range(max_length):
        logits = generator.model({"images": images, "token_ids": token_ids}).numpy()
        next_token = np.where(finished, 0, logits[:, index].argmax(-1))
        tokens[:, index] = next_token
        finished |= next_token == TOKENIZER.end_id
        if index + 1 < generator.max_length:
            token_ids[:, index + 1] = next_token
    return tokens


def test_cached_greedy_equals_full_recomputation(generator):
    out = generator.generate(IMAGES)
    np.testing.assert_array_equal(out["tokens"].numpy(), _recompute_greedy(generator, IMAGES, 8))


def test_greedy_on_many_rows_equals_full_recomputation(generator):
    """From BATCHED_MATMUL_ROWS rows the Transformer's loop attends by batched MatMuls."""
    images = np.concatenate([IMAGES] * 3)
    assert len(images) >= BATCHED_MATMUL_ROWS
    out = generator.generate(images)
    np.testing.assert_array_equal(out["tokens"].numpy(), _recompute_greedy(generator, images, 8))


def test_xla_compiled_decoding_gives_the_same_tokens(generator):
    xla = CaptionGenerator(generator.model, TOKENIZER, jit_compile=True)
    np.testing.assert_array_equal(
        xla.generate(IMAGES)["tokens"].numpy(), generator.generate(IMAGES)["tokens"].numpy()
    )


def test_beam_width_one_equals_greedy(generator):
    greedy = generator.generate(IMAGES)
    beam = generator.generate(IMAGES, method="beam", beam_width=1)
    np.testing.assert_array_equal(beam["tokens"].numpy(), greedy["tokens"].numpy())
    np.testing.assert_allclose(beam["scores"].numpy(), greedy["scores"].numpy(), rtol=1e-5)


def test_beam_search_scores_at_least_greedy_here_and_text_matches_tokens(generator):
    out = generator.generate(IMAGES, method="beam", beam_width=4)
    texts = [t.decode() for t in out["text"].numpy()]
    assert texts == [t.decode() for t in TOKENIZER.detokenize(out["tokens"]).numpy()]
    for row in out["tokens"].numpy():
        ends = np.flatnonzero(row == TOKENIZER.end_id)
        if ends.size:
            assert not row[ends[0] + 1 :].any(), "tokens after <end> must be padding"


def test_sampling_is_reproducible_and_top_k_one_is_greedy(generator):
    first = generator.generate(IMAGES, method="sample", seed=5, temperature=1.5)
    again = generator.generate(IMAGES, method="sample", seed=5, temperature=1.5)
    np.testing.assert_array_equal(first["tokens"].numpy(), again["tokens"].numpy())
    top1 = generator.generate(IMAGES, method="sample", top_k=1, seed=9)
    np.testing.assert_array_equal(
        top1["tokens"].numpy(), generator.generate(IMAGES)["tokens"].numpy()
    )


def test_attention_maps_are_distributions_until_the_end(generator):
    if not generator.has_attention:  # Show and Tell's LSTM: a clear error, not a crash
        with pytest.raises(ValueError, match="no attention maps.*decoder LSTMCaptionDecoder"):
            generator.generate(IMAGES, return_attention=True)
        return
    out = generator.generate(IMAGES, return_attention=True)
    attention = out["attention"].numpy()
    assert attention.shape == (3, 8, generator.num_regions)
    produced = out["tokens"].numpy() != 0
    np.testing.assert_allclose(attention.sum(-1)[produced], 1.0, atol=1e-5)
    assert not attention[~produced].any()


def test_search_traces_with_an_unknown_batch_size(generator):
    """What a SavedModel signature needs: one graph for any batch."""
    from xmodal_keras.decoding import DecodingOptions

    function = tf.function(
        lambda images: generator.search(images, DecodingOptions(method="beam", beam_width=2)),
        input_signature=[tf.TensorSpec([None, *IMAGE], tf.uint8)],
    )
    one = function(IMAGES[:1])["tokens"].numpy()
    three = function(IMAGES)["tokens"].numpy()
    np.testing.assert_array_equal(three[:1], one)


def test_generate_traces_once_for_every_batch_size(generator):
    """Batch 1, then 3, then 2: one graph per decoding setting and image dtype."""
    for batch in (1, 3, 2):
        generator.generate(IMAGES[:batch], method="beam", beam_width=2)
    generator.generate(IMAGES[:2].astype("float32"), method="beam", beam_width=2)
    traced = {
        key[2].name: function.experimental_get_tracing_count()
        for key, function in generator._functions.items()
        if key[0].method == "beam" and key[0].beam_width == 2 and not key[1]
    }
    assert traced == {"uint8": 1, "float32": 1}


def test_transformer_decoding_loop_reads_no_variable_per_token():
    """The Transformer's step weights are read once per call, before the while loop (at
    batch 1 a step is bound by its op count; a read per weight was 50 of its ops)."""
    tf.keras.utils.set_random_seed(3)
    generator = CaptionGenerator(BUILDERS["transformer"](), TOKENIZER)
    generator.generate(IMAGES[:1])
    (function,) = generator._functions.values()
    library = function.get_concrete_function().graph.as_graph_def().library.function
    bodies = [f for f in library if "while_body" in f.signature.name.lower()]
    body_ops = [node.op for body in bodies for node in body.node_def]
    assert "MatMul" in body_ops, "the decoder's step should be in the loop body"
    assert "ReadVariableOp" not in body_ops


def test_generator_rejects_mismatched_inputs(generator):
    with pytest.raises(ValueError, match=r"Received: shape=\(2, 16, 16, 3\)"):
        generator.generate(np.zeros((2, 16, 16, 3), "uint8"))
    with pytest.raises(ValueError, match="Received: method='beam', return_attention=True"):
        generator.generate(IMAGES, method="beam", return_attention=True)
    with pytest.raises(ValueError, match="Received: method='nucleus'"):
        generator.generate(IMAGES, method="nucleus")
    with pytest.raises(ValueError, match="Received: beam_width=0"):
        generator.generate(IMAGES, method="beam", beam_width=0)
    small = CaptionTokenizer(vocabulary=["<pad>", "<unk>", "<start>", "<end>"], sequence_length=8)
    with pytest.raises(ValueError, match="vocabulary sizes differ"):
        CaptionGenerator(generator.model, small)


# A toy step function with fixed next-token log-probabilities that depend on the previous
# token, so search functions can be checked against exhaustive enumeration.
VOCAB, START, END = 5, 2, 3
TABLE = np.log(
    np.random.default_rng(7).dirichlet(np.ones(VOCAB) * 0.7, size=VOCAB).astype("float32")
)
TABLE[:, 0] = -30.0  # never pad
TABLE[:, START] = -30.0  # never start
TABLE -= np.log(np.exp(TABLE).sum(axis=1, keepdims=True))  # rows are log-probabilities again


def toy_step(token, state, index):
    return tf.gather(tf.constant(TABLE), token), state, None


def _exhaustive_best(max_length, length_penalty):
    best, best_score = None, -np.inf
    for length in range(1, max_length + 1):
        for body in itertools.product([1, 3, 4], repeat=length):
            if END in body[:-1]:
                continue
            previous, total = START, 0.0
            for token in body:
                total += TABLE[previous, token]
                previous = token
            score = total / length**length_penalty
            if score > best_score:
                best, best_score = list(body), score
    return best + [0] * (max_length - len(best)), best_score


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_wide_beam_search_finds_the_exhaustive_optimum(length_penalty):
    out = beam_search(
        toy_step,
        (),
        batch_size=tf.constant(2),
        start_id=START,
        end_id=END,
        max_length=4,
        beam_width=40,
        length_penalty=length_penalty,
    )
    expected_tokens, expected_score = _exhaustive_best(4, length_penalty)
    assert out["tokens"].numpy().tolist() == [expected_tokens] * 2
    np.testing.assert_allclose(out["scores"].numpy(), expected_score, rtol=1e-5)


def test_greedy_follows_the_argmax_chain():
    out = greedy_search(
        toy_step, (), batch_size=tf.constant(1), start_id=START, end_id=END, max_length=4
    )
    previous, expected = START, []
    for _ in range(4):
        previous = int(TABLE[previous].argmax())
        expected.append(previous)
        if previous == END:
            break
    assert out["tokens"].numpy()[0].tolist()[: len(expected)] == expected


def test_filter_logits_top_k_and_top_p():
    logits = tf.math.log([[0.4, 0.3, 0.2, 0.1]])
    kept_k = filter_logits(logits, top_k=2, top_p=None).numpy() > -1e8
    assert kept_k.tolist() == [[True, True, False, False]]
    kept_p = filter_logits(logits, top_k=None, top_p=0.75).numpy() > -1e8
    assert kept_p.tolist() == [[True, True, True, False]]
    kept_small_p = filter_logits(logits, top_k=None, top_p=0.01).numpy() > -1e8
    assert kept_small_p.tolist() == [[True, False, False, False]]


def test_sampling_follows_the_distribution():
    counts = np.zeros(VOCAB)
    for seed in range(300):
        out = sample_search(
            toy_step,
            (),
            batch_size=tf.constant(1),
            start_id=START,
            end_id=END,
            max_length=1,
            seed=seed,
        )
        counts[out["tokens"].numpy()[0, 0]] += 1
    np.testing.assert_allclose(counts / 300, np.exp(TABLE[START]), atol=0.08)
