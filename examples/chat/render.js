// The chat demo's Markdown: a model's answer (untrusted text) as safe HTML, re-rendered whole as it
// grows. marked parses, DOMPurify sanitizes; both are passed in (the page loads them from the
// runtime's vendor/ folder, the node tests from node_modules), so this module runs anywhere with a DOM.
//
// What may come out: Markdown's own elements (paragraphs, headings, emphasis, lists, quotes, tables,
// code) and links to http(s)/mailto, which open in a new tab without a referrer. Raw HTML in the
// text is shown as text; images become their alt text (nothing loads from anywhere); no script,
// style, event handler, id or form element survives. render() then gives each code block a Copy
// button (the page handles its clicks).

const TAGS = ["p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "code", "pre",
  "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td"];
const ATTRS = ["href", "title", "class", "start", "align"];
const LINK = /^(?:https?:|mailto:)/i;
const LANGUAGE = /^language-[\w+#.-]+$/;

const escapeHTML = (s) => s.replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"})[c]);

/**
 * A renderer over the given libraries.
 * @param {{marked: any, DOMPurify: any, window: Window}} deps marked's module, DOMPurify's factory, a DOM window
 */
export function createRenderer({marked, DOMPurify, window}) {
  const md = new marked.Marked({gfm: true, breaks: false, async: false});
  md.use({
    renderer: {
      html: ({text}) => escapeHTML(text),
      image: ({text}) => escapeHTML(text ? `[image: ${text}]` : "[image]"),
      code({text, lang}) {
        const language = (lang || "").match(/^[\w+#.-]*/)[0];
        const cls = language ? ` class="language-${escapeHTML(language)}"` : "";
        return `<pre><code${cls}>${escapeHTML(text)}</code></pre>\n`;
      },
    },
  });
  const purify = DOMPurify(window);
  purify.addHook("afterSanitizeAttributes", (node) => {
    if (node.nodeName === "A") {
      const href = node.getAttribute("href");
      if (href !== null && !LINK.test(href.trim())) node.removeAttribute("href");
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    }
    const cls = node.getAttribute && node.getAttribute("class");
    if (cls !== null && cls !== undefined && !(node.nodeName === "CODE" && LANGUAGE.test(cls))) {
      node.removeAttribute("class");
    }
  });
  const config = {ALLOWED_TAGS: TAGS, ALLOWED_ATTR: ATTRS, ALLOW_DATA_ATTR: false, ALLOW_ARIA_ATTR: false};

  /** The sanitized HTML of Markdown `text` (a string). @param {string} text */
  function html(text) {
    return purify.sanitize(md.parse(text), config);
  }

  /** Shows Markdown `text` in `el`, replacing what it held. @param {Element} el @param {string} text */
  function render(el, text) {
    const doc = el.ownerDocument;
    const fragment = purify.sanitize(md.parse(text), {...config, RETURN_DOM_FRAGMENT: true});
    for (const pre of fragment.querySelectorAll("pre")) {
      const box = doc.createElement("div");
      box.className = "code";
      const copy = doc.createElement("button");
      copy.type = "button";
      copy.className = "copy";
      copy.textContent = "Copy";
      pre.replaceWith(box);
      box.append(copy, pre);
    }
    for (const node of [...fragment.childNodes]) if (node.nodeType === 3 && !node.textContent.trim()) node.remove();
    el.replaceChildren(fragment);
  }

  return {html, render};
}
