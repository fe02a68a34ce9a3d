"""A plain image captioner in the keras.io style: the reference baseline of the quality benchmark.

Written the way the keras.io image-captioning example and most tutorials write it, with no
code from `xmodal_keras`, so `benchmarks/caption_quality.py` can compare our default
captioner with what a user would write themselves:

- the Flickr8k layout is read with plain Python (token file + split files);
- `keras.layers.TextVectorization` with `<start>`/`<end>` markers, one (image, caption)
  pair per caption, `tf.data` with cache + shuffle + prefetch;
- image encoder: 4 x (Conv2D 3x3 + BatchNorm + ReLU), a 2x2 max-pool after the first
  three, giving an 8x8x128 grid on 64x64 images; a Dense projection and a learned
  grid-position embedding; the layers keep Keras's defaults, as tutorials write them
  (BatchNormalization momentum 0.99: see `xmodal_keras/encoders/residual_cnn.py` for why
  that matters in runs of a few hundred steps);
- decoder: KerasHub `TokenAndPositionEmbedding` and 2 `TransformerDecoder` layers
  cross-attending to the grid; masked sparse cross-entropy;
- Adam at 1e-3 with clipnorm 1.0, linear warm-up (5 %) and cosine decay;
- decoding as in keras.io: the image is encoded once, then the decoder runs on the
  padded prefix for every token (greedy), or on `beam` prefixes (beam search).

Run alone: `python benchmarks/keras_io_captioner.py DATA_ROOT --epochs 8` trains, then
prints the val captions' BLEU-4 and CIDEr.
"""

import argparse
import math
import pathlib
import time

import keras
import keras_hub
import numpy as np
import tensorflow as tf

IMAGE_SIZE = 64
# keras.io's example uses 25: every caption of shapes (<= 20 words) and digits (<= 15) fits.
SEQ_LENGTH = 25  # tokens the decoder reads (the caption with <start>, without <end>)
EMBED_DIM = 256
FF_DIM = 512
NUM_HEADS = 4
NUM_LAYERS = 2
BATCH_SIZE = 64
LEARNING_RATE = 1e-3
SPLIT_FILES = {
    "train": "Flickr_8k.trainImages.txt",
    "val": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}


def load_captions(root: pathlib.Path) -> dict[str, dict[str, list[str]]]:
    """split -> image path -> its captions, from a Flickr8k-layout folder."""
    captions: dict[str, list[str]] = {}
    for line in (root / "Flickr8k.token.txt").read_text().splitlines():
        name, caption = line.split("\t")
        captions.setdefault(name.split("#")[0], []).append(caption.strip().lower())
    data = {}
    for split, file_name in SPLIT_FILES.items():
        names = (root / file_name).read_text().split()
        data[split] = {str(root / "Images" / name): captions[name] for name in names}
    return data


def standardize(text):
    text = tf.strings.lower(text)
    return tf.strings.regex_replace(text, r"[!\"#$%&()*+.,\-/:;=?@\[\\\]^_`{|}~]", "")


def make_vectorizer(train_captions: list[str]) -> keras.layers.TextVectorization:
    vectorizer = keras.layers.TextVectorization(
        standardize=standardize, output_sequence_length=SEQ_LENGTH + 1
    )
    vectorizer.adapt([f"<start> {c} <end>" for c in train_captions])
    return vectorizer


def load_image(path):
    image = tf.io.decode_png(tf.io.read_file(path), channels=3)
    return tf.image.resize(image, (IMAGE_SIZE, IMAGE_SIZE))


def make_dataset(split_data: dict[str, list[str]], vectorizer, shuffle: bool) -> tf.data.Dataset:
    paths = [p for p, caps in split_data.items() for _ in caps]
    texts = [f"<start> {c} <end>" for caps in split_data.values() for c in caps]
    tokens = vectorizer(tf.constant(texts))
    dataset = tf.data.Dataset.from_tensor_slices((paths, tokens))
    dataset = dataset.map(lambda p, t: (load_image(p), t), num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(len(paths), seed=0)
    dataset = dataset.batch(BATCH_SIZE).map(
        lambda image, t: ({"images": image, "token_ids": t[:, :-1]}, t[:, 1:])
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def build_encoder() -> keras.Model:
    images = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3), name="images")
    x = keras.layers.Rescaling(1 / 255)(images)
    for index, width in enumerate((32, 64, 128, 128)):
        x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
        if index < 3:
            x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Reshape((-1, 128))(x)
    x = keras.layers.Dense(EMBED_DIM)(x)
    x = x + keras_hub.layers.PositionEmbedding(sequence_length=x.shape[1])(x)
    return keras.Model(images, x, name="encoder")


def build_decoder(vocabulary_size: int, num_regions: int) -> keras.Model:
    tokens = keras.Input((None,), dtype="int32", name="token_ids")
    memory = keras.Input((num_regions, EMBED_DIM), name="memory")
    x = keras_hub.layers.TokenAndPositionEmbedding(
        vocabulary_size, SEQ_LENGTH, EMBED_DIM, mask_zero=True
    )(tokens)
    for _ in range(NUM_LAYERS):
        x = keras_hub.layers.TransformerDecoder(FF_DIM, NUM_HEADS, dropout=0.1)(x, memory)
    return keras.Model([tokens, memory], keras.layers.Dense(vocabulary_size)(x), name="decoder")


