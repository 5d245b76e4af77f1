"""GGUF → nomoat model package (the Hugging Face onnx-community layout).

    out/config.json, generation_config.json, tokenizer.json, tokenizer_config.json,
    out/onnx/model_q4.onnx, out/nomoat.json (manifest: file sizes and sha256)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import InvalidModelError
from ..package import (
    DATA_FILE,
    FORMAT_VERSION,
    ONNX_FILE,
    OPTIMUM_FILE,
    TENSORS_FILE,
    WASM_FILE,
    WASM_RECIPE,
    check_package,
    sha256,
    write_manifest,
    written_package,
)
from .gguf_file import GGUFModel, read_gguf
from .graph import F32_FILE, LayerWeights, Weights, build_graph, optimum_variant
from .quant import concat, to_embedding, to_f32, to_qlinear, unpermute_rows
from .tokenizer_export import tokenizer_config, tokenizer_json

Progress = Callable[[str, int, int], None]  # (stage, done, total)


def load_weights(m: GGUFModel, progress: Progress | None = None) -> Weights:
    cfg = m.config
    t = m.tensor

    def embed_like(name: str):
        return to_embedding(t(name))

    def opt(name: str):  # an optional 1-D tensor (bias, norm) as f32, or None
        return to_f32(t(name)) if name in m.tensors else None

    layers = []
    for i in range(cfg.num_hidden_layers):
        p = f"blk.{i}."
        if p + "attn_qkv.weight" in m.tensors:  # phi3: q|k|v already fused, HF row order
            qkv = to_qlinear(t(p + "attn_qkv.weight"))
        else:
            q = to_qlinear(t(p + "attn_q.weight"))
            k = to_qlinear(t(p + "attn_k.weight"))
            if cfg.model_type == "llama":  # only llama's converter permutes Q/K rows (for adjacent-pair RoPE);
                q = q.rows(unpermute_rows(q.n, cfg.num_attention_heads))  # qwen2/qwen3/gemma3/phi3 are NEOX:
                k = k.rows(unpermute_rows(k.n, cfg.num_key_value_heads))  # stored in HF order already
            qkv = concat([q, k, to_qlinear(t(p + "attn_v.weight"))])
        if cfg.model_type == "phi3":  # phi3: gate|up fused in ffn_up (gate first, as ggml_swiglu splits it)
            gate_up = to_qlinear(t(p + "ffn_up.weight"))
        else:
            gate_up = concat([to_qlinear(t(p + "ffn_gate.weight")), to_qlinear(t(p + "ffn_up.weight"))])
        bias = None
        if cfg.attention_bias:
            bq, bk, bv = (to_f32(t(p + f"attn_{x}.bias")).reshape(-1) for x in "qkv")
            if cfg.model_type == "llama":  # the bias rows were permuted with their weight rows
                bq = bq[unpermute_rows(bq.size, cfg.num_attention_heads)]
                bk = bk[unpermute_rows(bk.size, cfg.num_key_value_heads)]
            bias = np.concatenate([bq, bk, bv])
        layers.append(LayerWeights(
            attn_norm=to_f32(t(p + "attn_norm.weight")),
            qkv=qkv,
            o=to_qlinear(t(p + "attn_output.weight")),
            ffn_norm=to_f32(t(p + "ffn_norm.weight")),
            gate_up=gate_up,
            down=to_qlinear(t(p + "ffn_down.weight")),
            qkv_bias=bias,
            q_norm=opt(p + "attn_q_norm.weight"),
            k_norm=opt(p + "attn_k_norm.weight"),
            post_attn_norm=opt(p + "post_attention_norm.weight"),
            post_ffn_norm=opt(p + "post_ffw_norm.weight"),
        ))
        if progress:
            progress("reading the weights", i + 1, cfg.num_hidden_layers)
    return Weights(
        embed=embed_like("token_embd.weight"),
        layers=layers,
        final_norm=to_f32(t("output_norm.weight")),
        lm_head=None if cfg.tie_word_embeddings else embed_like("output.weight"),
    )


def convert(gguf_path: str | Path, out_dir: str | Path, accuracy_level: int = 0, progress: Progress | None = None,
            context: int | None = None) -> Path:
    """Convert a GGUF into a model package at out_dir; returns out_dir. progress(stage, done, total),
    if given, hears each layer's weights as they are read, then each step of writing the package.
    context: the package's window (max_position_embeddings), at most the GGUF's context_length (the
    default); as llama.cpp's n_ctx, it picks LongRoPE's factor set (Phi-3.5/Phi-4-mini: long iff
    above the original 4096) and sizes the RoPE tables."""
    import onnx
    from onnx import external_data_helper

    steps = ("building the graph", "writing the weights", "writing the wasm variant", "writing the tokenizer")
    step = (lambda k: progress(steps[k], k + 1, len(steps))) if progress else (lambda k: None)
    m = read_gguf(gguf_path, context=context)
    weights = load_weights(m, progress)
    step(0)
    model = build_graph(m.config, weights, accuracy_level=accuracy_level)

    with written_package(out_dir) as tmp:
        data = Path(DATA_FILE).name
        step(1)
        external_data_helper.convert_model_to_external_data(model, all_tensors_to_one_file=True, location=data,
                                                            size_threshold=1024)
        for t in model.graph.initializer:  # every weight tensor lives in the data file, however small,
            if t.name.startswith(WEIGHT_PREFIXES) and t.HasField("raw_data"):  # so the wasm recipe and
                external_data_helper.set_external_data(t, data)  # the tensor directory can point at it
        onnx.save_model(model, tmp / ONNX_FILE)
        write_tensor_directory(tmp)
        # The Optimum-I/O graph points at the same weights file: no second copy of the weights.
        (tmp / DATA_FILE).chmod(0o644)
        step(2)
        write_wasm_variant(m.config, weights, tmp)
        onnx.save_model(optimum_variant(onnx.load(str(tmp / ONNX_FILE), load_external_data=False)),
                        tmp / OPTIMUM_FILE)
        cfg = m.config
        step(3)
        files = {
            "config.json": cfg.to_json(),
            "generation_config.json": {
                "bos_token_id": cfg.bos_token_id, "eos_token_id": cfg.eos_token_id,
                "pad_token_id": cfg.pad_token_id, "max_length": cfg.max_position_embeddings,
            },
            "tokenizer.json": tokenizer_json(m.metadata),
            "tokenizer_config.json": tokenizer_config(m.metadata, cfg.max_position_embeddings),
        }
        for name, obj in files.items():
            (tmp / name).write_text(json.dumps(obj, ensure_ascii=False, indent=1 if name != "tokenizer.json" else None))
        write_manifest(tmp, {
            "source": {"gguf": Path(gguf_path).name, "sha256": sha256(Path(gguf_path))},
            "accuracy_level": accuracy_level,
            **({"quantization": q} if (q := file_type(m)) else {}),
        })
    return Path(out_dir)


def file_type(m: GGUFModel) -> str | None:
    """The GGUF's general.file_type as llama.cpp names it ("Q4_K_M", "Q4_1" …), or None."""
    import gguf

    try:
        return gguf.LlamaFileType(int(m.metadata.get("general.file_type"))).name.removeprefix("MOSTLY_")
    except (TypeError, ValueError):
        return None


