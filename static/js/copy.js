// Copy buttons: <button data-copy-target="#id"> copies that element's text.
(function () {
  "use strict";
  function fallbackCopy(text) {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } finally { area.remove(); }
  }
  async function copyText(text) {
    // The async clipboard needs a secure context; plain http on a LAN host falls back.
    if (navigator.clipboard && window.isSecureContext) {
      try { await navigator.clipboard.writeText(text); return; } catch (e) { /* fall back */ }
    }
    fallbackCopy(text);
  }
  function flash(button) {
    const label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    button.textContent = button.classList.contains("btn-icon") ? "✓" : "Copied";
    button.classList.add("copied");
    setTimeout(() => { button.textContent = label; button.classList.remove("copied"); }, 1200);
  }
  window.Yardstick = window.Yardstick || {};
  window.Yardstick.copyText = copyText;
  window.Yardstick.flashCopied = flash;
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-copy-target]");
    if (!button) return;
    event.preventDefault();
    event.stopPropagation();
    const target = document.querySelector(button.dataset.copyTarget);
    if (target) copyText(target.textContent).then(() => flash(button));
  });
})();
