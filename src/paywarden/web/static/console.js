// The merchant console's live orders: refresh the table's rows every few seconds (same
// origin, same session) and announce new orders politely. No framework, nothing external.
(function () {
  "use strict";
  var table = document.getElementById("orders");
  if (!table) { return; }
  var body = table.tBodies[0];
  var announce = document.getElementById("orders-announce");
  function ids() {
    return Array.prototype.map.call(body.querySelectorAll("tr[data-order]"),
      function (row) { return row.getAttribute("data-order"); });
  }
  function refresh() {
    fetch(table.getAttribute("data-live"), { credentials: "same-origin", cache: "no-store" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) { return; }
        var before = ids();
        body.innerHTML = html;
        var fresh = ids().filter(function (id) { return before.indexOf(id) < 0; });
        if (fresh.length && announce) {
          announce.textContent = fresh.length + (fresh.length === 1 ? " new order" : " new orders");
        }
      })
      .catch(function () { /* offline for a moment: try again next tick */ });
  }
  window.setInterval(refresh, 2000);
})();
