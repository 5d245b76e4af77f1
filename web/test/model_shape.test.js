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
    sliding: s.sliding, localTheta: s.localTheta, ropeScaling: s.ropeScaling, embedScale: s.embedScale, rd: s.rd, ropeAttn: s.ropeAttn},
  {modelType: "llama", act: "silu", attnBias: false, qScalar: 16, window: null, sliding: [false, false], localTheta: 10000,
    ropeScaling: null, embedScale: 1, rd: 16, ropeAttn: 1});
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
  assert.deepEqual(s.ropeScaling, {kind: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPos: 64});
  // python -c "from nomoat.config import ModelConfig; print(list(ModelConfig.from_dict({...}).rope_inv_freqs(0)))"
  const py = [1.0, 0.24438459943539834, 0.013042256043820465, 0.003952847075210474, 0.00125, 0.0003952847075210475,
    0.000125, 3.952847075210474e-05];
  ropeInvFreqs(s, 0).forEach((f, i) => assert.ok(Math.abs(f - py[i]) <= 1e-15 * py[i], `${i}: ${f} vs ${py[i]}`));
});

test("linear and longrope scaling, partial rotary: the frequencies py/nomoat/config.py rope_inv_freqs gives", () => {
  const lin = modelShape({...BASE, rope_scaling: {rope_type: "linear", factor: 4}});
  assert.deepEqual(lin.ropeScaling, {kind: "linear", factor: 4});
  const pyLin = [0.25, 0.07905694150420949, 0.025, 0.007905694150420948, 0.0025, 0.000790569415042095, 0.00025,
    7.905694150420948e-05];
  ropeInvFreqs(lin, 0).forEach((f, i) => assert.ok(Math.abs(f - pyLin[i]) <= 1e-15 * pyLin[i], `${i}: ${f} vs ${pyLin[i]}`));
  const rs = {rope_type: "longrope", long_factor: [1, 1.5, 3, 6, 12, 24], short_factor: [1, 1, 1.1, 1.2, 1.4, 1.6],
    original_max_position_embeddings: 64, attention_factor: 1.2};
  const phi = modelShape({...BASE, model_type: "phi3", partial_rotary_factor: 0.75, rope_scaling: rs});
  assert.deepEqual([phi.rd, phi.ropeAttn], [12, 1.2]);
  const pyPhi = [1.0, 0.14362897933545893, 0.015471962778709268, 0.0016666666666666668, 0.0001795362241693237,
    1.933995347338657e-05]; // the long factors: the window 256 is above the original 64
  ropeInvFreqs(phi, 0).forEach((f, i) => assert.ok(Math.abs(f - pyPhi[i]) <= 1e-15 * pyPhi[i], `${i}: ${f} vs ${pyPhi[i]}`));
  const short = modelShape({...BASE, max_position_embeddings: 64, partial_rotary_factor: 0.75, rope_scaling: rs});
  assert.ok(Math.abs(ropeInvFreqs(short, 0)[5] / (1e4 ** (-10 / 12) / 1.6) - 1) < 1e-15); // window 64: the short factors
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
  ["rope_scaling", {rope_type: "yarn", factor: 4}, /rope_scaling is .*, not null or a llama3, linear, longrope rope_scaling object/],
  ["rope_scaling", {rope_type: "linear", factor: 0}, /rope_scaling\.factor is 0, not a number in \(0, 1000000\]/],
  ["rope_scaling", {rope_type: "longrope", long_factor: Array(8).fill(1), short_factor: Array(7).fill(1),
    original_max_position_embeddings: 64, attention_factor: 1.1}, /rope_scaling\.short_factor is .*, not a list of 8 numbers in \(0, 1000000\]/],
  ["rope_scaling", {rope_type: "longrope", long_factor: Array(8).fill(1), short_factor: Array(8).fill(1),
    original_max_position_embeddings: 64}, /rope_scaling\.attention_factor is missing, not a number in \(0, 1000000\]/],
  ["partial_rotary_factor", 0.3, /partial_rotary_factor 0\.3 turns 5 of head_dim 16, not an even number in 2\.\.16/],
  ["partial_rotary_factor", 1.5, /partial_rotary_factor is 1\.5, not a number in \(0, 1\]/],
  ["rope_scaling", {...LLAMA3, high_freq_factor: 0.5}, /high_freq_factor is not above its low_freq_factor/],
  ["rope_scaling", {...LLAMA3, original_max_position_embeddings: 64.5},
    /rope_scaling\.original_max_position_embeddings is 64\.5, not an integer in 1\.\.16777216/],
])) {
  test(`config.json ${field} = ${JSON.stringify(value)} is a DataError naming it`, () => {
    assert.throws(() => modelShape({...BASE, [field]: value}), (e) => e instanceof Error && e.name === "DataError" &&
      e.message.startsWith("config.json: ") && message.test(e.message));
  });
}