def build_model(vocabulary_size: int) -> tuple[keras.Model, keras.Model, keras.Model]:
    encoder = build_encoder()
    decoder = build_decoder(vocabulary_size, encoder.output.shape[1])
    image = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3), name="images")
    tokens = keras.Input((SEQ_LENGTH,), dtype="int32", name="token_ids")
    model = keras.Model({"images": image, "token_ids": tokens}, decoder([tokens, encoder(image)]))
    return model, encoder, decoder


def compile_model(model: keras.Model, total_steps: int) -> None:
    warmup = max(1, total_steps // 20)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, total_steps - warmup, warmup_target=LEARNING_RATE, warmup_steps=warmup
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule, clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
    )


class Captioner:
    """A trained baseline: the model parts and the vocabulary, and its decoding."""

    def __init__(self, encoder, decoder, vectorizer):
        self.encoder, self.decoder = encoder, decoder
        self.vocabulary = vectorizer.get_vocabulary()
        self.start = self.vocabulary.index("<start>")
        self.end = self.vocabulary.index("<end>")

    def _words(self, ids) -> str:
        words = []
        for token in ids:
            if token in (self.end, 0):
                break
            words.append(self.vocabulary[token])
        return " ".join(words)

    def _log_probs(self, prefix: np.ndarray, memory, position: int) -> np.ndarray:
        logits = self.decoder([tf.constant(prefix), memory], training=False)[:, position]
        return tf.nn.log_softmax(logits).numpy()

    def caption(self, paths: list[str], beam: int = 1, batch_size: int = 100) -> list[str]:
        captions = []
        for first in range(0, len(paths), batch_size):
            images = tf.stack([load_image(p) for p in paths[first : first + batch_size]])
            memory = self.encoder(images, training=False)
            captions += self._greedy(memory) if beam == 1 else self._beam(memory, beam)
        return captions

    def _greedy(self, memory) -> list[str]:
        prefix = np.zeros((memory.shape[0], SEQ_LENGTH), "int32")
        prefix[:, 0] = self.start
        for position in range(SEQ_LENGTH - 1):
            prefix[:, position + 1] = self._log_probs(prefix, memory, position).argmax(-1)
        return [self._words(row[1:]) for row in prefix]

    def _beam(self, memory, beam: int) -> list[str]:
        count = memory.shape[0]
        memory = tf.repeat(memory, beam, axis=0)
        prefix = np.zeros((count * beam, SEQ_LENGTH), "int32")
        prefix[:, 0] = self.start
        scores = np.tile([0.0] + [-1e9] * (beam - 1), count)
        finished = np.zeros(count * beam, bool)
        for position in range(SEQ_LENGTH - 1):
            log_probs = self._log_probs(prefix, memory, position)
            # A finished beam only extends with padding, at no cost.
            log_probs[finished] = -1e9
            log_probs[finished, 0] = 0.0
            total = (scores[:, None] + log_probs).reshape(count, -1)
            best = np.argsort(-total, axis=1)[:, :beam]
            rows = (np.arange(count)[:, None] * beam + best // log_probs.shape[1]).reshape(-1)
            tokens = (best % log_probs.shape[1]).reshape(-1)
            prefix, finished = prefix[rows], finished[rows]
            prefix[:, position + 1] = np.where(finished, 0, tokens)
            finished = finished | (tokens == self.end)
            scores = np.take_along_axis(total, best, axis=1).reshape(-1)
        return [self._words(prefix[i * beam, 1:]) for i in range(count)]


class TimeBudget(keras.callbacks.Callback):
    """Stops training once `seconds` of training have passed (checked every batch)."""

    def __init__(self, seconds: float | None):
        super().__init__()
        self.seconds = seconds
        self.elapsed = 0.0
        self.steps = 0

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        self.elapsed = time.perf_counter() - self.start
        if self.seconds is not None and self.elapsed >= self.seconds:
            self.model.stop_training = True


def train(
    root: pathlib.Path, epochs: int, seconds: float | None = None, seed: int = 0
) -> tuple[Captioner, TimeBudget, dict]:
    """Train on `root`'s train split for `epochs` (stopping after `seconds` if given)."""
    keras.utils.set_random_seed(seed)
    data = load_captions(root)
    vectorizer = make_vectorizer([c for caps in data["train"].values() for c in caps])
    train_data = make_dataset(data["train"], vectorizer, shuffle=True)
    val_data = make_dataset(data["val"], vectorizer, shuffle=False)
    model, encoder, decoder = build_model(vectorizer.vocabulary_size())
    steps = math.ceil(sum(len(c) for c in data["train"].values()) / BATCH_SIZE)
    compile_model(model, total_steps=epochs * steps)
    budget = TimeBudget(seconds)
    model.fit(train_data, epochs=epochs, validation_data=val_data, callbacks=[budget], verbose=2)
    return Captioner(encoder, decoder, vectorizer), budget, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=pathlib.Path, help="a Flickr8k-layout dataset folder")
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    captioner, budget, data = train(args.root, args.epochs)
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    paths = sorted(data["val"])
    candidates = dict(zip(paths, ([c] for c in captioner.caption(paths)), strict=True))
    references = {p: data["val"][p] for p in paths}
    bleu = Bleu(4).compute_score(references, candidates)[0][3]
    cider = Cider().compute_score(references, candidates)[0]
    print(f"val BLEU-4 {bleu:.3f}, CIDEr {cider:.3f} after {budget.elapsed / 60:.1f} min")


if __name__ == "__main__":
    main()
