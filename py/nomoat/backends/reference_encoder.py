"""The numpy BERT encoder: plain, float64, the oracle every embedding engine is checked against.

Hugging Face's BertModel (post-LayerNorm, absolute positions, exact erf GELU), then
sentence-transformers' mean pooling over the attention mask and L2 normalisation:

    x = LayerNorm(word[ids] + position[0..S) + token_type[0])
    per layer:  x = LayerNorm(x + Attention(x) @ Wo.T + bo)
                x = LayerNorm(x + GELU(x @ Wi.T + bi) @ Wd.T + bd)
    embedding = normalize(mean of x over the positions where attention_mask == 1)

It reads the original safetensors weights (not a converted package), so a converter's mistake
cannot hide in both sides of a comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidModelError, UnsupportedModelError

# --- config ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BertConfig:
    """The fields of Hugging Face's BertModel config.json that the encoder uses."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_dict(cls, raw: object, where: str = "config.json") -> BertConfig:
        """Typed, ranged and divisible, or an error naming the field (a hostile config.json is refused
        here, not as a shape error deep in a graph)."""
        def bad(what: str) -> InvalidModelError:
            return InvalidModelError(f"{where}: {what}; convert the model again ('nomoat convert').")

        if not isinstance(raw, dict):
            raise bad("not a JSON object")
        if raw.get("model_type") != "bert":
            raise UnsupportedModelError(f"{where}: model_type {raw.get('model_type')!r}; nomoat's encoder runs "
                                        "BERT models (model_type 'bert').")
        if raw.get("hidden_act", "gelu") != "gelu":
            raise UnsupportedModelError(f"{where}: hidden_act {raw.get('hidden_act')!r}; nomoat's encoder runs "
                                        "the exact (erf) 'gelu'.")
        if raw.get("position_embedding_type", "absolute") != "absolute":
            raise UnsupportedModelError(f"{where}: position_embedding_type {raw.get('position_embedding_type')!r}; "
                                        "nomoat's encoder runs 'absolute' positions.")
        ints = {"vocab_size": 1 << 20, "hidden_size": 8192, "num_hidden_layers": 128, "num_attention_heads": 256,
                "intermediate_size": 65536, "max_position_embeddings": 1 << 16, "type_vocab_size": 16}
        values = {}
        for key, limit in ints.items():
            v = raw.get(key)
            if type(v) is not int or not 1 <= v <= limit:
                raise bad(f"{key} is {str(v)[:40]}, not an integer from 1 to {limit}")
            values[key] = v
        if values["hidden_size"] % values["num_attention_heads"]:
            raise bad(f"hidden_size {values['hidden_size']} is not a multiple of num_attention_heads "
                      f"{values['num_attention_heads']}")
        eps = raw.get("layer_norm_eps", 1e-12)
        if type(eps) not in (int, float) or not 0 < eps < 1:
            raise bad(f"layer_norm_eps is {str(eps)[:40]}, not a number between 0 and 1")
        return cls(**values, layer_norm_eps=float(eps))


# --- weights ---------------------------------------------------------------------------------------


@dataclass
class BertLayer:
    q_w: np.ndarray  # (H, H) rows = outputs, as Hugging Face stores a Linear
    q_b: np.ndarray  # (H,)
    k_w: np.ndarray
    k_b: np.ndarray
    v_w: np.ndarray
    v_b: np.ndarray
    o_w: np.ndarray  # (H, H)
    o_b: np.ndarray
    attn_ln_w: np.ndarray  # (H,)
    attn_ln_b: np.ndarray
    up_w: np.ndarray  # (I, H)  "intermediate.dense"
    up_b: np.ndarray  # (I,)
    down_w: np.ndarray  # (H, I)  "output.dense"
    down_b: np.ndarray  # (H,)
    ffn_ln_w: np.ndarray  # (H,)
    ffn_ln_b: np.ndarray


