// Report interaction: clicking a thumbnail shows its path, label, split and size.
// Everything works without this script except the inspector panel.
(function () {
  "use strict";
  var inspector = document.getElementById("inspector");
  function show(fig) {
    var rows = [["path", fig.dataset.path], ["label", fig.dataset.label],
                ["split", fig.dataset.split], ["size", fig.dataset.size],
                ["value", fig.dataset.note]];
    inspector.textContent = "";
    rows.forEach(function (row) {
      if (!row[1]) { return; }
      var line = document.createElement("div");
      var key = document.createElement("b");
      key.textContent = row[0] + ": ";
      line.appendChild(key);
      line.appendChild(document.createTextNode(row[1]));
      inspector.appendChild(line);
    });
    inspector.hidden = false;
  }
  document.addEventListener("click", function (event) {
    var fig = event.target.closest("figure.thumb");
    if (fig) { show(fig); } else if (!event.target.closest("#inspector")) { inspector.hidden = true; }
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { inspector.hidden = true; }
    if (event.key === "Enter" && document.activeElement.matches("figure.thumb")) { show(document.activeElement); }
  });
})();
