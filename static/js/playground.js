// The Playground: one conversation with one model over the shared websocket.
(function () {
  "use strict";
  const Y = window.Yardstick;
  const root = document.getElementById("playground");
  if (!root) return;
  const PANE = "chat";
  const $ = (sel) => root.querySelector(sel);
  const select = $("[data-model-select]");
  const paramsRoot = $("#params-root");
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

  // Retry keeps the earlier answers as versions of this one (‹1/2›); what came after it goes.
  const conversation = new Y.Conversation($("#messages"), {
    emptyEl: $("#empty-state"),
    showModel: true,
    onRetry: (index) => {
      if (busy()) return;
      conversation.messages.splice(index + 1);
      start(conversation.messages[index]);
    },
    onResend: () => { if (!busy()) start(); },
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
      if (!run.running && samplesLeft > 0) {
        // n samples: the same request again, into the next version of the same answer. A
        // failed sample ends the series (the next would most likely fail the same way).
        const answer = run.message;
        if (answer && !answer.error) {
          setTimeout(() => {
            if (samplesLeft <= 0 || run.running) return; // stopped meanwhile
            samplesLeft -= 1;
            launch(answer);
          }, 0);
        } else {
          samplesLeft = 0;
        }
      }
      sendButton.hidden = busy();
      stopButton.hidden = !busy();
    },
  });
  // Samples still to run after the current one (the "Samples (n)" parameter). Each sample is
  // its own request: the pane's stream carries one answer, and llama.cpp refuses n > 1.
  let samplesLeft = 0;
  const busy = () => run.running || samplesLeft > 0;
  const sampleInput = root.querySelector("[data-sample-count]");
  const sampleCount = () => Math.min(4, Math.max(1, parseInt(sampleInput.value, 10) || 1));
  const schemaError = root.querySelector("[data-json-schema-error]");

  // An invalid JSON schema is shown under its box and nothing is sent.
  function formatOk() {
    const { error } = Y.responseFormat(paramsRoot);
    schemaError.hidden = !error;
    schemaError.textContent = error || "";
    if (error) root.querySelector("[data-json-schema]").focus();
    return !error;
  }

  // target: the answer to add versions to (Retry); else a new answer.
  function start(target) {
    samplesLeft = sampleCount() - 1;
    launch(target || null);
  }
  function launch(target) {
    const params = Y.readParams(paramsRoot);
    run.start(select.value, systemPrompt.value, params, { target });
    lastBody = Y.buildBody(select.value, Y.apiMessages(systemPrompt.value, conversation.history()), params);
    updateCode();
  }
  function stop() {
    samplesLeft = 0;
    run.stop();
    sendButton.hidden = run.running;
    stopButton.hidden = !run.running;
  }

  const attachments = new Y.Attachments({
    root: $("#composer"),
    prompt,
    canAttach: () => Boolean((Y.modelInfo(select.value) || {}).vision),
  });

  function send() {
    const text = prompt.value.trim();
    if (!text || busy() || !select.value || select.value === "__compare__") return;
    if (!formatOk()) return;
    conversation.add("user", attachments.take(text));
    prompt.value = "";
    start();
  }

  // View code: the request the next message would send, or the last one sent.
  function updateCode() {
    if (codePanel.hidden) return;
    let body = lastBody;
    const pending = prompt.value.trim();
    if (!busy() && (pending || !body)) {
      const history = conversation.history().concat([{ role: "user", content: pending || "Hello!" }]);
      body = Y.buildBody(select.value, Y.apiMessages(systemPrompt.value, history), Y.readParams(paramsRoot));
    }
    const snippets = Y.codeSnippets(root.dataset.baseUrl, root.dataset.project, body);
    const samples = sampleCount();
    // n samples are n requests (each answer a version): said above the one request shown.
    const note = samples > 1 ? `# Sent ${samples} times, one request per sample.\n` : "";
    codeText.textContent = note + snippets[codeTab];
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
  stopButton.addEventListener("click", stop);
  // Escape stops a running answer (and any samples still to come), wherever the focus is.
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && busy()) {
      event.preventDefault();
      stop();
    }
  });
  $("#clear-chat").addEventListener("click", () => {
    stop();
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
  paramsRoot.addEventListener("change", updateCode);
  for (const event of ["input", "change"]) {
    paramsRoot.addEventListener(event, () => Y.showResponseFormat(paramsRoot));
  }

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
    Y.restoreMessages(conversation, restored.messages, restored.model);
  }
  newChatLink();
  Y.bindParams(paramsRoot, currentModel);
  prompt.focus();
})();
