// Shared by the Playground and Compare pages: the websocket, a pane's conversation and run,
// the parameters panel, the request body and its curl / Python rendering.
(function () {
  "use strict";
  const Y = (window.Yardstick = window.Yardstick || {});
  const dataEl = document.getElementById("models-data");
  Y.models = dataEl ? JSON.parse(dataEl.textContent) : [];
  Y.modelInfo = (id) => Y.models.find((m) => m.id === id);
  const DEFAULT_MAX_TOKENS = 512;

  // ---- formatting --------------------------------------------------------------------------
  // The one money rule of the product (static/js/money.js, as billing/money.py on the server).
  Y.formatCost = function (micros) {
    if (micros === null || micros === undefined) return "–";
    return Y.money.usd(micros);
  };
  Y.formatMs = function (ms) {
    if (ms === null || ms === undefined) return "–";
    return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
  };
  Y.formatRate = (r) => (r === null || r === undefined ? "–" : Number(r).toFixed(1));

  // ---- parameters --------------------------------------------------------------------------
  Y.bindParams = function (root, modelId) {
    root.querySelectorAll("input[type=range][data-param]").forEach((input) => {
      const out = root.querySelector(`[data-out="${input.dataset.param}"]`);
      const show = () => { if (out) out.textContent = input.value; };
      input.addEventListener("input", show);
      show();
    });
    Y.capMaxTokens(root, modelId);
  };
  // max_tokens may not exceed the model's context window.
  Y.capMaxTokens = function (root, modelId) {
    const info = Y.modelInfo(modelId);
    const input = root.querySelector('[data-param="max_tokens"]');
    const hint = root.querySelector("[data-max-hint]");
    if (!input) return;
    if (info) {
      input.max = info.context;
      if (Number(input.value) > info.context) input.value = info.context;
      if (hint) hint.textContent = `≤ ${info.context.toLocaleString("en-US")}`;
    }
  };
  Y.readParams = function (root) {
    const get = (name) => root.querySelector(`[data-param="${name}"]`);
    const params = {
      temperature: Number(get("temperature").value),
      max_tokens: parseInt(get("max_tokens").value, 10) || DEFAULT_MAX_TOKENS,
      top_p: Number(get("top_p").value),
    };
    const max = parseInt(get("max_tokens").max, 10);
    if (max && params.max_tokens > max) params.max_tokens = max;
    for (const name of ["presence_penalty", "frequency_penalty"]) {
      const value = Number(get(name).value);
      if (value !== 0) params[name] = value;
    }
    const seed = get("seed").value.trim();
    if (seed !== "") params.seed = parseInt(seed, 10);
    const stop = get("stop").value.split("\n").filter((s) => s.length > 0).slice(0, 4);
    if (stop.length) params.stop = stop;
    const format = Y.responseFormat(root);
    if (format.value) params.response_format = format.value;
    return params;
  };

  // The "Response format" control (Playground only): text, JSON mode, or a JSON schema typed
  // in a textarea. {value} when usable (null for plain text), {error} when the schema is no
  // JSON object; the page refuses to send until it is fixed.
  Y.responseFormat = function (root) {
    const mode = root.querySelector('[data-param="response_format"]');
    if (!mode || mode.value === "text") return { value: null };
    if (mode.value === "json_object") return { value: { type: "json_object" } };
    const area = root.querySelector("[data-json-schema]");
    let schema;
    try {
      schema = JSON.parse(area ? area.value : "");
    } catch (e) {
      return { error: `The JSON schema is not valid JSON: ${e.message}` };
    }
    if (!schema || typeof schema !== "object" || Array.isArray(schema)) {
      return { error: "The JSON schema must be a JSON object." };
    }
    return { value: { type: "json_schema", json_schema: { name: "response", schema, strict: true } } };
  };
  Y.showResponseFormat = function (root) {
    const mode = root.querySelector('[data-param="response_format"]');
    const box = root.querySelector("[data-json-schema-box]");
    if (!mode || !box) return;
    box.hidden = mode.value !== "json_schema";
    const error = root.querySelector("[data-json-schema-error]");
    const problem = box.hidden ? null : Y.responseFormat(root).error;
    // While typing, only a schema that was wrong once is re-checked (no error on the way in).
    if (error && (!problem || !error.hidden)) {
      error.hidden = !problem;
      error.textContent = problem || "";
    }
  };

  // Parameters of a restored session (or of a call opened in the Playground) into the panel.
  Y.applyParams = function (root, params) {
    for (const [name, value] of Object.entries(params || {})) {
      if (name === "response_format") {
        const mode = root.querySelector('[data-param="response_format"]');
        const area = root.querySelector("[data-json-schema]");
        if (!mode || !value || !value.type) continue;
        mode.value = value.type;
        if (value.type === "json_schema" && area && value.json_schema) {
          area.value = JSON.stringify(value.json_schema.schema || {}, null, 2);
        }
        Y.showResponseFormat(root);
        continue;
      }
      const input = root.querySelector(`[data-param="${name}"]`);
      if (!input) continue;
      input.value = name === "stop" ? (Array.isArray(value) ? value.join("\n") : "") : String(value);
      const out = root.querySelector(`[data-out="${name}"]`);
      if (out) out.textContent = input.value;
    }
  };

  // A message's text, whether its content is a string or OpenAI content parts.
  Y.contentText = (content) =>
    Array.isArray(content) ? content.filter((p) => p.type === "text").map((p) => p.text).join("\n") : content;
  Y.contentImages = (content) =>
    Array.isArray(content) ? content.filter((p) => p.type === "image_url").map((p) => p.image_url.url) : [];

  // ---- the request ---------------------------------------------------------------------------
  // The same body playground/chat_requests.py builds on the server (View code shows it).
  Y.apiMessages = function (systemPrompt, history) {
    const messages = [];
    if (systemPrompt && systemPrompt.trim()) messages.push({ role: "system", content: systemPrompt });
    for (const m of history) messages.push({ role: m.role, content: m.content });
    return messages;
  };
  Y.buildBody = function (model, messages, params) {
    return { model, messages, ...params, stream: true, stream_options: { include_usage: true } };
  };

  function pyRepr(value, indent) {
    const pad = "    ".repeat(indent + 1);
    const end = "    ".repeat(indent);
    if (value === null) return "None";
    if (value === true) return "True";
    if (value === false) return "False";
    if (typeof value === "string") return JSON.stringify(value);
    if (typeof value === "number") return String(value);
    if (Array.isArray(value)) {
      if (!value.length) return "[]";
      return "[\n" + value.map((v) => pad + pyRepr(v, indent + 1) + ",\n").join("") + end + "]";
    }
    const keys = Object.keys(value);
    if (!keys.length) return "{}";
    return "{\n" + keys.map((k) => `${pad}${JSON.stringify(k)}: ${pyRepr(value[k], indent + 1)},\n`).join("") + end + "}";
  }
  // Image data URLs are shortened in the snippets (they run to megabytes).
  function shortenImages(body) {
    return JSON.parse(JSON.stringify(body), (key, value) =>
      key === "url" && typeof value === "string" && value.startsWith("data:") && value.length > 60
        ? `${value.slice(0, 40)}…(${value.length} characters)` : value);
  }
  Y.codeSnippets = function (baseUrl, project, fullBody) {
    const body = shortenImages(fullBody);
    const json = JSON.stringify(body, null, 2).replace(/'/g, "'\\''");
    const curl = [
      `curl ${baseUrl}/chat/completions \\`,
      '  -H "Content-Type: application/json" \\',
      '  -H "Authorization: Bearer $YARDSTICK_API_KEY" \\',
      `  -H "OpenAI-Project: ${project}" \\`,
      "  --no-buffer \\",
      `  -d '${json}'`,
    ].join("\n");
    const args = Object.keys(body)
      .map((k) => `    ${k}=${pyRepr(body[k], 1)},`)
      .join("\n");
    const python = [
      "import os",
      "",
      "import openai",
      "",
      "client = openai.OpenAI(",
      `    base_url=${JSON.stringify(baseUrl)},`,
      '    api_key=os.environ["YARDSTICK_API_KEY"],  # redacted: create one under API keys',
      `    project=${JSON.stringify(project)},`,
      ")",
      "",
      "stream = client.chat.completions.create(",
      args,
      ")",
      "for chunk in stream:",
      "    if chunk.choices and chunk.choices[0].delta.content:",
      '        print(chunk.choices[0].delta.content, end="", flush=True)',
      "    if chunk.usage:",
      "        print()",
      "        print(chunk.usage)",
    ].join("\n");
    return { curl, python };
  };

  // ---- the page's trace session --------------------------------------------------------------
  // What the page restores (a session, or a call opened in the Playground), from json_script.
  const restoreEl = document.getElementById("restore-data");
  Y.restore = restoreEl ? JSON.parse(restoreEl.textContent) : null;
  let draftSeq = 0;
  // The session the page's runs write to. Until the server names one (a "session" event), runs
  // carry a draft name: the server puts every run of one draft into one new session.
  Y.ChatSession = class {
    constructor(kind, onChange) {
      this.kind = kind;
      this.onChange = onChange || (() => {});
      this.id = (Y.restore && Y.restore.session) || null;
      this.draft = `d${++draftSeq}`;
    }
    fields() { return { kind: this.kind, session: this.id, draft: this.draft }; }
    adopt(event) {
      if (event.draft !== this.draft || this.id === event.id) return;
      this.id = event.id;
      this.syncUrl();
    }
    reset() {
      this.id = null;
      this.draft = `d${++draftSeq}`;
      this.syncUrl();
    }
    // ?session=<id> in the address, so a reload (or a copied link) comes back to it.
    syncUrl() {
      const url = new URL(window.location.href);
      if (this.id) url.searchParams.set("session", this.id);
      else url.searchParams.delete("session");
      url.searchParams.delete("from_call");
      history.replaceState(null, "", url);
      this.onChange(this);
    }
  };
  // Restored messages in a conversation (answers render through the Markdown sanitizer).
  // `model`: the pane's model, the label of restored answers that do not name theirs.
  Y.restoreMessages = function (conversation, messages, model) {
    conversation.messages = (messages || []).map((m) => ({
      role: m.role, content: m.content, streaming: false, error: null, meta: null,
      model: m.role === "assistant" ? m.model || model || null : null,
    }));
    conversation.render();
  };

  // ---- the websocket -------------------------------------------------------------------------
  // One socket per page; events are routed to panes by their "pane" field.
  Y.ChatSocket = class {
    constructor({ onEvent, onStatus }) {
      this.onEvent = onEvent;
      this.onStatus = onStatus || (() => {});
      this.queue = [];
      this.retryMs = 500;
      this.connect();
    }
    connect() {
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      const ws = new WebSocket(`${scheme}://${location.host}/ws/playground/`);
      this.ws = ws;
      this.onStatus("connecting");
      ws.addEventListener("open", () => {
        this.retryMs = 500;
        this.onStatus("open");
        for (const message of this.queue.splice(0)) ws.send(message);
      });
      ws.addEventListener("message", (event) => this.onEvent(JSON.parse(event.data)));
      ws.addEventListener("close", (event) => {
        this.onEvent({ type: "connection_lost" });
        if (event.code === 4401) {
          // The server ended the session: retrying cannot help until the user signs in again.
          this.onStatus("signed_out");
          return;
        }
        this.onStatus("closed");
        // Reconnect with backoff; a refused socket (signed out) shows up as "closed" in the UI.
        setTimeout(() => this.connect(), this.retryMs);
        this.retryMs = Math.min(this.retryMs * 2, 10000);
      });
    }
    send(message) {
      const text = JSON.stringify(message);
      if (this.ws.readyState === WebSocket.OPEN) this.ws.send(text);
      else this.queue.push(text);
    }
  };
  Y.showSocketStatus = function (status) {
    document.querySelectorAll("[data-socket-status]").forEach((el) => {
      el.dataset.state = status;
      el.title = {
        open: "Connected",
        connecting: "Connecting…",
        closed: "Disconnected, retrying…",
        signed_out: "Signed out: sign in again to chat",
      }[status];
    });
  };

  // ---- code highlighting ---------------------------------------------------------------------
  // Runs on markup the sanitizer already produced: each code block's *text* goes through
  // highlight.js (which escapes it) and the result through DOMPurify again, so a "<script>" in a
  // model's code block stays text. The language (from ```lang) is shown in a small label.
  Y.highlightCode = function (root) {
    if (!window.hljs || !window.DOMPurify) return;
    root.querySelectorAll("pre > code").forEach((code) => {
      if (code.dataset.highlighted) return;
      const text = code.textContent;
      const match = /(?:^|\s)language-([\w#+.-]+)/.exec(code.className);
      const asked = match ? match[1] : "";
      const language = asked && hljs.getLanguage(asked) ? asked : "";
      let html;
      let shownName = asked;
      try {
        const result = language
          ? hljs.highlight(text, { language, ignoreIllegals: true })
          : hljs.highlightAuto(text);
        html = result.value;
        if (!asked && result.relevance >= 5) shownName = result.language || "";
      } catch (e) {
        return; // leave the plain text
      }
      code.innerHTML = DOMPurify.sanitize(html, { ALLOWED_TAGS: ["span"], ALLOWED_ATTR: ["class"] });
      code.classList.add("hljs");
      code.dataset.highlighted = "yes";
      const block = code.closest(".code-block");
      if (shownName && block && !block.querySelector(".code-lang")) {
        const label = document.createElement("span");
        label.className = "code-lang";
        label.textContent = shownName;
        block.prepend(label);
      }
    });
  };

  // ---- a conversation ------------------------------------------------------------------------
  // messages: {role, content, streaming, error, meta}; the DOM is rebuilt on structural change
  // and only the streaming message's content is re-rendered (once per frame) on each delta.
  // An assistant message may hold several versions (Retry, or n samples): {content, meta,
  // error, model} each, `version` the one shown; the shown one is also in the message's own
  // fields, which are what history() sends on.
  Y.Conversation = class {
    constructor(container, { onRetry, onResend, emptyEl, showModel }) {
      this.container = container;
      this.onRetry = onRetry;
      this.onResend = onResend;
      this.emptyEl = emptyEl || null;
      this.showModel = Boolean(showModel); // label each answer with its model (Playground)
      this.messages = [];
    }
    // Keep the shown version and start a new, empty one (shown). An empty failed version is
    // replaced rather than kept.
    newVersion(m) {
      const current = { content: m.content, meta: m.meta, error: m.error, model: m.model };
      m.versions = m.versions || [];
      m.version = m.version || 0;
      if (!Y.contentText(m.content) && m.error) m.versions.splice(m.version, 1);
      else m.versions[m.version] = current;
      m.versions.push({ content: "", meta: null, error: null, model: m.model });
      m.version = m.versions.length - 1;
      Object.assign(m, m.versions[m.version]);
    }
    showVersion(m, index) {
      if (!m.versions || m.streaming || index < 0 || index >= m.versions.length) return;
      m.versions[m.version || 0] = { content: m.content, meta: m.meta, error: m.error, model: m.model };
      m.version = index;
      Object.assign(m, m.versions[index]);
      this.render();
    }
    history() {
      // What the next request carries: finished, non-empty messages.
      return this.messages.filter((m) => !m.streaming && !m.error && Y.contentText(m.content) + Y.contentImages(m.content).join("") !== "");
    }
    add(role, content) {
      const message = { role, content, streaming: false, error: null, meta: null };
      this.messages.push(message);
      this.render();
      return message;
    }
    clear() { this.messages = []; this.render(); }
    render() {
      this.container.querySelectorAll(".msg").forEach((el) => el.remove());
      if (this.emptyEl) this.emptyEl.hidden = this.messages.length > 0;
      this.messages.forEach((m, i) => this.container.appendChild(this.renderMessage(m, i)));
      this.scroll(true);
    }
    renderMessage(m, index) {
      const el = document.createElement("div");
      el.className = `msg msg-${m.role}` + (m.streaming ? " streaming" : "") + (m.error ? " has-error" : "");
      el.dataset.role = m.role;
      const role = document.createElement("div");
      role.className = "msg-role";
      role.textContent = m.role === "user" ? "You" : "Assistant";
      if (m.role === "assistant") this.renderAnswerHead(m, role);
      el.appendChild(role);
      const body = document.createElement("div");
      body.className = "msg-content" + (m.role === "assistant" ? " markdown" : "");
      el.appendChild(body);
      m.el = el;
      m.contentEl = body;
      if (m.editing) {
        this.renderEditor(m, index, body);
      } else {
        this.paint(m);
      }
      const error = document.createElement("div");
      error.className = "msg-error";
      error.setAttribute("role", "alert");
      error.hidden = !m.error;
      error.textContent = m.error || "";
      el.appendChild(error);
      m.errorEl = error;
      const meta = document.createElement("div");
      meta.className = "msg-meta";
      m.metaEl = meta;
      el.appendChild(meta);
      this.paintMeta(m);
      if (!m.streaming && !m.editing) el.appendChild(this.renderActions(m, index));
      return el;
    }
    // "Assistant · <model>" and, with several versions, a ‹ 2/3 › switcher.
    renderAnswerHead(m, head) {
      if (this.showModel && m.model) {
        const label = document.createElement("span");
        label.className = "msg-model";
        label.dataset.model = m.model;
        label.title = m.model;
        label.textContent = (Y.modelInfo(m.model) || {}).name || m.model;
        head.append(" ", label);
      }
      const count = m.versions ? m.versions.length : 0;
      if (count < 2) return;
      const shown = m.version || 0;
      const nav = document.createElement("span");
      nav.className = "msg-versions";
      nav.setAttribute("role", "group");
      nav.setAttribute("aria-label", "Versions of this answer");
      const step = (text, label, to) => {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "btn-link version-step";
        b.textContent = text;
        b.setAttribute("aria-label", label);
        b.disabled = m.streaming || to < 0 || to >= count;
        b.addEventListener("click", () => this.showVersion(m, to));
        return b;
      };
      const position = document.createElement("span");
      position.className = "version-count";
      position.dataset.versionCount = "";
      position.textContent = `${shown + 1}/${count}`;
      nav.append(step("‹", "Previous version", shown - 1), position, step("›", "Next version", shown + 1));
      head.append(" ", nav);
    }
    renderActions(m, index) {
      const bar = document.createElement("div");
      bar.className = "msg-actions";
      const action = (label, title, fn) => {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "btn-link";
        b.textContent = label;
        b.title = title;
        b.dataset.action = label.toLowerCase();
        b.addEventListener("click", fn);
        bar.appendChild(b);
      };
      if (m.role === "assistant") {
        action("Retry", "Generate this answer again", () => this.onRetry(index));
        action("Copy", "Copy the answer's Markdown", (e) => Y.copyText(Y.contentText(m.content)).then(() => Y.flashCopied(e.target)));
      }
      action("Edit", "Edit this message", () => { m.editing = true; this.render(); });
      action("Delete", "Delete this message", () => { this.messages.splice(index, 1); this.render(); });
      return bar;
    }
    renderEditor(m, index, body) {
      const area = document.createElement("textarea");
      area.className = "msg-editor";
      area.value = Y.contentText(m.content);
      area.rows = Math.min(12, Math.max(2, area.value.split("\n").length));
      body.appendChild(area);
      const bar = document.createElement("div");
      bar.className = "msg-actions";
      const button = (label, cls, fn) => {
        const b = document.createElement("button");
        b.type = "button";
        b.className = cls;
        b.textContent = label;
        b.addEventListener("click", fn);
        bar.appendChild(b);
      };
      const save = () => {
        const images = Y.contentImages(m.content);
        m.content = images.length
          ? [{ type: "text", text: area.value }, ...images.map((url) => ({ type: "image_url", image_url: { url } }))]
          : area.value;
        m.editing = false;
        m.error = null;
      };
      if (m.role === "user") {
        button("Save & submit", "btn btn-primary btn-small", () => {
          save();
          this.messages.splice(index + 1);
          this.render();
          this.onResend();
        });
      }
      button("Save", "btn btn-small", () => { save(); this.render(); });
      button("Cancel", "btn btn-ghost btn-small", () => { m.editing = false; this.render(); });
      body.appendChild(bar);
      setTimeout(() => area.focus(), 0);
    }
    paint(m) {
      if (m.role === "assistant") {
        Y.renderMarkdown(m.contentEl, m.content);
        Y.highlightCode(m.contentEl);
      } else {
        m.contentEl.textContent = Y.contentText(m.content);
        const images = Y.contentImages(m.content);
        if (images.length) {
          const strip = document.createElement("div");
          strip.className = "thumbs";
          images.forEach((url) => strip.appendChild(Y.imageThumb(url)));
          m.contentEl.appendChild(strip);
        }
      }
      if (m.streaming) {
        const caret = document.createElement("span");
        caret.className = "caret";
        m.contentEl.appendChild(caret);
      }
    }
    paintLater(m) {
      if (m.paintQueued) return;
      m.paintQueued = true;
      requestAnimationFrame(() => {
        m.paintQueued = false;
        if (m.contentEl) this.paint(m);
        this.scroll(false);
      });
    }
    paintMeta(m) {
      if (!m.metaEl) return;
      const d = m.meta;
      if (!d || m.role !== "assistant") { m.metaEl.hidden = true; return; }
      m.metaEl.hidden = false;
      const parts = [
        ["TTFT", Y.formatMs(d.ttft_ms)],
        ["tok/s", Y.formatRate(d.tokens_per_s)],
        ["prompt", d.prompt_tokens ?? "–"],
        ["completion", d.completion_tokens ?? "–"],
        ["cost", Y.formatCost(d.cost_micros)],
      ];
      if (d.finish_reason !== undefined) parts.push(["finish", d.finish_reason || "–"]);
      m.metaEl.replaceChildren(...parts.map(([label, value]) => {
        const span = document.createElement("span");
        span.dataset.metric = label;
        span.innerHTML = "<b></b> ";
        span.firstChild.textContent = value;
        span.append(label);
        return span;
      }));
    }
    scroll(force) {
      const c = this.container;
      const nearBottom = c.scrollHeight - c.scrollTop - c.clientHeight < 120;
      if (force || nearBottom) c.scrollTop = c.scrollHeight;
    }
  };

  // ---- one pane's run ------------------------------------------------------------------------
  let runCounter = 0;
  Y.PaneRun = class {
    constructor({ socket, paneId, conversation, onChange, context }) {
      this.socket = socket;
      this.context = context || (() => ({}));
      this.paneId = paneId;
      this.conversation = conversation;
      this.onChange = onChange || (() => {});
      this.runId = null;
      this.message = null;
      this.startedAt = null;
      this.live = null;
    }
    get running() { return this.runId !== null; }
    // options.target: an assistant message to write a new version of (Retry, the next of n
    // samples) instead of a new message; the conversation up to it is what is sent.
    start(model, systemPrompt, params, options) {
      const target = options && options.target;
      if (target) {
        this.conversation.newVersion(target);
        target.streaming = true; // history() leaves it out
      }
      const messages = Y.apiMessages(systemPrompt, this.conversation.history());
      this.runId = `r${++runCounter}`;
      this.message = target || this.conversation.add("assistant", "");
      this.message.streaming = true;
      this.message.meta = null;
      this.message.model = model;
      this.conversation.render();
      this.startedAt = performance.now();
      this.live = { elapsed_ms: 0 };
      this.socket.send({
        type: "run", pane: this.paneId, run: this.runId, model, messages, params, ...this.context(),
      });
      this.onChange(this);
    }
    stop() { if (this.running) this.socket.send({ type: "stop", pane: this.paneId }); }
    elapsedMs() { return this.startedAt === null ? null : performance.now() - this.startedAt; }
    finish(meta, error) {
      const m = this.message;
      this.runId = null;
      if (m) {
        m.streaming = false;
        if (meta) m.meta = meta;
        if (error) m.error = error;
        this.conversation.render();
      }
      this.onChange(this);
    }
    handle(event) {
      if (event.type === "connection_lost") {
        if (this.running) this.finish(null, "Connection lost; the answer was cut off. Retry when the connection is back.");
        return;
      }
      if (event.run !== this.runId) return; // a late event of a run that was replaced
      const m = this.message;
      switch (event.type) {
        case "delta":
          m.content += event.content;
          this.conversation.paintLater(m);
          break;
        case "metrics":
          this.live = event;
          m.meta = event;
          this.conversation.paintMeta(m);
          this.onChange(this);
          break;
        case "done":
          this.live = event;
          this.finish(event, null);
          break;
        case "error":
          this.finish(m.meta, event.message || "Error");
          break;
      }
    }
  };

  // Enter or Ctrl+Enter sends; Shift+Enter is a new line.
  Y.bindComposerKeys = function (textarea, send) {
    textarea.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        send();
      }
    });
  };
})();
