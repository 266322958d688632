// The header's Menu button (phones): shows or hides the links under the bar.
(() => {
  const toggle = document.querySelector(".nav-toggle");
  const bar = toggle && toggle.closest(".topbar");
  if (!bar) return;
  toggle.addEventListener("click", () => {
    const open = bar.classList.toggle("nav-open");
    toggle.setAttribute("aria-expanded", String(open));
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && bar.classList.contains("nav-open")) {
      bar.classList.remove("nav-open");
      toggle.setAttribute("aria-expanded", "false");
      toggle.focus();
    }
  });
})();
