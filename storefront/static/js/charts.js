// Draws every <canvas data-chart="ID"> from the JSON in <script id="ID" type="application/json">
// (written by Django's json_script), so pages need no inline script and a strict CSP holds.
(function () {
  "use strict";
  function draw(canvas) {
    var source = document.getElementById(canvas.dataset.chart);
    if (!source || !window.Chart) { return; }
    var data = JSON.parse(source.textContent);
    var type = canvas.dataset.chartType || "line";
    new window.Chart(canvas, {
      type: type,
      data: {
        labels: data.labels,
        datasets: [{
          label: data.label,
          data: data.values.map(Number),
          borderColor: "#3b5bdb",
          backgroundColor: type === "bar" ? "rgba(59, 91, 219, 0.6)" : "rgba(59, 91, 219, 0.12)",
          fill: type !== "bar",
          tension: 0.25,
          pointRadius: 2
        }]
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        plugins: { legend: { display: false } },
        scales: {
          y: { beginAtZero: true, ticks: { callback: function (v) { return "$" + v; } } }
        }
      }
    });
  }
  document.querySelectorAll("canvas[data-chart]").forEach(draw);
})();
