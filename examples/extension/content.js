// The content script: it only puts the "Ask nomoat" panel (panel.html, an extension page) on the
// pages the manifest matches (localhost here), in an iframe. Nothing private passes through this
// script or the page's DOM: the question and the answer live in the panel's own document, another
// origin in another process, which the page's scripts cannot read, write or listen to (panel.js).
// This script does not talk to the back end, and it listens to nothing the page can send.
//
// The page can still remove, hide or cover the panel: that is denial, and the panel then refuses
// to send (panel.js). It cannot stop the panel from appearing by taking its name (nothing is looked
// up in the page's DOM), nor reach the iframe: a closed shadow root holds it, and Chromium leaves
// frames in shadow trees out of window.frames, so the page cannot navigate or message it either.
(function () {
  "use strict";
  if (window.top !== window) return;

  const host = document.createElement("div");
  const style = {position: "fixed", right: "12px", bottom: "12px", width: "340px", height: "240px", margin: "0",
    padding: "0", border: "0", "z-index": "2147483647"};
  for (const [k, v] of Object.entries(style)) host.style.setProperty(k, v, "important");
  const frame = document.createElement("iframe");
  frame.title = "Ask nomoat";
  frame.style.cssText = "display: block; width: 100%; height: 100%; border: 0; color-scheme: normal";
  frame.src = chrome.runtime.getURL("panel.html");
  host.attachShadow({mode: "closed"}).appendChild(frame);
  document.documentElement.appendChild(host);
})();
