// Report interaction: clicking a thumbnail shows its path, label, split and size.
// Everything works without this script except the inspector panel.
// Fills the inspector panel with [name, value] rows, skipping empty values; shared by the
// thumbnails and the map.
function showInspector(rows) {
  "use strict";
  var inspector = document.getElementById("inspector");
  if (!inspector) { return; }
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

(function () {
  "use strict";
  var inspector = document.getElementById("inspector");
  function show(fig) {
    showInspector([["path", fig.dataset.path], ["label", fig.dataset.label],
                   ["split", fig.dataset.split], ["size", fig.dataset.size],
                   ["value", fig.dataset.note]]);
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

// The t-SNE map: points from the JSON in #map-data (never run as code), hover images cropped
// from the one atlas image, classes toggled from the table beside the map.
(function () {
  "use strict";
  var holder = document.getElementById("map-data");
  var canvas = document.getElementById("map-canvas");
  if (!holder || !canvas) { return; }
  var data = JSON.parse(holder.textContent);
  var atlas = document.getElementById("map-atlas");
  var tip = document.getElementById("map-tip");
  var tipCanvas = tip.querySelector("canvas");
  var tipText = tip.querySelector(".tiptext");
  var inspector = document.getElementById("inspector");
  var hidden = {};
  var n = data.x.length;
  var ctx = canvas.getContext("2d");
  var size = 720;
  var MARGIN = 10;

  function px(i) { return MARGIN + data.x[i] / 10000 * (size - 2 * MARGIN); }
  function py(i) { return MARGIN + (1 - data.y[i] / 10000) * (size - 2 * MARGIN); }

  function draw() {
    var ratio = window.devicePixelRatio || 1;
    size = canvas.clientWidth || 720;
    canvas.width = Math.round(size * ratio);
    canvas.height = Math.round(size * ratio);
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, size, size);
    var r = n > 20000 ? 1 : (n > 5000 ? 1.5 : 2.5);
    for (var i = 0; i < n; i++) {
      var c = data.class[i];
      if (hidden[c]) { continue; }
      ctx.fillStyle = data.colors[c % data.colors.length];
      ctx.fillRect(px(i) - r, py(i) - r, 2 * r, 2 * r);
    }
  }

  function nearest(event) {
    var box = canvas.getBoundingClientRect();
    var mx = event.clientX - box.left, my = event.clientY - box.top;
    var best = -1, bestD = 64;
    for (var i = 0; i < n; i++) {
      if (hidden[data.class[i]]) { continue; }
      var dx = px(i) - mx, dy = py(i) - my, d = dx * dx + dy * dy;
      if (d < bestD) { bestD = d; best = i; }
    }
    return { index: best, x: mx, y: my };
  }

  function describe(i) {
    var split = data.split[i] < data.splits.length ? data.splits[data.split[i]] : "";
    return { path: data.path[i], label: data.classes[data.class[i]], split: split };
  }

  canvas.addEventListener("mousemove", function (event) {
    var hit = nearest(event);
    if (hit.index < 0) { tip.hidden = true; return; }
    var i = hit.index, info = describe(i);
    var t = data.tile, col = i % data.columns, row = Math.floor(i / data.columns);
    var g = tipCanvas.getContext("2d");
    g.imageSmoothingEnabled = false;
    g.clearRect(0, 0, 96, 96);
    if (atlas && atlas.complete && atlas.naturalWidth > 0) {
      g.drawImage(atlas, col * t, row * t, t, t, 0, 0, 96, 96);
    }
    tipText.textContent = info.label + (info.split ? " · " + info.split : "") + " — " + info.path;
    tip.hidden = false;
    var left = hit.x + 14, top = hit.y + 14;
    if (left + 230 > size) { left = hit.x - 234; }
    if (top + 150 > size) { top = hit.y - 150; }
    tip.style.left = Math.max(0, left) + "px";
    tip.style.top = Math.max(0, top) + "px";
  });
  canvas.addEventListener("mouseleave", function () { tip.hidden = true; });
  canvas.addEventListener("click", function (event) {
    var hit = nearest(event);
    if (hit.index < 0 || !inspector) { return; }
    var info = describe(hit.index);
    showInspector([["path", info.path], ["label", info.label], ["split", info.split]]);
    event.stopPropagation();
  });

  var rows = document.querySelectorAll("tr.mapclass");
  function sync() {
    rows.forEach(function (tr) { tr.classList.toggle("off", !!hidden[tr.dataset.class]); });
    draw();
  }
  rows.forEach(function (tr) {
    function toggle() { hidden[tr.dataset.class] = !hidden[tr.dataset.class]; sync(); }
    tr.addEventListener("click", toggle);
    tr.addEventListener("keydown", function (event) { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); toggle(); } });
  });
  document.querySelectorAll("button[data-map]").forEach(function (button) {
    button.addEventListener("click", function () {
      var hide = button.dataset.map === "none";
      data.classes.forEach(function (_, c) { hidden[c] = hide; });
      sync();
    });
  });
  window.addEventListener("resize", draw);
  draw();
})();
