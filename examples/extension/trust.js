// Who may use nomoat's back end: "from the extension itself". Loaded by background.js (the service
// worker) and offscreen.html (the back end).
//
// A sender is accepted when chrome.runtime says it belongs to this extension (sender.id) and it is
//   "page":    one of this extension's own pages (popup, options, a tab showing popup.html):
//              sender.origin and sender.url are chrome-extension://<our id>/...; or
//   "content": this extension's content script, in the top frame (we declare all_frames: false) of
//              a tab whose URL matches the manifest's content_scripts "matches".
// Anything else (other extensions, web pages, frames we never inject into) is refused. Content
// scripts run inside the web page's renderer, so the back end trusts them less than pages: they
// cannot choose the model URL, and every message is checked for shape (offscreen.js).

/* exported NOMOAT_MATCHES, nomoatSenderKind */

const NOMOAT_ORIGIN = new URL(chrome.runtime.getURL("")).origin; // chrome-extension://<id>

// The content scripts' "matches" from our manifest. An offscreen document's chrome.runtime has no
// getManifest(), so there it is read from manifest.json.
const NOMOAT_MATCHES = (chrome.runtime.getManifest
  ? Promise.resolve(chrome.runtime.getManifest())
  : fetch(chrome.runtime.getURL("manifest.json")).then((r) => r.json())
).then((m) => (m.content_scripts || []).flatMap((c) => c.matches || []));

// Chrome's match patterns (https://developer.chrome.com/docs/extensions/develop/concepts/match-patterns):
// <scheme>://<host><path>; "*" scheme = http and https; no port in the pattern = any port.
function nomoatMatches(pattern, url) {
  let u;
  try {
    u = new URL(url);
  } catch (e) {
    return false;
  }
  const scheme = u.protocol.slice(0, -1);
  if (pattern === "<all_urls>") return ["http", "https", "file", "ws", "wss"].includes(scheme);
  const m = /^(\*|[a-z][a-z0-9+.-]*):\/\/([^/]*)(\/.*)$/.exec(pattern);
  if (!m) return false;
  if (m[1] === "*" ? !["http", "https"].includes(scheme) : m[1] !== scheme) return false;
  const hp = /^(.*?)(?::(\d+|\*))?$/.exec(m[2]);
  const host = hp[1], port = hp[2];
  if (port && port !== "*" && port !== u.port) return false;
  if (host !== "*") {
    if (host.startsWith("*.")) {
      const base = host.slice(2);
      if (u.hostname !== base && !u.hostname.endsWith("." + base)) return false;
    } else if (u.hostname !== host) return false;
  }
  const esc = (s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp("^" + m[3].split("*").map(esc).join(".*") + "$").test(u.pathname + u.search);
}

// "page", "content", or null (refused). matches: await NOMOAT_MATCHES.
function nomoatSenderKind(sender, matches) {
  if (!sender || sender.id !== chrome.runtime.id) return null;
  const url = typeof sender.url === "string" ? sender.url : "";
  if (sender.origin === NOMOAT_ORIGIN && url.startsWith(NOMOAT_ORIGIN + "/")) return "page";
  if (!sender.tab || sender.frameId !== 0) return null;
  let origin;
  try {
    origin = new URL(url).origin;
  } catch (e) {
    return null;
  }
  if (sender.origin !== undefined && sender.origin !== origin) return null;
  return matches.some((p) => nomoatMatches(p, url)) ? "content" : null;
}
