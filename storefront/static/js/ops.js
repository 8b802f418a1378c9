// The operations page: draws every <canvas data-ops-chart="KEY"> from the JSON in
// <script id="ops-data" type="application/json"> (json_script, so no inline script under the CSP).
// KEY is a path into that JSON ("latency_ms.p95"): a list is one line, an object one line per key.
(function () {
  "use strict";
  var COLORS = ["#3b5bdb", "#e8590c", "#2f9e44", "#c2255c", "#7048e8", "#1098ad", "#f08c00", "#495057"];
  function lookup(data, path) {
    return path.split(".").reduce(function (obj, key) { return obj == null ? null : obj[key]; }, data);
  }
  function draw(canvas, data) {
    var value = lookup(data, canvas.dataset.opsChart);
    if (value == null) { return; }
    var scale = Number(canvas.dataset.scale || 1);
    var series = Array.isArray(value) ? [[canvas.dataset.series || "value", value]] : Object.entries(value);
    var type = canvas.dataset.type || "line";
    new window.Chart(canvas, {
      type: type,
      data: {
        labels: data.labels,
        datasets: series.map(function (entry, i) {
          var color = COLORS[i % COLORS.length];
          return {
            label: entry[0],
            data: entry[1].map(function (v) { return v == null ? null : v * scale; }),
            borderColor: color,
            backgroundColor: color,
            borderWidth: 1.5,
            pointRadius: 0,
            spanGaps: false,
            tension: 0.2
          };
        })
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { display: series.length > 1, position: "bottom" } },
        scales: {
          x: { ticks: { maxTicksLimit: 12 } },
          y: { beginAtZero: true, title: { display: Boolean(canvas.dataset.unit), text: canvas.dataset.unit || "" } }
        }
      }
    });
  }
  var source = document.getElementById("ops-data");
  if (!source || !window.Chart) { return; }
  var data = JSON.parse(source.textContent);
  document.querySelectorAll("canvas[data-ops-chart]").forEach(function (canvas) { draw(canvas, data); });
})();
