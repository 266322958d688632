// An evaluation's page: live progress over /ws/evaluations/<id>/ (the server polls the database
// and sends a snapshot when it changes), the results refreshed while answers come in, and the
// matrix's "diff vs expected" (a word diff drawn with text nodes: output is untrusted text).
(function () {
  "use strict";

  // The product's one money rule (static/js/money.js, as billing/money.py on the server).
  var usd = window.Yardstick.money.usd;

  function eta(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    if (seconds < 60) return seconds + " s";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min " + (seconds % 60) + " s";
    return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
  }

  function setText(root, selector, text) {
    var el = root.querySelector(selector);
    if (el) el.textContent = text;
  }

  var refreshTimer = null;
  var lastRefresh = 0;
  function refreshResults(now) {
    var results = document.getElementById("results");
    if (!results || !window.htmx) return;
    var wait = now ? 0 : Math.max(0, 3000 - (Date.now() - lastRefresh));
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(function () {
      lastRefresh = Date.now();
      htmx.ajax("GET", location.pathname + location.search, { target: "#results", swap: "outerHTML" });
    }, wait);
  }

  function show(progress, snap) {
    var percent = snap.total ? Math.min(100, snap.percent) : 0;
    var fill = progress.querySelector("[data-bar-fill]");
    if (fill) fill.style.width = percent + "%";
    var bar = progress.querySelector("[data-bar]");
    if (bar) { bar.setAttribute("aria-valuenow", snap.done); bar.setAttribute("aria-valuemax", snap.total); }
    setText(progress, "[data-done]", snap.done);
    setText(progress, "[data-total]", snap.total);
    setText(progress, "[data-errors]", snap.errors);
    setText(progress, "[data-skipped]", snap.skipped);
    setText(progress, "[data-spent]", usd(snap.spent_micros));
    setText(progress, "[data-eta]", eta(snap.eta_seconds));
    var status = document.querySelector("[data-status]");
    if (status) {
      status.textContent = snap.status_label;
      status.className = "badge eval-status-" + snap.status;
    }
    var error = progress.querySelector("[data-error]");
    if (error) { error.textContent = snap.error || ""; error.hidden = !snap.error; }
    var cancel = progress.querySelector("[data-cancel]");
    if (cancel) cancel.hidden = snap.terminal;
    var resume = progress.querySelector("[data-resume]");
    if (resume) resume.hidden = !snap.stalled;
  }

  function connect(progress) {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + location.host + progress.dataset.wsPath);
    var state = progress.querySelector("[data-live-state]");
    var last = null;
    var finished = false;
    socket.onopen = function () { if (state) state.textContent = "Live"; };
    socket.onmessage = function (event) {
      var snap = JSON.parse(event.data);
      var moved = !last || last.done !== snap.done || last.errors !== snap.errors;
      last = snap;
      show(progress, snap);
      if (snap.terminal) {
        finished = true;
        progress.dataset.terminal = "1";
        if (state) state.textContent = "";
        refreshResults(true);
      } else if (moved) {
        refreshResults(false);
      }
    };
    socket.onclose = function () {
      if (finished) return;
      if (state) state.textContent = "Reconnecting…";
      setTimeout(function () { connect(progress); }, 3000);
    };
  }

  // --- diff vs expected: words kept, removed (expected only) and added (output only) ---------
  function words(text) { return text.match(/\s+|[^\s]+/g) || []; }

  function diff(expected, output) {
    var a = words(expected), b = words(output);
    if (a.length * b.length > 400000) return null; // too long to diff in the page
    var n = a.length, m = b.length, i, j;
    var table = [];
    for (i = 0; i <= n; i++) table.push(new Uint16Array(m + 1));
    for (i = n - 1; i >= 0; i--) {
      for (j = m - 1; j >= 0; j--) {
        table[i][j] = a[i] === b[j] ? table[i + 1][j + 1] + 1 : Math.max(table[i + 1][j], table[i][j + 1]);
      }
    }
    var parts = [];
    i = 0; j = 0;
    while (i < n && j < m) {
      if (a[i] === b[j]) { parts.push(["same", a[i]]); i++; j++; }
      else if (table[i + 1][j] >= table[i][j + 1]) { parts.push(["del", a[i]]); i++; }
      else { parts.push(["ins", b[j]]); j++; }
    }
    for (; i < n; i++) parts.push(["del", a[i]]);
    for (; j < m; j++) parts.push(["ins", b[j]]);
    return parts;
  }

  function drawDiffs(on) {
    document.querySelectorAll(".eval-output").forEach(function (el) {
      if (!el.dataset.text) el.dataset.text = el.textContent;
      var output = el.dataset.text;
      el.textContent = "";
      var parts = on && el.dataset.expected ? diff(el.dataset.expected, output) : null;
      if (!parts) { el.textContent = output; el.classList.remove("eval-diff"); return; }
      el.classList.add("eval-diff");
      parts.forEach(function (part) {
        var node = part[0] === "same" ? document.createTextNode(part[1]) : document.createElement(part[0]);
        if (part[0] !== "same") node.textContent = part[1];
        el.appendChild(node);
      });
    });
  }

  function diffOn() {
    var toggle = document.querySelector("[data-diff-toggle]");
    return toggle && toggle.checked;
  }

  document.addEventListener("change", function (event) {
    if (event.target.matches("[data-diff-toggle]")) {
      event.stopPropagation(); // not a filter: the form does not reload for it
      drawDiffs(event.target.checked);
    }
  }, true);

  var diffWanted = false;
  document.addEventListener("htmx:beforeSwap", function () { diffWanted = diffOn(); });
  document.addEventListener("htmx:afterSwap", function () {
    if (diffWanted) {
      var toggle = document.querySelector("[data-diff-toggle]");
      if (toggle) toggle.checked = true;
      drawDiffs(true);
    }
  });

  var progress = document.getElementById("progress");
  if (progress && !progress.dataset.terminal) connect(progress);
})();
