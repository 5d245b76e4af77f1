// Who may use nomoat's back end: this extension's own pages, and nothing else. Loaded by
// background.js (the service worker) and offscreen.html (the back end).
//
// A sender is accepted when chrome.runtime says it belongs to this extension (sender.id) and its
// document is one of this extension's pages: sender.origin and sender.url are
// chrome-extension://<our id>/... That covers the popup (also opened in a tab), the offscreen
// document and the "Ask nomoat" panel (panel.html, which content.js shows in an iframe on web
// pages: an extension page too, in its own process). Anything else is refused: other extensions,
// web pages, and content scripts, ours included. A content script runs in the web page's renderer,
// so nomoat's content script only shows the panel and never talks to the back end itself.

/* exported nomoatTrusted */

const NOMOAT_ORIGIN = new URL(chrome.runtime.getURL("")).origin; // chrome-extension://<id>

function nomoatTrusted(sender) {
  return !!sender && sender.id === chrome.runtime.id && sender.origin === NOMOAT_ORIGIN
    && typeof sender.url === "string" && sender.url.startsWith(NOMOAT_ORIGIN + "/");
}
