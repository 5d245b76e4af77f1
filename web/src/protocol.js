// @ts-check
// The one wire protocol between window.llm and its back end, for every transport (the page's
// dedicated worker, the extension's runtime port): messages {kind, id, payload}; replies
// {kind: "return" | "throw" | "chunk" | "progress" | "event", id, payload}. Errors cross as plain
// {name, message, ...extra} (wireError) and become the exceptions a page expects (fromWire).

/** Fields of an error that travel with it. */
const EXTRA = ["requested", "contextWindow", "stats"];

/**
 * An error as it crosses a message boundary.
 * @param {unknown} e
 * @returns {{name: string, message: string} & Record<string, unknown>}
 */
export function wireError(e) {
  const err = /** @type {Record<string, any>} */ (e && typeof e === "object" ? e : {});
  const out = {name: String(err.name || "Error"), message: String(err.message || e)};
  for (const k of EXTRA) if (err[k] !== undefined) /** @type {Record<string, unknown>} */ (out)[k] = err[k];
  return out;
}
