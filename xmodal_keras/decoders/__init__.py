"""Caption decoders: networks that turn image features and a token prefix into logits."""

from xmodal_keras.decoders.captioner_text_reader import CaptionerTextReader
from xmodal_keras.decoders.gru_caption_decoder import GRUCaptionDecoder
from xmodal_keras.decoders.lstm_caption_decoder import LSTMCaptionDecoder
from xmodal_keras.decoders.transformer_caption_decoder import TransformerCaptionDecoder

__all__ = [
    "CaptionerTextReader",
    "GRUCaptionDecoder",
    "LSTMCaptionDecoder",
    "TransformerCaptionDecoder",
]
