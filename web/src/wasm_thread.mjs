// @ts-check
// A helper thread of nomoat's wasm decoder (wasm_engine.mjs): the same kernels on the same shared
// memory. It takes one job at a time from a control block of Int32s in that memory:
//   [0] job number (posted by the engine)  [1] job done  [2] op (1 matmul, 2 attend16, 4 matmulF32, 5 the
//   export numbered [3] in the module's export order, with [4..] its integer arguments: wasm_encoder.mjs, and
//   matmul8 for wasm_engine.mjs)
//   [3..] the kernel's arguments (an f32 one as its bits)  [30] hot: spin, don't sleep  [31] 1 = the job threw
// While the engine is inside a forward() ("hot") it spins between jobs; otherwise it sleeps.
const SEQ = 0, DONE = 1, OP = 2, ARGS = 3, HOT = 30, ERR = 31;

/** @param {MessageEvent<{module: WebAssembly.Module, memory: WebAssembly.Memory, ctrl: number}>} ev */
self.onmessage = async ({data: {module, memory, ctrl}}) => {
  /** @type {Record<string, any>} */
  let k;
  try {
    k = (await WebAssembly.instantiate(module, {env: {memory, abort() {
      throw new Error("nomoat's wasm decoder aborted");
    }}})).exports;
  } catch (e) { // (a rejection here would reach no one: the engine would wait for "ready" for ever)
    self.postMessage({error: String(e)});
    return;
  }
  const c = new Int32Array(memory.buffer, ctrl, 32), names = Object.keys(k);
  let last = Atomics.load(c, SEQ); // before "ready": the first job may be posted right after it
  self.postMessage("ready");
  for (;;) {
    let spins = 0;
    while (Atomics.load(c, SEQ) === last) {
      if (++spins > 4096 && !Atomics.load(c, HOT)) {
        Atomics.wait(c, SEQ, last, 1000);
        spins = 0;
      }
    }
    last = Atomics.load(c, SEQ);
    const a = c.subarray(ARGS, ARGS + 18);
    try {
      if (c[OP] === 1) k.matmul(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14]);
      else if (c[OP] === 2) {
        k.attend16(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15], a[16],
          new Float32Array(Int32Array.of(a[17]).buffer)[0]);
      } else if (c[OP] === 4) k.matmulF32(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]);
      else if (c[OP] === 5) k[names[a[0]]](...a.subarray(1));
      else if (c[OP] === 3) return; // the engine is gone
    } catch (e) {
      Atomics.store(c, ERR, 1);
    }
    Atomics.store(c, DONE, last);
  }
};
