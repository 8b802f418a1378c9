// Follows a running product import: polls the status URL named by the page's
// data-status-url, moves the <progress> bar and the counts, and reloads the page (which then
// shows the report) once the import has finished. A static file, so the strict CSP holds.
(function () {
  "use strict";
  var card = document.getElementById("import-progress-card");
  if (!card || card.dataset.finished === "true" || !window.fetch) { return; }
  var url = card.dataset.statusUrl;
  var delay = 1000;
  var failures = 0;

  function number(value) {
    return value === null || value === undefined ? "…" : Number(value).toLocaleString("en-US");
  }

  function setText(id, text) {
    var element = document.getElementById(id);
    if (element) { element.textContent = text; }
  }

  function show(state) {
    var bar = document.getElementById("import-progress");
    if (bar && state.total_rows) {
      bar.max = state.total_rows;
      bar.value = state.processed_rows;
      bar.textContent = state.percent + "%";
    }
    setText("import-status", state.status_display);
    setText("import-processed", number(state.processed_rows));
    setText("import-total", number(state.total_rows));
    setText("import-percent", String(state.percent));
    setText("import-created", number(state.created));
    setText("import-updated", number(state.updated));
    setText("import-unchanged", number(state.unchanged));
    setText("import-rejected", number(state.rejected));
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (state) {
        failures = 0;
        show(state);
        if (state.finished) {
          window.location.reload();
        } else {
          window.setTimeout(poll, delay);
        }
      })
      .catch(function () {
        // A blip (deploy, restart): back off, then give up and leave the refresh link.
        failures += 1;
        if (failures < 10) { window.setTimeout(poll, delay * failures); }
      });
  }

  window.setTimeout(poll, delay);
}());
