// A blind battle: Compare with anonymous panes ("Model A", "Model B", ...). A pane's run names
// the match and the pane's index, never a model (the server knows which model is behind it);
// after the answers the user votes and the reply names the models.
(function () {
  "use strict";
  const Y = window.Yardstick;
  const root = document.getElementById("arena-battle");
  if (!root) return;
  const matchId = root.dataset.match;
  const prompt = document.getElementById("prompt");
  const stopAll = document.getElementById("stop-all");
  const turnCount = document.getElementById("turn-count");
  const voteHelp = document.getElementById("vote-help");
  const votePair = document.getElementById("vote-pair");
  const voteBest = document.getElementById("vote-best");
  const voteResult = document.getElementById("vote-result");
  const voteError = document.getElementById("vote-error");
  const newBattle = document.getElementById("new-battle");
  let turns = 0;
  let voted = root.classList.contains("revealed");
  let voting = false;
  let ranking = false;
  let ticker = null;

  const panes = [];
  const socket = new Y.ChatSocket({
    onEvent: (event) => {
      for (const pane of panes) {
        if (event.type === "connection_lost" || event.pane === pane.id) pane.run.handle(event);
      }
    },
    onStatus: Y.showSocketStatus,
  });

  function showMetrics(pane) {
    const live = pane.run.live || {};
    const set = (key, value) => { pane.el.querySelector(`[data-m="${key}"]`).textContent = value; };
    const elapsed = pane.run.running ? pane.run.elapsedMs() : live.elapsed_ms;
    set("elapsed", elapsed === undefined ? "–" : Y.formatMs(elapsed));
    set("ttft", Y.formatMs(live.ttft_ms));
    set("rate", Y.formatRate(live.tokens_per_s));
    set("tokens", live.completion_tokens ?? "–");
    pane.el.classList.toggle("running", pane.run.running);
  }

  function answered(pane) {
    const last = pane.conversation.messages[pane.conversation.messages.length - 1];
    return last && last.role === "assistant" && !last.streaming && !last.error && Y.contentText(last.content).trim() !== "";
  }

  // The vote opens once every pane has answered the last prompt.
  function refresh() {
    const running = panes.some((p) => p.run.running);
    stopAll.disabled = !running;
    if (running && !ticker) ticker = setInterval(() => panes.forEach(showMetrics), 100);
    if (!running && ticker) { clearInterval(ticker); ticker = null; panes.forEach(showMetrics); }
    turnCount.textContent = `Turn ${turns}`;
    if (voted) return;
    const ready = turns > 0 && !running && panes.every(answered);
    // A pane whose model failed cannot be judged: this battle ends without a vote.
    const failed = turns > 0 && !running && panes.filter((p) => {
      const last = p.conversation.messages[p.conversation.messages.length - 1];
      return last && last.error;
    });
    if (voteHelp) {
      if (failed && failed.length) {
        const names = failed.map((p) => `Model ${String.fromCharCode(65 + p.index)}`).join(", ");
        voteHelp.textContent = `${names} could not answer, so this battle cannot be judged: start a new one.`;
      } else {
        voteHelp.textContent = ready
          ? "Which answer is better? Vote, or send another message first."
          : running ? "Answering…" : voteHelp.textContent;
      }
    }
    newBattle.hidden = !(failed && failed.length);
    if (votePair) votePair.hidden = !ready;
    if (voteBest) voteBest.hidden = !ready;
    panes.forEach((p) => {
      const best = p.el.querySelector("[data-best]");
      if (best) best.hidden = !ready || ranking;
      const rank = p.el.querySelector("[data-rank]");
      if (rank) rank.hidden = !ready || !ranking;
    });
    const submitWrap = document.getElementById("rank-submit-wrap");
    if (submitWrap) submitWrap.hidden = !ranking;
  }

  root.querySelectorAll("section.pane").forEach((el) => {
    const index = parseInt(el.dataset.index, 10);
    const pane = { id: el.dataset.pane, index, el };
    pane.conversation = new Y.Conversation(el.querySelector("[data-messages]"), {
      onRetry: () => {}, onResend: () => {},
    });
    pane.run = new Y.PaneRun({
      socket, paneId: pane.id, conversation: pane.conversation,
      context: () => ({ arena: { match: matchId, pane: index } }),
      onChange: () => {
        el.querySelector('[data-action="stop"]').disabled = !pane.run.running;
        showMetrics(pane);
        refresh();
      },
    });
    el.querySelector('[data-action="stop"]').addEventListener("click", () => pane.run.stop());
    const best = el.querySelector("[data-best]");
    if (best) best.addEventListener("click", () => vote("best", { winner: index }));
    panes.push(pane);
  });

  function send() {
    const text = prompt.value.trim();
    if (!text || voted || panes.some((p) => p.run.running)) return;
    prompt.value = "";
    turns += 1;
    for (const pane of panes) {
      pane.conversation.add("user", text);
      // No model: the server takes it, and the parameters, from the match.
      pane.run.start(undefined, "", {});
    }
    refresh();
  }

  function texts(pane, role) {
    return pane.conversation.messages
      .filter((m) => m.role === role && !m.error)
      .map((m) => Y.contentText(m.content));
  }

  function csrfToken() {
    const input = newBattle.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function reveal(result) {
    voted = true;
    root.classList.add("revealed");
    for (const info of result.panes || []) {
      const pane = panes[(info.label || "").charCodeAt(info.label.length - 1) - 65];
      if (!pane) continue;
      pane.el.querySelector("[data-pane-name]").textContent = `${info.label}: ${info.name}`;
      pane.el.querySelector("[data-pane-model]").textContent = info.model;
    }
    root.querySelectorAll("[data-metrics]").forEach((el) => { el.hidden = false; });
    root.querySelectorAll("[data-best], [data-rank]").forEach((el) => { el.hidden = true; });
    for (const el of [votePair, voteBest, voteHelp]) if (el) el.hidden = true;
    document.getElementById("composer").hidden = true;
    voteResult.replaceChildren();
    const head = document.createElement("b");
    if (result.void) {
      head.textContent = "Thanks — void: ";
      voteResult.append(head, result.void_reason || "the answer named its model");
      voteResult.classList.add("void");
    } else {
      head.textContent = "Thanks — your vote counts.";
      voteResult.append(head);
    }
    voteResult.hidden = false;
    newBattle.hidden = false;
  }

  async function vote(kind, outcome) {
    if (voting || voted) return;
    voting = true;
    voteError.hidden = true;
    root.querySelectorAll("[data-vote], [data-best], #rank-submit").forEach((b) => { b.disabled = true; });
    if (voteHelp) voteHelp.textContent = "Saving your vote…";
    try {
      const response = await fetch(root.dataset.voteUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
        body: JSON.stringify({
          kind, outcome, turns,
          prompt: texts(panes[0], "user").join("\n\n"),
          answers: panes.map((p) => texts(p, "assistant").join("\n\n")),
        }),
      });
      const data = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error((data.error && data.error.message) || `The vote failed (${response.status}).`);
      reveal(data);
    } catch (exc) {
      voteError.textContent = exc.message;
      voteError.hidden = false;
    } finally {
      voting = false;
      root.querySelectorAll("[data-vote], [data-best], #rank-submit").forEach((b) => { b.disabled = false; });
    }
  }

  if (votePair) {
    votePair.querySelectorAll("[data-vote]").forEach((button) => {
      const value = button.dataset.vote;
      button.addEventListener("click", () => vote("pair", { winner: /^\d$/.test(value) ? Number(value) : value }));
    });
  }
  const rankToggle = document.getElementById("rank-toggle");
  if (rankToggle) {
    rankToggle.addEventListener("click", () => {
      ranking = !ranking;
      rankToggle.textContent = ranking ? "pick the best only" : "rank them all";
      refresh();
    });
    document.getElementById("rank-submit").addEventListener("click", () => {
      const ranks = panes.map((p) => parseInt(p.el.querySelector("[data-rank]").value, 10));
      const unique = new Set(ranks);
      if (ranks.some((r) => !r) || unique.size !== panes.length) {
        voteError.textContent = `Give each answer a different rank, 1 to ${panes.length}.`;
        voteError.hidden = false;
        return;
      }
      const order = panes.map((p, i) => i).sort((a, b) => ranks[a] - ranks[b]);
      vote("ranking", { order });
    });
  }

  document.getElementById("composer").addEventListener("submit", (e) => { e.preventDefault(); send(); });
  Y.bindComposerKeys(prompt, send);
  stopAll.addEventListener("click", () => socket.send({ type: "stop_all" }));
  refresh();
  if (!voted) prompt.focus();
})();
