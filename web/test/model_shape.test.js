// @ts-check
// config.json's architecture fields (web/src/package.js modelShape, ropeInvFreqs): the same rules,
// defaults and messages as py/nomoat/config.py ModelConfig.from_dict / rope_inv_freqs, so both
// sides read and refuse the same files.
import assert from "node:assert/strict";
import {test} from "node:test";

import {modelShape, ropeInvFreqs} from "../src/package.js";

const BASE = {vocab_size: 100, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4,
  num_key_value_heads: 2, max_position_embeddings: 256, rms_norm_eps: 1e-5, rope_theta: 10000};
const LLAMA3 = {rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64};

test("a Llama config: the defaults (SmolLM2's config.json has no architecture fields but model_type)", () => {
  const s = modelShape(BASE);
  assert.deepEqual({modelType: s.modelType, act: s.act, attnBias: s.attnBias, qScalar: s.qScalar, window: s.window,
    sliding: s.sliding, localTheta: s.localTheta, ropeScaling: s.ropeScaling, embedScale: s.embedScale},
  {modelType: "llama", act: "silu", attnBias: false, qScalar: 16, window: null, sliding: [false, false], localTheta: 10000,
    ropeScaling: null, embedScale: 1});
  assert.deepEqual(Array.from(ropeInvFreqs(s, 0)), Array.from({length: 8}, (_, i) => 1 / 10000 ** ((2 * i) / 16)));
});

test("a Gemma 3 config: every field read", () => {
  const s = modelShape({...BASE, model_type: "gemma3", hidden_act: "gelu_pytorch_tanh", head_dim: 32,
    query_pre_attn_scalar: 32, sliding_window: 8, layer_types: ["sliding_attention", "full_attention"],
    rope_local_base_freq: 10000, rope_theta: 1e6});
  assert.equal(s.hd, 32);
  assert.equal(s.embedScale, Math.fround(8));
  assert.deepEqual([s.act, s.qScalar, s.window, s.sliding, s.localTheta], ["gelu_pytorch_tanh", 32, 8, [true, false], 10000]);
  assert.equal(ropeInvFreqs(s, 0)[1], 1 / 10000 ** (2 / 32)); // the sliding layer: its own base
  assert.equal(ropeInvFreqs(s, 1)[1], 1 / 1e6 ** (2 / 32));
});

test("llama3 rope scaling: the frequencies py/nomoat/config.py rope_inv_freqs gives", () => {
  const s = modelShape({...BASE, rope_scaling: LLAMA3});
  assert.deepEqual(s.ropeScaling, {factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPos: 64});
  // python -c "from nomoat.config import ModelConfig; print(list(ModelConfig.from_dict({...}).rope_inv_freqs(0)))"
  const py = [1.0, 0.24438459943539834, 0.013042256043820465, 0.003952847075210474, 0.00125, 0.0003952847075210475,
    0.000125, 3.952847075210474e-05];
  ropeInvFreqs(s, 0).forEach((f, i) => assert.ok(Math.abs(f - py[i]) <= 1e-15 * py[i], `${i}: ${f} vs ${py[i]}`));
});

for (const [field, value, message] of /** @type {[string, unknown, RegExp][]} */ ([
  ["model_type", "mistral", /model_type is "mistral", not one of llama, qwen2, qwen3, gemma3, phi3/],
  ["hidden_act", "relu", /hidden_act is "relu", not one of silu, gelu_pytorch_tanh/],
  ["attention_bias", "yes", /attention_bias is "yes", not true or false/],
  ["layer_types", ["sliding_attention"], /layer_types is \["sliding_attention"\], not a list of 2 of full_attention, sliding_attention/],
  ["layer_types", ["sliding_attention", "full_attention"], /layer_types has sliding_attention layers but sliding_window is null/],
  ["sliding_window", 0, /sliding_window is 0, not an integer in 1\.\.16777216/],
  ["query_pre_attn_scalar", -1, /query_pre_attn_scalar is -1, not a number in \(0, 16777216\]/],
  ["rope_local_base_freq", "1e4", /rope_local_base_freq is "1e4", not a number/],
  ["rope_scaling", {rope_type: "yarn", factor: 4}, /rope_scaling is .*, not null or a llama3 rope_scaling object/],
  ["rope_scaling", {...LLAMA3, high_freq_factor: 0.5}, /high_freq_factor is not above its low_freq_factor/],
  ["rope_scaling", {...LLAMA3, original_max_position_embeddings: 64.5},
    /rope_scaling\.original_max_position_embeddings is 64\.5, not an integer in 1\.\.16777216/],
])) {
  test(`config.json ${field} = ${JSON.stringify(value)} is a DataError naming it`, () => {
    assert.throws(() => modelShape({...BASE, [field]: value}), (e) => e instanceof Error && e.name === "DataError" &&
      e.message.startsWith("config.json: ") && message.test(e.message));
  });
}
