// The Playground: one conversation with one model over the shared websocket.
(function () {
  "use strict";
  const Y = window.Yardstick;
  const root = document.getElementById("playground");
  if (!root) return;
  const PANE = "chat";
  const $ = (sel) => root.querySelector(sel);
  const select = $("[data-model-select]");
  const paramsRoot = $("[data-params]");
  const prompt = $("#prompt");
  const systemPrompt = $("#system-prompt");
  const sendButton = $("#send");
  const stopButton = $("#stop");
  const codePanel = $("#code-panel");
  const codeText = $("#code-text");
  let codeTab = "curl";
  let lastBody = null;

  // The page may be opened for a model that is not in the served list (shown with a warning).
  const wanted = root.dataset.model;
  if (wanted && ![...select.options].some((o) => o.value === wanted)) {
    const option = new Option(wanted, wanted);
    select.querySelector("optgroup").prepend(option);
  }
  if (wanted) select.value = wanted;
  let currentModel = select.value;

  const conversation = new Y.Conversation($("#messages"), {
    emptyEl: $("#empty-state"),
    onRetry: (index) => {
      if (run.running) return;
      conversation.messages.splice(index);
      start();
    },
    onResend: () => { if (!run.running) start(); },
  });
  const newChat = root.querySelector("[data-new-session]");
  const session = new Y.ChatSession("chat");
  const socket = new Y.ChatSocket({
    onEvent: (event) => {
      if (event.type === "session") session.adopt(event);
      else if (event.type === "connection_lost" || event.pane === PANE) run.handle(event);
    },
    onStatus: Y.showSocketStatus,
  });
  const run = new Y.PaneRun({
    socket,
    paneId: PANE,
    conversation,
    context: () => session.fields(),
    onChange: () => {
      sendButton.hidden = run.running;
      stopButton.hidden = !run.running;
    },
  });

  function start() {
    const params = Y.readParams(paramsRoot);
    lastBody = Y.buildBody(select.value, Y.apiMessages(systemPrompt.value, conversation.history()), params);
    run.start(select.value, systemPrompt.value, params);
    updateCode();
  }

  const attachments = new Y.Attachments({
    root: $("#composer"),
    prompt,
    canAttach: () => Boolean((Y.modelInfo(select.value) || {}).vision),
  });

  function send() {
    const text = prompt.value.trim();
    if (!text || run.running || !select.value || select.value === "__compare__") return;
    conversation.add("user", attachments.take(text));
    prompt.value = "";
    start();
  }

  // View code: the request the next message would send, or the last one sent.
  function updateCode() {
    if (codePanel.hidden) return;
    let body = lastBody;
    const pending = prompt.value.trim();
    if (!run.running && (pending || !body)) {
      const history = conversation.history().concat([{ role: "user", content: pending || "Hello!" }]);
      body = Y.buildBody(select.value, Y.apiMessages(systemPrompt.value, history), Y.readParams(paramsRoot));
    }
    const snippets = Y.codeSnippets(root.dataset.baseUrl, root.dataset.project, body);
    codeText.textContent = snippets[codeTab];
  }

  select.addEventListener("change", () => {
    if (select.value === "__compare__") {
      // The seed's "Compare" entry leads to the card selection.
      window.location.href = "/inference/?compare=1";
      select.value = currentModel;
      return;
    }
    currentModel = select.value;
    Y.capMaxTokens(paramsRoot, currentModel);
    attachments.refresh();
    const url = new URL(window.location.href);
    url.searchParams.set("model", currentModel);
    history.replaceState(null, "", url);
    newChatLink();
    updateCode();
  });
  $("#composer").addEventListener("submit", (e) => { e.preventDefault(); send(); });
  Y.bindComposerKeys(prompt, send);
  stopButton.addEventListener("click", () => run.stop());
  $("#clear-chat").addEventListener("click", () => {
    run.stop();
    conversation.clear();
    session.reset(); // the next message starts a new chat (the old one stays in History)
    lastBody = null;
    updateCode();
  });
  $("#view-code").addEventListener("click", (e) => {
    codePanel.hidden = !codePanel.hidden;
    e.target.setAttribute("aria-expanded", String(!codePanel.hidden));
    root.classList.toggle("with-code", !codePanel.hidden);
    updateCode();
  });
  root.querySelectorAll("[data-code-tab]").forEach((tab) => {
    tab.addEventListener("click", () => {
      codeTab = tab.dataset.codeTab;
      root.querySelectorAll("[data-code-tab]").forEach((t) => t.classList.toggle("active", t === tab));
      updateCode();
    });
  });
  for (const el of [prompt, systemPrompt, paramsRoot]) el.addEventListener("input", updateCode);

  // "New chat" keeps the model in use.
  function newChatLink() {
    if (newChat) newChat.href = `${location.pathname}?model=${encodeURIComponent(currentModel)}`;
  }
  // A restored session (?session=) or a call opened here (?from_call=): its messages, system
  // prompt and parameters (the model was chosen by the server).
  const restored = Y.restore && Y.restore.panes && Y.restore.panes[0];
  if (restored) {
    systemPrompt.value = Y.restore.system_prompt || "";
    Y.applyParams(paramsRoot, restored.params || Y.restore.params);
    Y.restoreMessages(conversation, restored.messages);
  }
  newChatLink();
  Y.bindParams(paramsRoot, currentModel);
  prompt.focus();
})();
