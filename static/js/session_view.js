// A session shown read-only (its permalink, for someone who does not own it): each pane's
// messages, the answers through the sanitized Markdown renderer like everywhere else.
(function () {
  "use strict";
  const Y = window.Yardstick;
  const dataEl = document.getElementById("restore-data");
  if (!dataEl) return;
  const data = JSON.parse(dataEl.textContent);
  const text = (content) =>
    Array.isArray(content) ? content.filter((p) => p.type === "text").map((p) => p.text).join("\n") : content || "";
  for (const pane of data.panes) {
    const box = document.querySelector(`[data-pane="${CSS.escape(pane.pane)}"] [data-messages]`);
    if (!box) continue;
    for (const message of pane.messages) {
      const el = document.createElement("div");
      el.className = `msg msg-${message.role}`;
      el.dataset.role = message.role;
      const role = document.createElement("div");
      role.className = "msg-role";
      role.textContent = message.role === "user" ? "You" : "Assistant";
      const body = document.createElement("div");
      body.className = "msg-content" + (message.role === "assistant" ? " markdown" : "");
      if (message.role === "assistant") Y.renderMarkdown(body, text(message.content));
      else body.textContent = text(message.content);
      el.append(role, body);
      box.appendChild(el);
    }
  }
})();
