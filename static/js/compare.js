// Compare: 2-6 panes, each with its own model and parameters; one message goes to all of them
// and every pane streams at once over the page's one websocket.
(function () {
  "use strict";
  const Y = window.Yardstick;
  const root = document.getElementById("compare");
  if (!root) return;
  const MAX = parseInt(root.dataset.maxPanes, 10) || 6;
  const MIN = 2;
  const panesEl = document.getElementById("panes");
  const template = document.getElementById("pane-template");
  const prompt = document.getElementById("prompt");
  const systemPrompt = document.getElementById("system-prompt");
  const stopAll = document.getElementById("stop-all");
  const addButton = document.getElementById("add-pane");
  const panes = [];
  let paneSeq = 0;
  let attachments = null;
  let ticker = null;

  const session = new Y.ChatSession("compare");
  const socket = new Y.ChatSocket({
    onEvent: (event) => {
      if (event.type === "session") {
        session.adopt(event);
        return;
      }
      for (const pane of panes) {
        if (event.type === "connection_lost" || event.pane === pane.id) pane.run.handle(event);
      }
    },
    onStatus: Y.showSocketStatus,
  });

  function syncUrl() {
    const ids = panes.map((p) => encodeURIComponent(p.select.value).replace(/%2F/gi, "/"));
    const sessionPart = session.id ? `&session=${encodeURIComponent(session.id)}` : "";
    history.replaceState(null, "", `${location.pathname}?models=${ids.join(",")}${sessionPart}`);
  }

  function refreshChrome() {
    panes.forEach((p, i) => {
      p.label.textContent = String(i + 1);
      p.el.querySelector('[data-action="remove"]').disabled = panes.length <= MIN;
    });
    addButton.disabled = panes.length >= MAX;
    stopAll.disabled = !panes.some((p) => p.run.running);
    document.getElementById("pane-count").textContent = `${panes.length} panes`;
    if (attachments) attachments.refresh();
    panesEl.style.setProperty("--panes", panes.length);
    const anyRunning = panes.some((p) => p.run.running);
    if (anyRunning && !ticker) ticker = setInterval(tick, 100);
    if (!anyRunning && ticker) { clearInterval(ticker); ticker = null; tick(); }
  }

  function showMetrics(pane) {
    const live = pane.run.live || {};
    const set = (key, value) => { pane.metrics.querySelector(`[data-m="${key}"]`).textContent = value; };
    const elapsed = pane.run.running ? pane.run.elapsedMs() : live.elapsed_ms;
    set("elapsed", elapsed === undefined ? "–" : Y.formatMs(elapsed));
    set("ttft", Y.formatMs(live.ttft_ms));
    set("rate", Y.formatRate(live.tokens_per_s));
    set("tokens", live.completion_tokens ?? "–");
    set("cost", Y.formatCost(live.cost_micros));
    pane.el.classList.toggle("running", pane.run.running);
  }
  function tick() { panes.forEach(showMetrics); }

  // `restored`: a pane of a restored session (its id, parameters and messages come back).
  function addPane(modelId, copyFrom, restored) {
    if (panes.length >= MAX) return;
    const el = template.content.firstElementChild.cloneNode(true);
    let id = `p${++paneSeq}`;
    if (restored && !panes.some((p) => p.id === restored.pane)) {
      // The pane keeps its id: its next run continues that pane's history in the session.
      id = restored.pane;
      const n = parseInt(id.replace(/^p/, ""), 10);
      if (n >= paneSeq) paneSeq = n;
    }
    const pane = { id, el };
    el.dataset.pane = pane.id;
    pane.select = el.querySelector("[data-model-select]");
    pane.label = el.querySelector("[data-pane-label]");
    pane.metrics = el.querySelector("[data-metrics]");
    pane.params = el.querySelector("[data-params]");
    if (modelId && ![...pane.select.options].some((o) => o.value === modelId)) {
      pane.select.querySelector("optgroup").prepend(new Option(`${modelId} (not served)`, modelId));
    }
    if (modelId) pane.select.value = modelId;
    if (copyFrom) {
      copyFrom.params.querySelectorAll("[data-param]").forEach((src) => {
        pane.params.querySelector(`[data-param="${src.dataset.param}"]`).value = src.value;
      });
    }
    if (restored) Y.applyParams(pane.params, restored.params);
    pane.conversation = new Y.Conversation(el.querySelector("[data-messages]"), {
      onRetry: (index) => {
        if (pane.run.running) return;
        pane.conversation.messages.splice(index);
        startPane(pane);
      },
      onResend: () => startPane(pane),
    });
    pane.run = new Y.PaneRun({
      socket, paneId: pane.id, conversation: pane.conversation,
      context: () => ({ ...session.fields(), panes: panes.map((p) => p.id) }),
      onChange: () => {
        el.querySelector('[data-action="stop"]').disabled = !pane.run.running;
        showMetrics(pane);
        refreshChrome();
      },
    });
    pane.select.addEventListener("change", () => {
      Y.capMaxTokens(pane.params, pane.select.value);
      showCode(pane);
      syncUrl();
      refreshChrome();
    });
    el.querySelector('[data-action="settings"]').addEventListener("click", (e) => {
      const box = el.querySelector("[data-pane-settings]");
      box.hidden = !box.hidden;
      e.currentTarget.classList.toggle("active", !box.hidden);
    });
    el.querySelector('[data-action="code"]').addEventListener("click", (e) => {
      const box = el.querySelector("[data-pane-code]");
      box.hidden = !box.hidden;
      e.currentTarget.classList.toggle("active", !box.hidden);
      showCode(pane);
    });
    pane.params.addEventListener("input", () => showCode(pane));
    el.querySelector('[data-action="stop"]').addEventListener("click", () => pane.run.stop());
    el.querySelector('[data-action="rerun"]').addEventListener("click", () => rerun(pane));
    el.querySelector('[data-action="remove"]').addEventListener("click", () => removePane(pane));
    panes.push(pane);
    panesEl.appendChild(el);
    Y.bindParams(pane.params, pane.select.value);
    if (restored) Y.restoreMessages(pane.conversation, restored.messages);
    showMetrics(pane);
    refreshChrome();
    return pane;
  }

  function removePane(pane) {
    if (panes.length <= MIN) return;
    pane.run.stop();
    panes.splice(panes.indexOf(pane), 1);
    pane.el.remove();
    refreshChrome();
    syncUrl();
  }

  function startPane(pane) {
    if (pane.run.running) return;
    const params = Y.readParams(pane.params);
    const messages = Y.apiMessages(systemPrompt.value, pane.conversation.history());
    pane.lastBody = Y.buildBody(pane.select.value, messages, params);
    pane.run.start(pane.select.value, systemPrompt.value, params);
    showCode(pane);
  }

  // View code: the pane's last request, or the one the composer's text would send.
  function showCode(pane) {
    const box = pane.el.querySelector("[data-pane-code]");
    if (box.hidden) return;
    let body = pane.lastBody;
    const pending = prompt.value.trim();
    if (!pane.run.running && (pending || !body)) {
      const history = pane.conversation.history().concat([{ role: "user", content: pending || "Hello!" }]);
      body = Y.buildBody(pane.select.value, Y.apiMessages(systemPrompt.value, history), Y.readParams(pane.params));
    }
    box.querySelector("code").textContent = Y.codeSnippets(root.dataset.baseUrl, root.dataset.project, body).curl;
  }

  // Rerun: answer the pane's last user message again.
  function rerun(pane) {
    if (pane.run.running) return;
    const msgs = pane.conversation.messages;
    while (msgs.length && msgs[msgs.length - 1].role === "assistant") msgs.pop();
    if (!msgs.length) return;
    pane.conversation.render();
    startPane(pane);
  }

  // Images only when every pane's model can see them.
  attachments = new Y.Attachments({
    root: document.getElementById("composer"),
    prompt,
    canAttach: () => panes.length > 0 && panes.every((p) => (Y.modelInfo(p.select.value) || {}).vision),
  });

  function send() {
    const text = prompt.value.trim();
    if (!text) return;
    prompt.value = "";
    const content = attachments.take(text);
    for (const pane of panes) {
      if (pane.run.running) continue; // a pane still answering keeps its turn
      pane.conversation.add("user", content);
      startPane(pane);
    }
  }

  document.getElementById("composer").addEventListener("submit", (e) => { e.preventDefault(); send(); });
  Y.bindComposerKeys(prompt, send);
  for (const el of [prompt, systemPrompt]) el.addEventListener("input", () => panes.forEach(showCode));
  stopAll.addEventListener("click", () => socket.send({ type: "stop_all" }));
  // Blind battle: the arena's set-up with this page's models ticked.
  const blind = document.getElementById("blind-battle");
  if (blind) {
    blind.addEventListener("click", () => {
      const ids = panes.map((p) => encodeURIComponent(p.select.value)).join(",");
      blind.href = `${blind.pathname}?models=${ids}`;
    });
  }
  addButton.addEventListener("click", () => {
    const last = panes[panes.length - 1];
    addPane(last ? last.select.value : (Y.models[0] || {}).id, last);
    syncUrl();
  });
  document.getElementById("clear-all").addEventListener("click", () => {
    socket.send({ type: "stop_all" });
    panes.forEach((p) => p.conversation.clear());
    session.reset(); // the next message starts a new comparison (the old one stays in History)
    syncUrl();
  });

  // A restored session (?session=): every pane with its model, parameters and messages.
  const initial = JSON.parse(document.getElementById("pane-models").textContent);
  const restoredPanes = (Y.restore && Y.restore.panes) || [];
  if (Y.restore) systemPrompt.value = Y.restore.system_prompt || "";
  initial.forEach((id, i) => addPane(id, null, restoredPanes[i]));
  syncUrl();
  prompt.focus();
})();
