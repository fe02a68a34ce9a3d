"""Tiny KerasHub presets with random weights, written with `save_to_preset` and loaded by the
code under test through `from_preset(dir)`, the path a preset name takes (no download)."""

import pathlib

import keras_hub

# The words of the shapes captions, some split into WordPiece pieces so that the tokenizer
# has to join "##" pieces ("circ" + "##le", "tri" + "##angle", ...).
SHAPES_PIECES = (
    "a small large and square of star is yellow red blue cross diamond purple green orange "
    "white there picture on right left the under over above below background with to noisy "
    "its it striped checkered shaded circ ##le tri ##angle . , ! ##s ##ed"
).split()
BERT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
TINY_BERT = {
    "num_layers": 2,
    "num_heads": 2,
    "hidden_dim": 16,
    "intermediate_dim": 32,
    "max_sequence_length": 32,
}


def tiny_bert_preset(folder: pathlib.Path, *, lowercase: bool = True) -> pathlib.Path:
    """A 2-layer, 16-wide BERT (`BertBackbone` + `BertTokenizer`) saved as a preset folder."""
    vocabulary = [*BERT_SPECIAL_TOKENS, *SHAPES_PIECES]
    folder.mkdir(parents=True, exist_ok=True)
    keras_hub.models.BertBackbone(vocabulary_size=len(vocabulary), **TINY_BERT).save_to_preset(
        folder
    )
    keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=lowercase).save_to_preset(
        folder
    )
    return folder


def tiny_resnet_backbone() -> keras_hub.models.ResNetBackbone:
    """A 2-stack ResNet (basic blocks, 64 then 16 filters: KerasHub wants 64 first) taking
    any image size."""
    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 16],
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
        image_shape=(None, None, 3),
    )


def tiny_clip_preset(folder: pathlib.Path) -> pathlib.Path:
    """A 1-layer, 16-wide CLIP (`CLIPBackbone` on 32x32 images, texts of up to 16 ids) with a
    byte-level BPE `CLIPTokenizer` (every byte, alone and word-final, plus merges that make
    the shapes words "red", "blue" and "circle" one token each) and a `CLIPImageConverter`
    with CLIP's mean and std, saved as a preset folder."""
    from keras_hub.src.tokenizers.byte_pair_tokenizer import bytes_to_unicode

    letters = bytes_to_unicode()[1]
    vocabulary = [*letters, *(letter + "</w>" for letter in letters)]
    merges = ["r e", "re d</w>", "b l", "bl u", "blu e</w>", "c i", "ci r", "cir c", "circ l"]
    merges += ["circl e</w>"]
    vocabulary += ["re", "red</w>", "bl", "blu", "blue</w>", "ci", "cir", "circ", "circl"]
    vocabulary += ["circle</w>", "<|startoftext|>", "<|endoftext|>"]
    tokenizer = keras_hub.models.CLIPTokenizer(
        vocabulary={token: index for index, token in enumerate(vocabulary)}, merges=merges
    )
    layers = {"num_layers": 1, "num_heads": 2, "hidden_dim": 16, "intermediate_dim": 32}
    vision = keras_hub.models.CLIPVisionEncoder(patch_size=8, image_shape=(32, 32, 3), **layers)
    text = keras_hub.models.CLIPTextEncoder(
        vocabulary_size=len(vocabulary), embedding_dim=16, max_sequence_length=16, **layers
    )
    backbone = keras_hub.models.CLIPBackbone(
        vision_encoder=vision, text_encoder=text, projection_dim=8
    )
    mean, std = (0.481, 0.458, 0.408), (0.269, 0.261, 0.276)
    converter = keras_hub.layers.CLIPImageConverter(
        image_size=(32, 32),
        scale=[1 / (255 * s) for s in std],
        offset=[-m / s for m, s in zip(mean, std, strict=True)],
    )
    folder.mkdir(parents=True, exist_ok=True)
    for part in (backbone, tokenizer, converter):
        part.save_to_preset(folder)
    return folder
