// A product page is cached once for every anonymous visitor, so its add-to-cart form carries no
// CSRF token (nor does the page set a CSRF cookie). On submit this asks the shop for one
// (GET /cart/token/, which also sets the cookie the token goes with), adds it to the form and
// submits it. Without JavaScript the form still works: the shop answers with a page that asks
// to confirm, holding a token and the same product and quantity (storefront/orders/views.py).
(function () {
  "use strict";
  var form = document.getElementById("add-to-cart");
  if (!form || !window.fetch) { return; }
  var busy = false;
  form.addEventListener("submit", function (event) {
    if (form.querySelector("input[name=csrfmiddlewaretoken]")) { return; }
    event.preventDefault();
    if (busy) { return; }
    busy = true;
    fetch(form.getAttribute("data-token-url"), {
      credentials: "same-origin",
      headers: { "Accept": "application/json" },
    }).then(function (response) {
      if (!response.ok) { throw new Error("token " + response.status); }
      return response.json();
    }).then(function (data) {
      var input = document.createElement("input");
      input.type = "hidden";
      input.name = "csrfmiddlewaretoken";
      input.value = data.token;
      form.appendChild(input);
    }).catch(function () {
      // No token: the form goes without one and the shop asks to confirm (nothing is lost).
    }).then(function () {
      busy = false;
      form.submit();
    });
  });
})();
