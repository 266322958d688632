// Regions that scroll (code examples, wide tables in a card) get a Tab stop, so a
// keyboard can scroll them too (axe: scrollable-region-focusable). Runs after the page's own
// scripts (highlighting changes the code's width) and after every htmx swap.
(() => {
  function focusable(root) {
    (root || document).querySelectorAll("main pre, main pre code, main .card, main section, main div").forEach((el) => {
      if (el.hasAttribute("tabindex")) return;
      const style = getComputedStyle(el);
      const scrolls = (overflow) => overflow === "auto" || overflow === "scroll";
      const sideways = scrolls(style.overflowX) && el.scrollWidth > el.clientWidth + 1;
      const down = scrolls(style.overflowY) && el.scrollHeight > el.clientHeight + 1;
      if (!sideways && !down) return;
      // Already reachable: something inside takes the focus (and scrolls it into view).
      if (el.querySelector("a[href], button, input, select, textarea, [tabindex]")) return;
      el.setAttribute("tabindex", "0");
    });
  }
  window.addEventListener("load", () => focusable());
  document.addEventListener("htmx:afterSettle", (event) => focusable(event.target));
})();
