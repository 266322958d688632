// The Traces pages. The list: a click anywhere on a row opens the call; choosing another
// project loads its page (its users and filters differ). A call's page: the conversation
// drawn as chat messages, the answer through the Playground's sanitized Markdown renderer.
(function () {
  "use strict";
  const Y = (window.Yardstick = window.Yardstick || {});

  document.addEventListener("click", (event) => {
    const row = event.target.closest("tr.trace-row[data-href]");
    if (!row || event.target.closest("a, button, input, select")) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey) {
      window.open(row.dataset.href, "_blank");
    } else {
      window.location.href = row.dataset.href;
    }
  });

  const projectSelect = document.querySelector("#trace-filters select[name=project]");
  if (projectSelect) {
    // Not an htmx swap: the form's user list belongs to the project.
    projectSelect.addEventListener("change", (event) => {
      event.stopPropagation();
      const url = new URL(window.location.href);
      url.search = new URLSearchParams({ project: projectSelect.value }).toString();
      window.location.href = url.toString();
    });
  }

  // Empty filters stay out of the URL: a shared link says only what was chosen.
  document.body.addEventListener("htmx:configRequest", (event) => {
    if (!event.detail.elt.closest || !event.detail.elt.closest("#trace-filters")) return;
    const data = event.detail.formData;
    Array.from(data.keys()).forEach((key) => {
      if (data.getAll(key).every((value) => value === "")) data.delete(key);
    });
  });

  // A message's text: a string, or the text parts of a list of parts (images are stored as
  // a note like "[image/png, 412 KB omitted]").
  function textOf(content) {
    if (typeof content === "string") return content;
    if (Array.isArray(content)) {
      return content.map((part) => {
        if (!part || typeof part !== "object") return "";
        if (part.type === "text") return part.text || "";
        if (part.type === "image_url") {
          const url = part.image_url && (part.image_url.url || part.image_url);
          return typeof url === "string" ? `[image: ${url.slice(0, 80)}]` : "[image]";
        }
        return `[${part.type || "part"}]`;
      }).filter(Boolean).join("\n");
    }
    if (content == null) return "";
    return JSON.stringify(content, null, 2);
  }

  const ROLE_LABELS = { user: "User", assistant: "Assistant", system: "System", tool: "Tool", developer: "Developer" };

  function messageElement(role, content, extra) {
    const el = document.createElement("div");
    el.className = `msg msg-${role === "assistant" ? "assistant" : role === "user" ? "user" : "other"}`;
    if (extra && extra.answer) el.classList.add("trace-answer");
    el.dataset.role = role;
    const label = document.createElement("div");
    label.className = "msg-role";
    label.textContent = (extra && extra.answer) ? "Answer" : (ROLE_LABELS[role] || String(role));
    el.appendChild(label);
    const body = document.createElement("div");
    const text = textOf(content);
    if (role === "assistant") {
      body.className = "msg-content markdown";
      Y.renderMarkdown(body, text);
    } else {
      body.className = "msg-content";
      body.textContent = text;
    }
    el.appendChild(body);
    const calls = extra && extra.toolCalls;
    if (Array.isArray(calls) && calls.length) {
      const pre = document.createElement("pre");
      pre.className = "trace-json";
      pre.textContent = JSON.stringify(calls, null, 2);
      el.appendChild(pre);
    }
    return el;
  }

  const data = document.getElementById("trace-conversation");
  const target = document.getElementById("trace-messages");
  if (data && target && Y.renderMarkdown) {
    const conversation = JSON.parse(data.textContent);
    (conversation.messages || []).forEach((m) => {
      if (!m || typeof m !== "object") return;
      target.appendChild(messageElement(m.role || "user", m.content, { toolCalls: m.tool_calls }));
    });
    if (conversation.answer) {
      target.appendChild(messageElement("assistant", conversation.answer.content,
        { answer: true, toolCalls: conversation.answer.tool_calls }));
    }
  }
})();