def write_wasm_variant(cfg, weights: Weights, pkg: Path) -> None:
    """onnx/nomoat_wasm.onnx + nomoat_wasm.json: the wasm graph reads every tensor it shares with
    nomoat_q4.onnx from the same data file, and f32 weights from a file the browser builds."""
    import onnx

    shared = {t.name: t for t in onnx.load(str(pkg / ONNX_FILE), load_external_data=False).graph.initializer}
    entries: list[dict] = []
    model = build_graph(cfg, weights, f32_recipe=entries)
    for t in model.graph.initializer:
        if t.data_location != onnx.TensorProto.EXTERNAL and t.name in shared:
            t.CopyFrom(shared[t.name])  # an external reference (or the same small inline tensor)

    def where(name: str) -> list[int]:
        ext = {e.key: e.value for e in shared[name].external_data}
        return [int(ext["offset"]), int(ext["length"])]

    recipe = [{**e, "qweight": where(e["qweight"]), "scales": where(e["scales"]),
               "offsets": where(e["offsets"]) if e["offsets"] else None} for e in entries]
    onnx.save_model(model, pkg / WASM_FILE)
    (pkg / WASM_RECIPE).write_text(json.dumps({
        "data": Path(DATA_FILE).name, "f32": F32_FILE,
        "size": sum(e["n"] * e["k"] * 4 for e in recipe), "tensors": recipe}))


WEIGHT_PREFIXES = ("embed.", "model.", "lm_head.")  # initializer names of weights (not graph constants)


def write_tensor_directory(pkg: Path) -> None:
    """onnx/nomoat_tensors.json: where every weight lies in the data file (offset, length, dtype,
    shape), for engines that read the blocks directly (nomoat's wasm decoder)."""
    import onnx

    tensors = {}
    for t in onnx.load(str(pkg / ONNX_FILE), load_external_data=False).graph.initializer:
        if not t.name.startswith(WEIGHT_PREFIXES):
            continue
        if t.data_location != onnx.TensorProto.EXTERNAL:
            raise InvalidModelError(f"{pkg / ONNX_FILE}: weight {t.name} is not in the data file; "
                                    "re-run 'nomoat convert'.")
        ext = {e.key: e.value for e in t.external_data}
        tensors[t.name] = {"offset": int(ext.get("offset", 0)), "length": int(ext["length"]),
                           "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.data_type).name, "shape": list(t.dims)}
    (pkg / TENSORS_FILE).write_text(json.dumps({"data": Path(DATA_FILE).name, "tensors": tensors}))


def refresh_package(out: Path, manifest: dict) -> None:
    """Bring a package of the current format converted by an older nomoat up to date in place."""
    if TENSORS_FILE not in manifest["files"]:  # converted before the tensor directory existed
        write_tensor_directory(out)
        write_manifest(out, {k: v for k, v in manifest.items() if k not in ("format", "files")})


__all__ = ["FORMAT_VERSION", "check_package", "convert", "load_weights", "read_gguf", "refresh_package"]
