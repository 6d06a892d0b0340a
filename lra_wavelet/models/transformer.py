"""The LRA benchmark's Transformer encoder: bidirectional attention, pre-LayerNorm, CLS or mean pooling."""

from ..registry import MODELS
from .backbone import SequenceModel


@MODELS.register("transformer")
class Transformer(SequenceModel):
    """The LRA encoder: bidirectional SDPA attention with a key padding mask, CLS (or mean) pooling."""

    causal = False
    default_pool = "cls"  # a learned, zero-initialised vector prepended to the sequence
