// The Inference page: clicking a card (anywhere but its name or a button) selects it for a
// comparison; each selected card then offers "Compare N models in the Playground". Compare
// shows at most data-max-selected panes, and a model no engine serves cannot be picked: both
// are said in the status line instead.
(function () {
  "use strict";
  const grid = document.getElementById("model-cards");
  if (!grid) return;
  const selected = []; // model ids, in the order they were picked
  const limit = Number(grid.dataset.maxSelected) || 6;
  const status = document.getElementById("selection-status");

  function say(text) {
    if (status) status.textContent = text;
  }

  function compareUrl() {
    const ids = selected.map((id) => encodeURIComponent(id).replace(/%2F/gi, "/"));
    return "/playground/compare?models=" + ids.join(",");
  }

  function refresh() {
    const n = selected.length;
    const label = `Compare ${n} ${n === 1 ? "model" : "models"} in the Playground`;
    grid.querySelectorAll(".model-card").forEach((card) => {
      const isSelected = selected.includes(card.dataset.modelId);
      card.classList.toggle("selected", isSelected);
      card.querySelector(".select-mark").setAttribute("aria-pressed", String(isSelected));
      const button = card.querySelector(".compare-btn");
      button.hidden = !isSelected;
      button.textContent = label;
      button.href = compareUrl();
    });
  }

  function toggle(card) {
    const id = card.dataset.modelId;
    const at = selected.indexOf(id);
    if (at >= 0) {
      selected.splice(at, 1);
      say("");
    } else if (card.classList.contains("unavailable")) {
      say(card.dataset.unavailableReason || `${card.dataset.modelName} is not available: no deployment serves it.`);
      return;
    } else if (selected.length >= limit) {
      say(`Compare shows up to ${limit} models: unselect one to pick another.`);
      return;
    } else {
      selected.push(id);
      say("");
    }
    refresh();
  }

  grid.addEventListener("click", (event) => {
    const card = event.target.closest(".model-card");
    if (!card) return;
    // The card's toggle button (keyboards press it with Enter or Space).
    if (event.target.closest(".select-mark")) {
      toggle(card);
      return;
    }
    // The name is a link to the model page; buttons and links do their own thing.
    if (event.target.closest("a, button, .model-name")) return;
    // Selecting text (e.g. the model ID) is not a click on the card.
    if (String(window.getSelection()).length > 0) return;
    toggle(card);
  });
  refresh();
})();
