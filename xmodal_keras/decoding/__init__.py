"""In-graph decoding: greedy, beam search and sampling over one decoder `step`."""

from xmodal_keras.decoding.beam_search import beam_search
from xmodal_keras.decoding.caption_generator import CaptionGenerator, DecodingOptions
from xmodal_keras.decoding.greedy_search import greedy_search
from xmodal_keras.decoding.sampling import filter_logits, sample_search

__all__ = [
    "CaptionGenerator",
    "DecodingOptions",
    "beam_search",
    "filter_logits",
    "greedy_search",
    "sample_search",
]
