// Leaderboards: the new-leaderboard form's columns, sorting a table by a header, and the
// quality-against-cost and quality-against-latency charts.
(function () {
  "use strict";

  function readJson(id) {
    var element = document.getElementById(id);
    return element ? JSON.parse(element.textContent) : null;
  }

  // --- The form: one row per column, evaluation and scorer chosen from the team's runs. ---
  function setUpForm() {
    var form = document.getElementById("leaderboard-form");
    if (!form) return;
    var scorers = readJson("lb-scorers") || {};
    var initial = readJson("lb-initial-columns") || [];
    var holder = document.getElementById("lb-columns");
    var template = document.getElementById("lb-column-template");
    var team = document.getElementById("lb-team");
    var addButton = document.getElementById("lb-add-column");
    var max = window.LB_MAX_COLUMNS || 8;

    function options(select, values, chosen) {
      select.innerHTML = "";
      values.forEach(function (value) {
        var option = document.createElement("option");
        option.value = value;
        option.textContent = value || "(none: cost and latency)";
        if (value === chosen) option.selected = true;
        select.appendChild(option);
      });
    }

    function evaluations() {
      return Object.keys(scorers[team.value] || {}).sort();
    }

    function fillScorers(row, chosen) {
      var evaluation = row.querySelector('[data-field="evaluation"]').value;
      var names = ((scorers[team.value] || {})[evaluation] || []).slice();
      names.push("");
      options(row.querySelector('[data-field="scorer"]'), names, chosen);
    }

    function renumber() {
      var rows = holder.querySelectorAll(".lb-column");
      rows.forEach(function (row, index) {
        row.querySelectorAll("[data-field]").forEach(function (field) {
          field.name = field.dataset.field + "_" + index;
        });
      });
      addButton.disabled = rows.length >= max;
    }

    function addRow(column) {
      column = column || {};
      var row = template.content.firstElementChild.cloneNode(true);
      var evaluation = row.querySelector('[data-field="evaluation"]');
      options(evaluation, evaluations(), column.evaluation);
      if (column.evaluation && evaluation.value !== column.evaluation) {
        options(evaluation, [column.evaluation].concat(evaluations()), column.evaluation);
      }
      fillScorers(row, column.scorer);
      if (column.metric) row.querySelector('[data-field="metric"]').value = column.metric;
      row.querySelector('[data-field="minimize"]').checked = !!column.minimize;
      evaluation.addEventListener("change", function () { fillScorers(row); });
      row.querySelector('[data-field="metric"]').addEventListener("change", function (event) {
        var lowerIsBetter = event.target.value === "cost_per_item" || event.target.value === "latency_p50";
        row.querySelector('[data-field="minimize"]').checked = lowerIsBetter;
      });
      row.querySelector("[data-remove-column]").addEventListener("click", function () {
        row.remove();
        renumber();
      });
      holder.appendChild(row);
      renumber();
    }

    team.addEventListener("change", function () {
      holder.innerHTML = "";
      addRow();
    });
    addButton.addEventListener("click", function () { addRow(); });
    if (initial.length) initial.forEach(addRow); else addRow();
  }

  // --- The table: click a header to sort by it (again to reverse). ---
  function setUpSorting() {
    var table = document.getElementById("leaderboard-table");
    if (!table) return;
    var headers = table.querySelectorAll("thead th");
    headers.forEach(function (header, index) {
      var button = header.querySelector("button");
      if (!button) return;
      button.addEventListener("click", function () {
        var text = header.dataset.sortType === "text";
        var current = header.getAttribute("aria-sort");
        var ascending;
        if (current === "none") {
          // First click: best first (ascending when lower is better).
          ascending = text || header.dataset.minimize === "1";
        } else {
          ascending = current !== "ascending";
        }
        headers.forEach(function (h) { h.setAttribute("aria-sort", "none"); });
        header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.querySelectorAll("tr[data-model]"));
        rows.sort(function (a, b) {
          var x = a.cells[index].dataset.sort, y = b.cells[index].dataset.sort;
          if (text) return ascending ? x.localeCompare(y) : y.localeCompare(x);
          // Empty cells last, whichever the direction.
          if (x === "" && y === "") return 0;
          if (x === "") return 1;
          if (y === "") return -1;
          return ascending ? Number(x) - Number(y) : Number(y) - Number(x);
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  }

  // --- The charts: quality (first column) against cost per item and against p50 latency. ---
  function setUpCharts() {
    var data = readJson("lb-chart-data");
    if (!data || !window.Chart) return;
    // One dataset per model, so the legend names each point; the good-enough one is larger.
    var palette = ["#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d"];
    var scoreLike = data.quality_is_score;

    function chart(canvasId, xKey, xLabel, xFormat) {
      var canvas = document.getElementById(canvasId);
      if (!canvas) return;
      var points = data.points.filter(function (p) { return p[xKey] !== null; });
      new window.Chart(canvas, {
        type: "scatter",
        data: {
          datasets: points.map(function (p, index) {
            var color = palette[index % palette.length];
            return {
              label: p.model + (p.good_enough ? " (good enough)" : ""),
              data: [{ x: p[xKey], y: p.quality, model: p.model, low: p.quality_low, high: p.quality_high, good: p.good_enough }],
              pointRadius: p.good_enough ? 9 : 5,
              pointStyle: p.good_enough ? "rectRot" : "circle",
              backgroundColor: color,
              borderColor: color,
            };
          }),
        },
        options: {
          animation: false,
          maintainAspectRatio: false,
          layout: { padding: 8 },
          plugins: {
            legend: { position: "bottom", labels: { usePointStyle: true, boxWidth: 8 } },
            tooltip: {
              callbacks: {
                label: function (context) {
                  var raw = context.raw;
                  var interval = raw.low !== null && raw.high !== null ?
                    " [" + raw.low.toFixed(2) + ", " + raw.high.toFixed(2) + "]" : "";
                  return raw.model + (raw.good ? " (good enough)" : "") + ": " +
                    raw.y.toFixed(2) + interval + ", " + xFormat(raw.x);
                },
              },
            },
          },
          scales: {
            x: { beginAtZero: true, grace: "10%", title: { display: true, text: xLabel }, ticks: { callback: xFormat } },
            y: scoreLike ?
              { min: 0, max: 1, title: { display: true, text: data.quality_label } } :
              { grace: "10%", title: { display: true, text: data.quality_label } },
          },
        },
      });
    }

    chart("lb-cost-chart", "cost_per_item_micros", "Cost per item (USD)", function (micros) {
      return micros ? "$" + Number((micros / 1e6).toPrecision(2)) : "$0";
    });
    chart("lb-latency-chart", "latency_p50_ms", "p50 latency (ms)", function (ms) {
      return (ms < 100 ? Number(ms.toFixed(1)) : Math.round(ms)) + " ms";
    });
  }

  setUpForm();
  setUpSorting();
  setUpCharts();
})();
