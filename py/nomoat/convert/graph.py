"""Build the ONNX decoder graph (Optimum's decoder I/O, onnxruntime contrib ops).

Inputs:  input_ids (B, S) int64, attention_mask (B, P+S) int64, position_ids (B, S) int64,
         past_key_values.{i}.key|value (B, n_kv, P, head_dim) f32,
         logits_to_keep () int64 — how many trailing positions get logits (0 = all); nomoat
         feeds 1 so prefill computes only the last position's logits.
Outputs: logits (B, S or logits_to_keep, vocab) f32, present.{i}.key|value (B, n_kv, P+S, head_dim).

Per layer:  SkipSimplifiedLayerNorm → MatMulNBits(q|k|v fused) [+ bias: qwen2] → Split
            [→ per-head SimplifiedLayerNorm of q, k: qwen3, gemma3] → RotaryEmbedding(q, k)
            → GroupQueryAttention [local_window_size: gemma3's sliding layers] → MatMulNBits(o)
            [→ SimplifiedLayerNorm: gemma3's post-norm] → SkipSimplifiedLayerNorm
            → MatMulNBits(gate|up fused) → Split → act(gate) * up (silu, or FastGelu = tanh GELU: gemma3)
            → MatMulNBits(down) [→ SimplifiedLayerNorm: gemma3's post-norm].
Gemma 3's embedding is multiplied by sqrt(hidden) (f32); each layer's RoPE table follows its base and
the rope scaling (llama3, linear, longrope: config.rope_inv_freqs; LongRoPE's attention factor is in
the cos/sin tables); partial rotary turns the first rotary_dim values of each head (rotary_embedding_dim).
All of these are in onnxruntime-web's WebGPU operator list and in the CPU (wasm) contrib ops.
Batch 1 without padding is what nomoat runs; attention_mask only supplies lengths.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..config import ModelConfig
from .quant import F32Linear, QLinear

MS = "com.microsoft"


@dataclass
class LayerWeights:
    attn_norm: np.ndarray  # (hidden,)
    qkv: QLinear  # (n_heads*hd + 2*n_kv*hd, hidden), q/k rows in HF order
    o: QLinear  # (hidden, n_heads*hd)
    ffn_norm: np.ndarray  # (hidden,)
    gate_up: QLinear  # (2*inter, hidden)
    down: QLinear  # (hidden, inter)
    qkv_bias: np.ndarray | None = None  # (n_heads*hd + 2*n_kv*hd,): qwen2
    q_norm: np.ndarray | None = None  # (hd,) per-head RMSNorm of q and k before RoPE: qwen3, gemma3
    k_norm: np.ndarray | None = None
    post_attn_norm: np.ndarray | None = None  # (hidden,) on the attention output before the residual: gemma3
    post_ffn_norm: np.ndarray | None = None  # (hidden,) on the FFN output before the residual: gemma3


@dataclass
class Weights:
    embed: QLinear | np.ndarray  # (vocab, hidden): 8-bit blocks, or f32
    layers: list[LayerWeights]
    final_norm: np.ndarray  # (hidden,)
    lm_head: QLinear | np.ndarray | None  # None = tied to embed


class _Builder:
    def __init__(self, f32_recipe: list[dict] | None = None) -> None:
        self.f32_recipe = f32_recipe  # f32 mode when a list: how to build each f32 weight
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def init(self, name: str, arr: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.array(arr, order="C"), name))
        return name

    def const(self, hint: str, arr) -> str:
        return self.init(self.name(hint), np.asarray(arr))

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, domain: str = "", hint=None, **attrs):
        base = self.name(hint or op_type)
        outs = [f"{base}/out{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=base, domain=domain, **attrs))
        return outs[0] if n_out == 1 else outs


def _linear(b: _Builder, x: str, w: QLinear | F32Linear, prefix: str, accuracy_level: int,
            block_sums: dict[str, str]) -> str:
    """x (B, S, K) → (B, S, N) = x @ W.T: MatMulNBits on `{prefix}.qweight/scales` plus the
    block-offset term if any (convert/quant.py), or a Gemm on the f32 `{prefix}.weight`.
    In f32 mode (b.f32_recipe is a list): a Gemm on an f32 weight that the browser dequantizes
    from these same blocks at load time (the offsets folded in), described by a recipe entry."""
    if isinstance(w, F32Linear):
        return _gemm(b, x, b.init(f"{prefix}.weight", w.weight.astype(np.float32)), w.k, w.n)
    if b.f32_recipe is None:  # (the f32 graph reads the blocks only through its recipe)
        b.init(f"{prefix}.qweight", w.packed)
        b.init(f"{prefix}.scales", w.scales.reshape(-1).astype(np.float32))
        if w.offsets is not None:
            b.init(f"{prefix}.block_offsets", np.ascontiguousarray(w.offsets.T).astype(np.float32))  # (K/block, N)
    return _nbits(b, x, w, prefix, prefix, accuracy_level, block_sums)


def _nbits(b: _Builder, x: str, w: QLinear, prefix: str, hint: str, accuracy_level: int,
           block_sums: dict[str, str]) -> str:
    """x @ W.T for the blocks already stored as `{prefix}.qweight/scales[/block_offsets]`
    (a tied LM head reads the embedding's): W = (q - 2^(bits-1)) * s + c."""
    offsets = f"{prefix}.block_offsets" if w.offsets is not None else None
    if b.f32_recipe is not None:
        return _linear_f32(b, x, w, f"{hint}.f32", f"{prefix}.qweight", f"{prefix}.scales", offsets)
    y = b.op("MatMulNBits", [x, f"{prefix}.qweight", f"{prefix}.scales"], domain=MS, hint=f"{hint}/MatMulNBits",
             K=w.k, N=w.n, bits=w.bits, block_size=w.block, accuracy_level=accuracy_level)
    if offsets is None:
        return y
    key = f"{x}/{w.block}"
    if key not in block_sums:  # ReduceSum_block(x): (B, S, K/block), shared by every weight reading x
        shape = b.const("block_shape", np.array([0, 0, w.k // w.block, w.block], np.int64))
        xr = b.op("Reshape", [x, shape])
        block_sums[key] = b.op("ReduceSum", [xr, b.const("axis", np.array([-1], np.int64))], keepdims=0)
    return b.op("Add", [y, b.op("MatMul", [block_sums[key], offsets], hint=f"{hint}/offset")])


def _gemm(b: _Builder, x: str, weight: str, k: int, n: int) -> str:
    """x (B, S, K) @ weight.T for an f32 weight (N, K) → (B, S, N)."""
    x2 = b.op("Reshape", [x, b.const("flat_k", np.array([-1, k], np.int64))])
    y = b.op("Gemm", [x2, weight], transB=1, hint=f"{weight}/Gemm")  # (B*S, N)
    shape = b.op("Concat", [b.op("Shape", [x], end=2), b.const("n", np.array([n], np.int64))], axis=0)
    return b.op("Reshape", [y, shape])


F32_FILE = "nomoat_wasm.f32"  # a file that is never stored: the browser builds it from the recipe


def _linear_f32(b: _Builder, x: str, w: QLinear, name: str, qweight: str, scales: str, offsets: str | None) -> str:
    offset = sum(e["n"] * e["k"] * 4 for e in b.f32_recipe)
    t = onnx.TensorProto(name=name, data_type=TensorProto.FLOAT, dims=[w.n, w.k],
                         data_location=onnx.TensorProto.EXTERNAL)
    for key, value in (("location", F32_FILE), ("offset", str(offset)), ("length", str(w.n * w.k * 4))):
        entry = t.external_data.add()
        entry.key, entry.value = key, value
    b.inits.append(t)
    b.f32_recipe.append({"name": name, "offset": offset, "n": w.n, "k": w.k, "bits": w.bits, "block": w.block,
                         "qweight": qweight, "scales": scales, "offsets": offsets})
    return _gemm(b, x, name, w.k, w.n)


def _rope_cache(cfg: ModelConfig, inv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin (max_positions, rotary_dim/2) for inverse frequencies inv (cfg.rope_inv_freqs), HF's
    rotate-half convention, times the rope attention factor (LongRoPE's; 1 otherwise), rounded once."""
    t = np.arange(cfg.max_position_embeddings, dtype=np.float64)
    freqs = np.outer(t, inv)
    m = cfg.rope_attention_factor
    return (np.cos(freqs) * m).astype(np.float32), (np.sin(freqs) * m).astype(np.float32)


def optimum_variant(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same graph with Optimum's exact inputs: logits_to_keep becomes an initializer fixed at
    0 (every position), which is what transformers.js and other Optimum-style callers expect.
    (onnxruntime-web cannot feed an overridable initializer, so nomoat keeps its own graph.)"""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    keep = next(i for i in g.input if i.name == "logits_to_keep")
    g.input.remove(keep)
    g.initializer.append(numpy_helper.from_array(np.array(0, np.int64), "logits_to_keep"))
    return out


def build_graph(cfg: ModelConfig, w: Weights, accuracy_level: int = 0,
                f32_recipe: list[dict] | None = None) -> onnx.ModelProto:
    """The decoder. With f32_recipe (a list, filled here): the wasm variant — every quantized
    matmul becomes an f32 Gemm whose weight the browser dequantizes at load time from the same
    blocks (see F32_FILE); onnxruntime-web's wasm MatMulNBits instead expands its whole weight to
    f32 on every call (~0.5 s per decode step)."""
    b = _Builder(f32_recipe)
    L, H, hd = cfg.num_hidden_layers, cfg.hidden_size, cfg.head_dim
    nq, nkv = cfg.num_attention_heads, cfg.num_key_value_heads
    eps = float(cfg.rms_norm_eps)

    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch_size", "sequence_length"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch_size", "total_sequence_length"]),
        helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch_size", "sequence_length"]),
    ]
    logits_shape = ["batch_size", "logits_length", cfg.vocab_size]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, logits_shape)]
    for i in range(L):
        for kv in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(
                f"past_key_values.{i}.{kv}", TensorProto.FLOAT, ["batch_size", nkv, "past_sequence_length", hd]))
            outputs.append(helper.make_tensor_value_info(
                f"present.{i}.{kv}", TensorProto.FLOAT, ["batch_size", nkv, "total_sequence_length", hd]))
    keep = "logits_to_keep"
    inputs.append(helper.make_tensor_value_info(keep, TensorProto.INT64, []))

    # Lengths for GroupQueryAttention: seqlens_k = total - 1 (B,), total_sequence_length ().
    mask_sum = b.op("ReduceSum", ["attention_mask", b.const("axis", np.array([1], np.int64))], keepdims=0)
    seqlens_k = b.op("Cast", [b.op("Sub", [mask_sum, b.const("one", np.array(1, np.int64))])], to=TensorProto.INT32)
    total = b.op("Gather", [b.op("Shape", ["attention_mask"]), b.const("idx1", np.array(1, np.int64))], axis=0)
    total_len = b.op("Cast", [total], to=TensorProto.INT32)

    # Embedding: (B, S) → (B, S, H): gather the token's rows of blocks, W = (q - 2^(bits-1)) * s + c.
    if isinstance(w.embed, QLinear):
        e, V = w.embed, cfg.vocab_size
        nb = H // e.block
        qw = b.init("embed.qweight", e.packed)  # (V, H/block, block*bits/8) uint8
        sc = b.init("embed.scales", e.scales.reshape(-1).astype(np.float32))
        rows = b.op("Gather", [qw, "input_ids"], axis=0)  # (B, S, nb, block*bits/8)
        if e.bits == 4:  # byte i holds element 2i (low nibble) and 2i+1 (high)
            r = b.op("Cast", [rows], to=TensorProto.INT32)
            hi = b.op("Div", [r, b.const("sixteen", np.array(16, np.int32))])
            lo = b.op("Sub", [r, b.op("Mul", [hi, b.const("sixteen", np.array(16, np.int32))])])
            last = b.const("axis_last", np.array([-1], np.int64))
            pairs = b.op("Concat", [b.op("Unsqueeze", [lo, last]), b.op("Unsqueeze", [hi, last])], axis=-1)
            rows = b.op("Reshape", [pairs, b.const("nib_shape", np.array([0, 0, nb, e.block], np.int64))])
        rows = b.op("Cast", [rows], to=TensorProto.FLOAT)  # (B, S, nb, block)
        sc3 = b.op("Reshape", [sc, b.const("sc_shape", np.array([V, nb, 1], np.int64))])
        s_rows = b.op("Gather", [sc3, "input_ids"], axis=0)  # (B, S, nb, 1)
        zero = b.const(f"zero{e.bits}", np.array(1 << (e.bits - 1), np.float32))
        deq = b.op("Mul", [b.op("Sub", [rows, zero]), s_rows])
        if e.offsets is not None:
            c = b.init("embed.block_offsets", np.ascontiguousarray(e.offsets.T).astype(np.float32))  # (nb, V)
            c_rows = b.op("Transpose", [b.op("Gather", [c, "input_ids"], axis=1)], perm=[1, 2, 0])  # (B, S, nb)
            deq = b.op("Add", [deq, b.op("Unsqueeze", [c_rows, b.const("axis_last", np.array([-1], np.int64))])])
        x = b.op("Reshape", [deq, b.const("hid_shape", np.array([0, 0, H], np.int64))], hint="embed")
    else:
        table = b.init("embed.weight", w.embed.astype(np.float32))
        x = b.op("Gather", [table, "input_ids"], axis=0, hint="embed")

    if cfg.embedding_multiplier != 1.0:  # gemma3: x * sqrt(hidden)
        scale = b.const("embed_scale", np.array(cfg.embedding_multiplier, np.float32))
        x = b.op("Mul", [x, scale], hint="embed_scaled")

    ropes: dict[bytes, tuple[str, str]] = {}  # one cos/sin table per distinct set of frequencies

    def rope_tables(layer: int) -> tuple[str, str]:
        inv = cfg.rope_inv_freqs(layer)
        if inv.tobytes() not in ropes:
            name = "rope" if not ropes else "rope.sliding"
            cos, sin = _rope_cache(cfg, inv)
            ropes[inv.tobytes()] = (b.init(f"{name}.cos", cos), b.init(f"{name}.sin", sin))
        return ropes[inv.tobytes()]

    def head_norm(t: str, weight: str, n_heads: int) -> str:
        """RMSNorm of each head's hd values (B, S, n*hd) → same shape."""
        t4 = b.op("Reshape", [t, b.const("heads_shape", np.array([0, 0, n_heads, hd], np.int64))])
        t4 = b.op("SimplifiedLayerNormalization", [t4, weight], axis=-1, epsilon=eps, stash_type=1)
        return b.op("Reshape", [t4, b.const("flat_heads", np.array([0, 0, n_heads * hd], np.int64))])

    def norm(t: str, weight: str) -> str:
        return b.op("SimplifiedLayerNormalization", [t, weight], axis=-1, epsilon=eps, stash_type=1)

    default_scale = 1.0 / np.sqrt(hd)
    # partial rotary (phi3: Phi-4-mini): only each head's first rotary_dim values turn
    partial = {"rotary_embedding_dim": cfg.rotary_dim} if cfg.rotary_dim != hd else {}
    q_dim, kv_dim = nq * hd, nkv * hd
    split_qkv = b.const("split_qkv", np.array([q_dim, kv_dim, kv_dim], np.int64))
    split_ffn = b.const("split_ffn", np.array([cfg.intermediate_size] * 2, np.int64))

    residual = None
    pending = None  # output of the previous sub-block, to add to the residual
    for i, lw in enumerate(w.layers):
        p = f"model.layers.{i}"
        sums: dict[str, str] = {}
        an = b.init(f"{p}.input_layernorm.weight", lw.attn_norm.astype(np.float32))
        if residual is None:
            h = b.op("SimplifiedLayerNormalization", [x, an], axis=-1, epsilon=eps, stash_type=1)
            residual = x
        else:
            h, _, _, residual = b.op("SkipSimplifiedLayerNormalization", [pending, residual, an],
                                     n_out=4, domain=MS, epsilon=eps)
        qkv = _linear(b, h, lw.qkv, f"{p}.attn.qkv_proj", accuracy_level, sums)
        if lw.qkv_bias is not None:
            qkv = b.op("Add", [qkv, b.init(f"{p}.attn.qkv_proj.bias", lw.qkv_bias.astype(np.float32))])
        q, k, v = b.op("Split", [qkv, split_qkv], n_out=3, axis=-1)
        if lw.q_norm is not None:
            q = head_norm(q, b.init(f"{p}.attn.q_norm.weight", lw.q_norm.astype(np.float32)), nq)
            k = head_norm(k, b.init(f"{p}.attn.k_norm.weight", lw.k_norm.astype(np.float32)), nkv)
        cos_c, sin_c = rope_tables(i)
        q = b.op("RotaryEmbedding", [q, "position_ids", cos_c, sin_c], domain=MS, num_heads=nq, interleaved=0,
                 **partial)
        k = b.op("RotaryEmbedding", [k, "position_ids", cos_c, sin_c], domain=MS, num_heads=nkv, interleaved=0,
                 **partial)
        attrs = {}
        if not np.isclose(cfg.attention_scale, default_scale, rtol=1e-7, atol=0):
            attrs["scale"] = float(cfg.attention_scale)
        if cfg.is_sliding(i):  # keys within the last sliding_window positions, the query's own included
            attrs["local_window_size"] = int(cfg.sliding_window)
        gqa = helper.make_node(
            "GroupQueryAttention",
            [q, k, v, f"past_key_values.{i}.key", f"past_key_values.{i}.value", seqlens_k, total_len],
            [f"{p}/attn_out", f"present.{i}.key", f"present.{i}.value"],
            name=f"{p}/GroupQueryAttention", domain=MS, num_heads=nq, kv_num_heads=nkv, **attrs,
        )
        b.nodes.append(gqa)
        attn = _linear(b, f"{p}/attn_out", lw.o, f"{p}.attn.o_proj", accuracy_level, sums)
        if lw.post_attn_norm is not None:
            attn = norm(attn, b.init(f"{p}.attn.post_norm.weight", lw.post_attn_norm.astype(np.float32)))
        fn = b.init(f"{p}.post_attention_layernorm.weight", lw.ffn_norm.astype(np.float32))
        h, _, _, residual = b.op("SkipSimplifiedLayerNormalization", [attn, residual, fn],
                                 n_out=4, domain=MS, epsilon=eps)
        gu = _linear(b, h, lw.gate_up, f"{p}.mlp.gate_up_proj", accuracy_level, sums)
        g, u = b.op("Split", [gu, split_ffn], n_out=2, axis=-1)
        if cfg.hidden_act == "gelu_pytorch_tanh":  # 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3)))
            act = b.op("Mul", [b.op("FastGelu", [g], domain=MS), u])
        else:
            act = b.op("Mul", [b.op("Mul", [g, b.op("Sigmoid", [g])]), u])
        pending = _linear(b, act, lw.down, f"{p}.mlp.down_proj", accuracy_level, sums)
        if lw.post_ffn_norm is not None:
            pending = norm(pending, b.init(f"{p}.mlp.post_norm.weight", lw.post_ffn_norm.astype(np.float32)))

    nw = b.init("model.norm.weight", w.final_norm.astype(np.float32))
    h, _, _, _ = b.op("SkipSimplifiedLayerNormalization", [pending, residual, nw], n_out=4, domain=MS, epsilon=eps)

    # Keep the last `logits_to_keep` positions (0 = all): start = S - (k if k > 0 else S).
    S = b.op("Gather", [b.op("Shape", [h]), b.const("idx1", np.array([1], np.int64))], axis=0)
    k1 = b.op("Reshape", [keep, b.const("one_shape", np.array([1], np.int64))])
    is_all = b.op("Equal", [k1, b.const("zero", np.array([0], np.int64))])
    start = b.op("Sub", [S, b.op("Where", [is_all, S, k1])])
    big = b.const("big", np.array([np.iinfo(np.int64).max], np.int64))
    h = b.op("Slice", [h, start, big, b.const("axis1", np.array([1], np.int64))])

    head = w.embed if w.lm_head is None else w.lm_head
    if isinstance(head, QLinear):
        if w.lm_head is None:  # tied: read the embedding's blocks
            y = _nbits(b, h, head, "embed", "lm_head", accuracy_level, {})
        else:
            y = _linear(b, h, head, "lm_head", accuracy_level, {})
    else:
        table = "embed.weight" if w.lm_head is None else b.init("lm_head.weight", head.astype(np.float32))
        y = _gemm(b, h, table, H, cfg.vocab_size)
    b.nodes.append(helper.make_node("Identity", [y], ["logits"], name="logits_out"))

    graph = helper.make_graph(b.nodes, "nomoat-llama", inputs, outputs, initializer=b.inits)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)],
        producer_name="nomoat",
    )
    model.ir_version = 8
    return model
