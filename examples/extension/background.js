// nomoat's service worker: it only looks after the offscreen document that hosts the model.
//
// A service worker cannot host the model itself: it has no DOM and, in Chromium, cannot start the
// nested (module) Worker that nomoat runs Pyodide and onnxruntime-web in; it is also stopped after
// ~30 s without events, which would throw away a 600 MB model. An offscreen document (reason
// WORKERS) can do both and lives until it is closed, so the model lives there (offscreen.js), and
// clients talk to it directly over a chrome.runtime port. The service worker is not on that path;
// it answers two one-shot messages:
//   {type: "nomoat:ensure"} from a client: create the offscreen document if it is not there.
//   {type: "nomoat:idle"} from the offscreen document: nobody has used it for a while; close it.
importScripts("trust.js");

const OFFSCREEN = "offscreen.html";
let queue = Promise.resolve(); // create/close one at a time

function serial(op) {
  const run = queue.then(op);
  queue = run.catch(() => {});
  return run;
}

async function offscreenExists() {
  const url = chrome.runtime.getURL(OFFSCREEN);
  const contexts = await chrome.runtime.getContexts({contextTypes: ["OFFSCREEN_DOCUMENT"], documentUrls: [url]});
  return contexts.length > 0;
}

const ensure = () => serial(async () => {
  if (await offscreenExists()) return;
  await chrome.offscreen.createDocument({
    url: OFFSCREEN,
    reasons: ["WORKERS"],
    justification: "Runs a small language model (Pyodide and onnxruntime-web) in a Web Worker.",
  });
});

const closeOffscreen = () => serial(async () => {
  if (await offscreenExists()) await chrome.offscreen.closeDocument();
});

async function answer(msg, sender) {
  if (!nomoatTrusted(sender)) return {ok: false, error: {name: "SecurityError", message: "nomoat only answers this extension's own pages."}};
  if (msg.type === "nomoat:ensure") {
    try {
      await ensure();
      return {ok: true};
    } catch (e) {
      return {ok: false, error: {name: "OperationError", message: `Could not start nomoat's back end: ${e.message || e}`}};
    }
  }
  if (msg.type === "nomoat:idle" && sender.url === chrome.runtime.getURL(OFFSCREEN)) {
    await closeOffscreen();
    return {ok: true};
  }
  return {ok: false, error: {name: "TypeError", message: `Unknown message type ${JSON.stringify(msg.type)}.`}};
}

chrome.runtime.onMessage.addListener((msg, sender, sendResponse) => {
  if (!msg || typeof msg.type !== "string" || !msg.type.startsWith("nomoat:")) return false;
  answer(msg, sender).then(sendResponse, (e) => sendResponse({ok: false, error: {name: "OperationError", message: String(e.message || e)}}));
  return true; // answer asynchronously
});