@dataclass
class BertWeights:
    word: np.ndarray  # (V, H)
    position: np.ndarray  # (P, H)
    token_type: np.ndarray  # (T, H)
    emb_ln_w: np.ndarray  # (H,)
    emb_ln_b: np.ndarray
    layers: list[BertLayer]

    @classmethod
    def from_tensors(cls, cfg: BertConfig, t: dict[str, np.ndarray], where: str = "model.safetensors"
                     ) -> BertWeights:
        """From Hugging Face's BertModel tensor names (a "bert." prefix is accepted), every shape checked."""
        H, I, V = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size  # noqa: E741  (I: intermediate)

        def get(name: str, shape: tuple[int, ...]) -> np.ndarray:
            a = t.get(name, t.get("bert." + name))
            if a is None:
                raise InvalidModelError(f"{where} has no tensor {name}; is it a BertModel's weights?")
            if tuple(a.shape) != shape:
                raise InvalidModelError(f"{where}: {name} has shape {tuple(a.shape)}, config.json implies {shape}.")
            if a.dtype.kind != "f":
                raise InvalidModelError(f"{where}: {name} is {a.dtype}, not floating point.")
            return a.astype(np.float32)

        layers = []
        for i in range(cfg.num_hidden_layers):
            p = f"encoder.layer.{i}."
            a = p + "attention."
            layers.append(BertLayer(
                q_w=get(a + "self.query.weight", (H, H)), q_b=get(a + "self.query.bias", (H,)),
                k_w=get(a + "self.key.weight", (H, H)), k_b=get(a + "self.key.bias", (H,)),
                v_w=get(a + "self.value.weight", (H, H)), v_b=get(a + "self.value.bias", (H,)),
                o_w=get(a + "output.dense.weight", (H, H)), o_b=get(a + "output.dense.bias", (H,)),
                attn_ln_w=get(a + "output.LayerNorm.weight", (H,)), attn_ln_b=get(a + "output.LayerNorm.bias", (H,)),
                up_w=get(p + "intermediate.dense.weight", (I, H)), up_b=get(p + "intermediate.dense.bias", (I,)),
                down_w=get(p + "output.dense.weight", (H, I)), down_b=get(p + "output.dense.bias", (H,)),
                ffn_ln_w=get(p + "output.LayerNorm.weight", (H,)), ffn_ln_b=get(p + "output.LayerNorm.bias", (H,)),
            ))
        return cls(
            word=get("embeddings.word_embeddings.weight", (V, H)),
            position=get("embeddings.position_embeddings.weight", (cfg.max_position_embeddings, H)),
            token_type=get("embeddings.token_type_embeddings.weight", (cfg.type_vocab_size, H)),
            emb_ln_w=get("embeddings.LayerNorm.weight", (H,)), emb_ln_b=get("embeddings.LayerNorm.bias", (H,)),
            layers=layers,
        )


# --- forward ---------------------------------------------------------------------------------------

_erf = np.vectorize(math.erf, otypes=[np.float64])  # exact (to float64), as torch's erf


def gelu(x: np.ndarray) -> np.ndarray:
    """Hugging Face's "gelu": x * Φ(x) with the exact erf (not the tanh approximation)."""
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def forward(cfg: BertConfig, w: BertWeights, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """last_hidden_state (B, S, H) in float64 for input_ids, attention_mask (B, S); token types 0."""
    B, S = input_ids.shape
    nh, hd = cfg.num_attention_heads, cfg.head_dim
    f = np.float64
    x = w.word[input_ids].astype(f) + w.position[:S].astype(f) + w.token_type[0].astype(f)  # (B, S, H)
    x = layer_norm(x, w.emb_ln_w, w.emb_ln_b, cfg.layer_norm_eps)
    keep = attention_mask.astype(bool)[:, None, None, :]  # (B, 1, 1, S): which keys a query may see

    def heads(t: np.ndarray) -> np.ndarray:  # (B, S, H) → (B, nh, S, hd)
        return t.reshape(B, S, nh, hd).transpose(0, 2, 1, 3)

    for lw in w.layers:
        q = heads(x @ lw.q_w.T.astype(f) + lw.q_b)
        k = heads(x @ lw.k_w.T.astype(f) + lw.k_b)
        v = heads(x @ lw.v_w.T.astype(f) + lw.v_b)
        scores = np.where(keep, q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd), -np.inf)  # (B, nh, S, S)
        ctx = (softmax(scores) @ v).transpose(0, 2, 1, 3).reshape(B, S, nh * hd)  # (B, S, H)
        x = layer_norm(x + ctx @ lw.o_w.T.astype(f) + lw.o_b, lw.attn_ln_w, lw.attn_ln_b, cfg.layer_norm_eps)
        h = gelu(x @ lw.up_w.T.astype(f) + lw.up_b)  # (B, S, I)
        x = layer_norm(x + h @ lw.down_w.T.astype(f) + lw.down_b, lw.ffn_ln_w, lw.ffn_ln_b, cfg.layer_norm_eps)
    return x


def mean_pool_normalize(hidden: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """sentence-transformers' Pooling (mean over the mask) then Normalize: (B, S, H) → (B, H)."""
    m = attention_mask.astype(hidden.dtype)[:, :, None]  # (B, S, 1)
    mean = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return mean / np.maximum(np.linalg.norm(mean, axis=-1, keepdims=True), 1e-12)


# --- the encoder backend ---------------------------------------------------------------------------


class ReferenceEncoder:
    """embed.Embedder's backend over forward(): exact and slow (tests, the oracle)."""

    name = "reference"
    device = "cpu"

    def __init__(self, cfg: BertConfig, weights: BertWeights) -> None:
        self.cfg, self.weights = cfg, weights

    def embeddings(self, input_ids, attention_mask) -> np.ndarray:
        ids, mask = np.asarray(input_ids, np.int64), np.asarray(attention_mask, np.int64)
        return mean_pool_normalize(forward(self.cfg, self.weights, ids, mask), mask)

    async def encode(self, input_ids: list[list[int]], attention_mask: list[list[int]]) -> np.ndarray:
        return self.embeddings(input_ids, attention_mask)

    def close(self) -> None:
        pass
