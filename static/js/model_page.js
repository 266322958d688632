// A model's page: the example tabs (click, or arrow keys within the tab list) and their code
// highlighted. The code is the server's text; highlight.js escapes what it wraps.
(function () {
  "use strict";
  const root = document.querySelector("[data-examples]");
  if (!root) return;
  const tabs = [...root.querySelectorAll("[data-example-tab]")];
  function show(tab) {
    for (const t of tabs) {
      const on = t === tab;
      t.classList.toggle("active", on);
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      root.querySelector(`[data-example="${t.dataset.exampleTab}"]`).hidden = !on;
    }
  }
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => show(tab));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const next = tabs[(i + step + tabs.length) % tabs.length];
      show(next);
      next.focus();
    });
  });
  if (window.hljs) root.querySelectorAll("pre > code").forEach((code) => hljs.highlightElement(code));
})();
