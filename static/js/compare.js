// Compare: 2-6 panes, each with its own model and parameters; one message goes to all of them
// and the panes stream over the page's one websocket. No more panes run at once than the
// user's plan allows: the others wait for a free slot and start by themselves; a message sent
// to a busy pane waits in that pane's queue. Totals, fastest / cheapest markers, an enlarged
// pane, a word diff of two answers (jsdiff) and, on a phone, one pane at a time as tabs.
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
  const tabsEl = document.getElementById("pane-tabs");
  const totalsEl = document.getElementById("compare-totals");
  const syncBox = document.getElementById("sync-prompts");
  const limitEl = document.getElementById("compare-concurrency");
  // The gateway's per-user (and per-project) concurrency: more runs than this get a 429.
  const SLOTS = Math.max(1, (limitEl && JSON.parse(limitEl.textContent)) || MAX);
  const RETRY_MS = 1000; // the gateway's Retry-After for a concurrency 429
  const panes = [];
  let holdUntil = 0; // after a concurrency 429 no pane starts before this
  let holdTimer = null;
  let activeTab = null;
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
        if (event.type === "error" && event.pane === pane.id && event.run === pane.run.runId
            && event.code === "concurrency_limit_reached") {
          backToWaiting(pane);
          continue;
        }
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
    stopAll.disabled = !panes.some((p) => p.run.running || p.waiting || p.queue.length);
    document.getElementById("pane-count").textContent = `${panes.length} panes`;
    const slotLimit = document.getElementById("slot-limit");
    slotLimit.textContent = SLOTS < panes.length ? `· ${SLOTS} run at once on your plan` : "";
    slotLimit.title = `Your plan runs ${SLOTS} requests at once: the other panes wait for a free slot and start by themselves.`;
    if (attachments) attachments.refresh();
    panesEl.style.setProperty("--panes", panes.length);
    const anyRunning = panes.some((p) => p.run.running);
    if (anyRunning && !ticker) ticker = setInterval(tick, 100);
    if (!anyRunning && ticker) { clearInterval(ticker); ticker = null; tick(); }
    panes.forEach(showState);
    renderTabs();
    showTotals();
    refreshDiffChoices();
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
    const pane = { id, el, waiting: false, queue: [], wasRunning: false };
    el.dataset.pane = pane.id;
    pane.select = el.querySelector("[data-model-select]");
    pane.label = el.querySelector("[data-pane-label]");
    pane.metrics = el.querySelector("[data-metrics]");
    pane.params = el.querySelector("[data-params]");
    pane.stateEl = el.querySelector("[data-pane-state]");
    pane.queuedEl = el.querySelector("[data-pane-queued]");
    pane.composer = el.querySelector("[data-pane-composer]");
    pane.prompt = el.querySelector("[data-pane-prompt]");
    pane.composer.hidden = syncBox.checked;
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
        if (pane.run.running || pane.waiting) return;
        pane.conversation.messages.splice(index);
        schedule(pane);
      },
      onResend: () => schedule(pane),
    });
    pane.run = new Y.PaneRun({
      socket, paneId: pane.id, conversation: pane.conversation,
      context: () => ({ ...session.fields(), panes: panes.map((p) => p.id) }),
      onChange: () => {
        showMetrics(pane);
        if (pane.wasRunning && !pane.run.running) finished(pane);
        pane.wasRunning = pane.run.running;
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
    el.querySelector('[data-action="stop"]').addEventListener("click", () => stopPane(pane));
    el.querySelector('[data-action="enlarge"]').addEventListener("click", () => enlarge(pane));
    pane.composer.addEventListener("submit", (e) => { e.preventDefault(); sendOwn(pane); });
    Y.bindComposerKeys(pane.prompt, () => sendOwn(pane));
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
    stopPane(pane);
    panes.splice(panes.indexOf(pane), 1);
    pane.el.remove();
    if (activeTab === pane) activeTab = null;
    refreshChrome();
    syncUrl();
    pump();
  }

  // ---- slots: at most SLOTS panes run at once; the others wait in page order --------------
  function schedule(pane) {
    if (pane.run.running || pane.waiting) return;
    pane.waiting = true;
    refreshChrome();
    pump();
  }
  function pump() {
    const wait = holdUntil - Date.now();
    if (wait > 0) {
      clearTimeout(holdTimer);
      holdTimer = setTimeout(pump, wait);
      return;
    }
    let running = panes.filter((p) => p.run.running).length;
    for (const pane of panes) {
      if (running >= SLOTS) break;
      if (!pane.waiting || pane.run.running) continue;
      pane.waiting = false;
      startPane(pane);
      running += 1;
    }
    refreshChrome();
  }
  // The server refused for lack of a slot (another tab or an API call of the same user holds
  // one): the pane waits again, and nothing starts until the gateway's Retry-After has passed.
  function backToWaiting(pane) {
    const m = pane.run.message;
    const msgs = pane.conversation.messages;
    if (m && msgs[msgs.length - 1] === m) msgs.pop();
    pane.run.runId = null;
    pane.run.message = null;
    pane.run.live = null;
    pane.wasRunning = false;
    pane.conversation.render();
    pane.waiting = true;
    holdUntil = Date.now() + RETRY_MS;
    root.dataset.slotRefusals = String(Number(root.dataset.slotRefusals || 0) + 1);
    showMetrics(pane);
    refreshChrome();
    pump();
  }
  // A run ended (answer, stop or error): the pane's next queued message goes, and a slot frees.
  function finished(pane) {
    const next = pane.queue.shift();
    if (next !== undefined) {
      pane.conversation.add("user", next);
      pane.waiting = true;
    }
    setTimeout(pump, 0);
  }
  function stopPane(pane) {
    pane.waiting = false;
    pane.queue = [];
    pane.run.stop();
    refreshChrome();
  }
  // A message for one pane: now if it is free, else after its current answer (never dropped).
  function deliver(pane, content) {
    if (pane.run.running || pane.waiting || pane.queue.length) {
      pane.queue.push(content);
    } else {
      pane.conversation.add("user", content);
      pane.waiting = true;
    }
  }

  function stateOf(pane) {
    if (pane.run.running) return ["streaming", "Streaming"];
    if (pane.waiting) return ["waiting", "Waiting for a free slot"];
    const last = pane.conversation.messages[pane.conversation.messages.length - 1];
    if (last && last.role === "assistant" && last.error) return ["error", "Error"];
    if (last && last.role === "assistant") return ["done", "Done"];
    return ["idle", "Ready"];
  }
  function showState(pane) {
    const [state, label] = stateOf(pane);
    pane.state = state;
    pane.el.dataset.state = state;
    pane.stateEl.dataset.state = state;
    pane.stateEl.textContent = label;
    pane.queuedEl.hidden = pane.queue.length === 0;
    pane.queuedEl.textContent = pane.queue.length === 1 ? "1 message queued" : `${pane.queue.length} messages queued`;
    pane.el.querySelector('[data-action="stop"]').disabled = !pane.run.running && !pane.waiting && !pane.queue.length;
  }

  function startPane(pane) {
    if (pane.run.running) return;
    pane.waiting = false;
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
    if (pane.run.running || pane.waiting) return;
    const msgs = pane.conversation.messages;
    while (msgs.length && msgs[msgs.length - 1].role === "assistant") msgs.pop();
    if (!msgs.length) return;
    pane.conversation.render();
    schedule(pane);
  }

  // Images only when every pane's model can see them.
  attachments = new Y.Attachments({
    root: document.getElementById("composer"),
    prompt,
    canAttach: () => panes.length > 0 && panes.every((p) => (Y.modelInfo(p.select.value) || {}).vision),
  });

  // "Send to all": every pane gets the message, at once or after its current answer; the box
  // clears once the message is in every pane's conversation or queue.
  function send() {
    const text = prompt.value.trim();
    if (!text) return;
    const content = attachments.take(text);
    panes.forEach((pane) => deliver(pane, content));
    prompt.value = "";
    refreshChrome();
    pump();
  }
  function sendOwn(pane) {
    const text = pane.prompt.value.trim();
    if (!text) return;
    deliver(pane, text);
    pane.prompt.value = "";
    refreshChrome();
    pump();
  }
  function applySync() {
    const synced = syncBox.checked;
    document.getElementById("shared-composer").hidden = !synced;
    panes.forEach((p) => { p.composer.hidden = synced; });
    root.classList.toggle("per-pane-prompts", !synced);
  }
  syncBox.addEventListener("change", applySync);

  // ---- totals, and the fastest / cheapest of the last answers ------------------------------
  function lastAnswer(pane) {
    const msgs = pane.conversation.messages;
    const m = msgs[msgs.length - 1];
    return m && m.role === "assistant" && !m.streaming ? m : null;
  }
  function showTotals() {
    let cost = 0;
    let tokens = 0;
    let answers = 0;
    for (const pane of panes) {
      for (const m of pane.conversation.messages) {
        if (m.role !== "assistant" || !m.meta || m.streaming) continue;
        answers += 1;
        cost += m.meta.cost_micros || 0;
        tokens += (m.meta.prompt_tokens || 0) + (m.meta.completion_tokens || 0);
      }
    }
    const done = panes
      .map((pane, i) => ({ pane, n: i + 1, m: lastAnswer(pane) }))
      .filter((d) => !d.pane.run.running && d.m && !d.m.error && d.m.meta && d.m.meta.elapsed_ms != null);
    panes.forEach((p) => p.el.querySelector("[data-badges]").replaceChildren());
    totalsEl.hidden = answers === 0;
    if (!answers) return;
    const parts = [["Total cost", Y.formatCost(cost)], ["Total tokens", tokens.toLocaleString("en-US")]];
    if (done.length >= 2) {
      const byTime = [...done].sort((a, b) => a.m.meta.elapsed_ms - b.m.meta.elapsed_ms);
      const fastest = byTime[0];
      const slowest = byTime[byTime.length - 1];
      parts.push(["Fastest", `pane ${fastest.n} (${Y.formatMs(fastest.m.meta.elapsed_ms)})`]);
      parts.push(["Slowest", `pane ${slowest.n} (${Y.formatMs(slowest.m.meta.elapsed_ms)})`]);
      if (fastest.m.meta.elapsed_ms < slowest.m.meta.elapsed_ms) badge(fastest.pane, "fastest", "Fastest");
      // Cheapest: every pane at the lowest cost, and none when all cost the same.
      const cost = (d) => d.m.meta.cost_micros || 0;
      const low = Math.min(...done.map(cost));
      if (low < Math.max(...done.map(cost))) {
        done.filter((d) => cost(d) === low).forEach((d) => badge(d.pane, "cheapest", "Cheapest"));
      }
    }
    totalsEl.replaceChildren(...parts.map(([label, value]) => {
      const span = document.createElement("span");
      span.dataset.total = label.toLowerCase().replace(" ", "-");
      const b = document.createElement("b");
      b.textContent = value;
      span.append(`${label} `, b);
      return span;
    }));
  }
  function badge(pane, kind, label) {
    const span = document.createElement("span");
    span.className = `badge badge-${kind}`;
    span.dataset.badge = kind;
    span.textContent = label;
    pane.el.querySelector("[data-badges]").appendChild(span);
  }

  // ---- enlarge one pane (Escape restores) ---------------------------------------------------
  function enlarge(pane, on) {
    const big = on === undefined ? !pane.el.classList.contains("enlarged") : on;
    panes.forEach((p) => {
      const mine = p === pane && big;
      p.el.classList.toggle("enlarged", mine);
      p.el.querySelector('[data-action="enlarge"]').setAttribute("aria-pressed", String(mine));
    });
    panesEl.classList.toggle("has-enlarged", big);
  }
  document.addEventListener("keydown", (e) => {
    if (e.key !== "Escape") return;
    const big = panes.find((p) => p.el.classList.contains("enlarged"));
    if (big) enlarge(big, false);
  });

  // ---- word diff of two panes' last answers (jsdiff; text nodes only) -----------------------
  const diffPanel = document.getElementById("diff-panel");
  const diffA = document.getElementById("diff-a");
  const diffB = document.getElementById("diff-b");
  const diffOut = document.getElementById("diff-output");
  const diffToggle = document.getElementById("toggle-diff");
  function refreshDiffChoices() {
    const labels = panes.map((p, i) => `${p.id}=${i + 1} · ${p.select.value}`).join("\n");
    if (diffPanel.dataset.labels !== labels) {
      // Rebuilt only when panes or models change (a rebuild would close an open list).
      diffPanel.dataset.labels = labels;
      for (const [select, fallback] of [[diffA, 0], [diffB, 1]]) {
        const previous = select.value;
        select.replaceChildren(...panes.map((p, i) => new Option(`${i + 1} · ${p.select.value}`, p.id)));
        select.value = panes.some((p) => p.id === previous) ? previous : (panes[fallback] || {}).id || "";
      }
    }
    if (!diffPanel.hidden) showDiff();
  }
  function answerText(paneId) {
    const pane = panes.find((p) => p.id === paneId);
    const m = pane && lastAnswer(pane);
    return m ? Y.contentText(m.content) || "" : "";
  }
  function showDiff() {
    const a = answerText(diffA.value);
    const b = answerText(diffB.value);
    if (!a && !b) {
      diffOut.textContent = "No finished answers to compare yet.";
      return;
    }
    const key = `${diffA.value}|${diffB.value}|${a}|${b}`;
    if (diffOut.dataset.key === key) return;
    diffOut.dataset.key = key;
    const nodes = window.Diff.diffWords(a, b).map((part) => {
      if (!part.added && !part.removed) return document.createTextNode(part.value);
      const el = document.createElement(part.added ? "ins" : "del");
      el.textContent = part.value;
      return el;
    });
    diffOut.replaceChildren(...nodes);
  }
  diffA.addEventListener("change", showDiff);
  diffB.addEventListener("change", showDiff);
  diffToggle.addEventListener("click", () => {
    diffPanel.hidden = !diffPanel.hidden;
    diffToggle.setAttribute("aria-expanded", String(!diffPanel.hidden));
    diffToggle.classList.toggle("active", !diffPanel.hidden);
    delete diffOut.dataset.key;
    if (!diffPanel.hidden) showDiff();
  });

  // ---- phone: one pane at a time, as tabs (tap or swipe) ------------------------------------
  // Tabs are built once per pane and updated in place (a rebuild under a finger loses the tap).
  function renderTabs() {
    if (!activeTab || !panes.includes(activeTab)) activeTab = panes[0] || null;
    const ids = panes.map((p) => p.id).join(",");
    if (tabsEl.dataset.ids !== ids) {
      tabsEl.dataset.ids = ids;
      tabsEl.replaceChildren(...panes.map((pane) => {
        const tab = document.createElement("button");
        tab.type = "button";
        tab.className = "pane-tab";
        tab.setAttribute("role", "tab");
        tab.setAttribute("aria-controls", `pane-${pane.id}`);
        tab.dataset.pane = pane.id;
        const name = document.createElement("span");
        name.className = "pane-tab-name";
        const status = document.createElement("span");
        status.className = "pane-tab-state";
        tab.append(name, status);
        tab.addEventListener("click", () => showTab(pane));
        return tab;
      }));
    }
    panes.forEach((pane, i) => {
      const tab = tabsEl.children[i];
      const [state, label] = stateOf(pane);
      tab.setAttribute("aria-selected", String(pane === activeTab));
      tab.tabIndex = pane === activeTab ? 0 : -1;
      tab.dataset.state = state;
      tab.querySelector(".pane-tab-name").textContent = `${i + 1} ${(pane.select.value || "").split("/").pop()}`;
      tab.querySelector(".pane-tab-state").textContent = state === "waiting" ? "Waiting" : label;
      pane.el.id = `pane-${pane.id}`;
      pane.el.setAttribute("role", "tabpanel");
      pane.el.classList.toggle("tab-active", pane === activeTab);
    });
  }
  function showTab(pane) {
    activeTab = pane;
    renderTabs();
    const tab = tabsEl.querySelector(`[data-pane="${pane.id}"]`);
    if (tab) tab.scrollIntoView({ block: "nearest", inline: "nearest" });
  }
  // Arrow keys move between tabs (the tablist pattern).
  tabsEl.addEventListener("keydown", (e) => {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
    if (!step) return;
    e.preventDefault();
    const i = panes.indexOf(activeTab) + step;
    if (i < 0 || i >= panes.length) return;
    showTab(panes[i]);
    tabsEl.children[i].focus();
  });
  let touchX = null;
  panesEl.addEventListener("touchstart", (e) => { touchX = e.touches[0].clientX; }, { passive: true });
  panesEl.addEventListener("touchend", (e) => {
    if (touchX === null) return;
    const dx = e.changedTouches[0].clientX - touchX;
    touchX = null;
    if (Math.abs(dx) < 60) return;
    const i = panes.indexOf(activeTab) + (dx < 0 ? 1 : -1);
    if (i >= 0 && i < panes.length) showTab(panes[i]);
  });

  document.getElementById("composer").addEventListener("submit", (e) => { e.preventDefault(); send(); });
  Y.bindComposerKeys(prompt, send);
  for (const el of [prompt, systemPrompt]) el.addEventListener("input", () => panes.forEach(showCode));
  stopAll.addEventListener("click", () => {
    panes.forEach((p) => { p.waiting = false; p.queue = []; });
    socket.send({ type: "stop_all" });
    refreshChrome();
  });
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
    panes.forEach((p) => { p.waiting = false; p.queue = []; });
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
  applySync();
  syncUrl();
  refreshChrome();
  // Not on a phone: focusing would scroll the page down and open the keyboard.
  if (!window.matchMedia("(max-width: 720px)").matches) prompt.focus();
})();
