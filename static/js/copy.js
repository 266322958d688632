// Copy buttons: <button data-copy-target="#id"> copies that element's text,
// <button data-copy-text="..."> copies the attribute's value.
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
    if (!button.classList.contains("btn-icon")) button.dataset.label = label;
    button.classList.add("copied");
    if (!button.classList.contains("btn-icon")) button.textContent = "Copied";
    setTimeout(() => {
      button.classList.remove("copied");
      if (!button.classList.contains("btn-icon")) button.textContent = label;
    }, 1200);
  }
  window.Yardstick = window.Yardstick || {};
  window.Yardstick.copyText = copyText;
  window.Yardstick.flashCopied = flash;
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-copy-target], [data-copy-text]");
    if (!button) return;
    event.preventDefault();
    const target = button.dataset.copyTarget && document.querySelector(button.dataset.copyTarget);
    const text = target ? target.textContent : button.dataset.copyText;
    if (text !== undefined) copyText(text).then(() => flash(button));
  });
})();
