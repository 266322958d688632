// Draws the usage charts from the JSON the server embeds (#usage-chart-data), and again after
// every htmx swap of the results. Amounts arrive as integer micro-dollars; buckets are days, or
// hours for ranges of two days or less (data.bucket).
(function () {
  "use strict";
  const PALETTE = ["#2563eb", "#16a34a", "#ea580c", "#9333ea", "#0891b2", "#dc2626", "#ca8a04", "#4b5563"];
  const charts = {};

  // The one money rule (static/js/money.js, loaded before this file).
  const usd = (micros) => window.Yardstick.money.usd(micros);

  // minimum: the axis's least top (a cent for cost), so an empty or tiny chart does not label
  // fractions of a micro-dollar or of a token.
  function draw(canvasId, data, field, formatTick, minimum) {
    const canvas = document.getElementById(canvasId);
    if (!canvas || !window.Chart) return;
    if (charts[canvasId]) charts[canvasId].destroy();
    charts[canvasId] = new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: data.groups.map((group, i) => ({
          label: group.key,
          data: group[field],
          backgroundColor: PALETTE[i % PALETTE.length],
          stack: "usage",
        })),
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { stacked: true, ticks: { maxRotation: 0, autoSkipPadding: 12 } },
          y: {
            stacked: true,
            beginAtZero: true,
            suggestedMax: minimum,
            ticks: { callback: formatTick, precision: 0 },
          },
        },
        plugins: {
          legend: { position: "bottom" },
          tooltip: { callbacks: { label: (ctx) => ctx.dataset.label + ": " + formatTick(ctx.parsed.y) } },
        },
      },
    });
  }

  function render() {
    const node = document.getElementById("usage-chart-data");
    if (!node) return;
    const data = JSON.parse(node.textContent);
    draw("usage-cost-chart", data, "cost", usd, 10000);
    draw("usage-tokens-chart", data, "tokens", (v) => Number(v).toLocaleString(), 10);
  }

  document.addEventListener("DOMContentLoaded", render);
  document.body.addEventListener("htmx:afterSettle", render);
})();
