// The listing's filters are a <details id="filters-panel">, served folded so phones see products
// first. On wide screens (the sidebar layout in site.css) this opens it; crossing the breakpoint
// (rotating a tablet, resizing a window) folds or opens it again. No inline script: strict CSP.
(function () {
  "use strict";
  var panel = document.getElementById("filters-panel");
  if (!panel || !window.matchMedia) { return; }
  var narrow = window.matchMedia("(max-width: 800px)");  // the breakpoint in site.css
  if (!narrow.matches) { panel.open = true; }
  function follow(event) { panel.open = !event.matches; }
  if (narrow.addEventListener) { narrow.addEventListener("change", follow); } else if (narrow.addListener) { narrow.addListener(follow); }
})();
