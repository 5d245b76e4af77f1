// @ts-check
// nomoat's errors: a named Error, whose name is the condition (the DOMException name the page
// will see: DataError, NotSupportedError, QuotaExceededError …) and whose message names the fix.
// The one place such errors are made; protocol.js carries them across message boundaries.

/**
 * @param {string} name the condition, e.g. "DataError"
 * @param {string} message what happened and how to fix it
 * @param {Record<string, unknown>} [extra] fields that travel with it (requested, contextWindow, stats)
 * @returns {Error & Record<string, unknown>}
 */
export function named(name, message, extra) {
  const e = /** @type {Error & Record<string, unknown>} */ (new Error(message));
  e.name = name;
  Object.assign(e, extra || {});
  return e;
}
