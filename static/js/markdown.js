// Model output is untrusted: Markdown -> HTML with marked, then DOMPurify keeps only inert
// markup (no script, no event handlers, no javascript: URLs, no images that could leak data).
(function () {
  "use strict";
  const Y = (window.Yardstick = window.Yardstick || {});
  const PURIFY = {
    FORBID_TAGS: ["img", "style", "form", "input", "button", "textarea", "select", "iframe",
      "object", "embed", "svg", "math", "video", "audio", "source", "link", "meta", "base"],
    FORBID_ATTR: ["style", "srcset", "action", "formaction"],
    ALLOW_DATA_ATTR: false,
  };
  DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A") {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer nofollow");
    }
  });

  function addCopyButtons(root) {
    root.querySelectorAll("pre").forEach((pre) => {
      const wrap = document.createElement("div");
      wrap.className = "code-block";
      pre.replaceWith(wrap);
      wrap.appendChild(pre);
      const button = document.createElement("button");
      button.type = "button";
      button.className = "btn btn-small copy-code";
      button.textContent = "Copy";
      button.addEventListener("click", () => {
        Y.copyText(pre.textContent).then(() => Y.flashCopied(button));
      });
      wrap.prepend(button);
    });
  }

  Y.renderMarkdown = function (target, text) {
    const html = marked.parse(text || "", { gfm: true, breaks: true, async: false });
    target.innerHTML = DOMPurify.sanitize(html, PURIFY);
    addCopyButtons(target);
  };
})();
