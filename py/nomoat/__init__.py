"""nomoat: a small language model inside a web page, Python-first.

    import nomoat
    model = nomoat.load()                      # the default model (SmolLM2-135M-Instruct)
    session = model.session(temperature=0)
    print(await session.prompt("Name a primary colour."))
    async for piece in session.prompt_streaming("And another?"):
        print(piece, end="")

    emb = nomoat.load("all-MiniLM-L6-v2")      # a sentence-embedding model: an Embedder
    vectors = await emb.embed(["a text", "another"])
"""

from .embed import Embedder
from .errors import (
    ContextOverflowError,
    IncompleteOutputError,
    InvalidModelError,
    InvalidOptionError,
    ModelNotFoundError,
    NomoatError,
    UnsupportedModelError,
    UnsupportedSchemaError,
)
from .model import Model, load
from .sampling import SamplingParams
from .session import Session

__version__ = "0.1.0"
__all__ = [
    "ContextOverflowError", "Embedder", "IncompleteOutputError", "InvalidModelError", "InvalidOptionError", "Model",
    "ModelNotFoundError", "NomoatError", "SamplingParams", "Session", "UnsupportedModelError",
    "UnsupportedSchemaError", "load",
]
