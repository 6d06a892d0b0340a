"""The LRA benchmark's Transformer encoder: bidirectional attention, pre-LayerNorm, CLS or mean pooling,
at the benchmark's conventions (backbone.LRAConfig: initialisation, weight decay, pooling, retrieval head)."""

from ..registry import MODELS
from .backbone import LRAConfig, SequenceModel


@MODELS.register("transformer")
class Transformer(SequenceModel):
    """The LRA encoder: bidirectional SDPA attention with a key padding mask, CLS (or mean) pooling."""

    Config = LRAConfig
    causal = False
    default_pool = "cls"  # a learned, zero-initialised vector prepended to the sequence
    retrieval_pool = "first"  # the benchmark's dual encoder prepends nothing and reads each document's first token
    pad_invariant = True  # valid positions attend to valid keys only
