// Draws the report's plotly figures from the JSON embedded in the page, and makes points that stand for a
// program (their customdata is the program page's address) open that page when clicked.
(function () {
  "use strict";

  function openPoint(ev) {
    var pt = ev && ev.points && ev.points[0];
    if (pt && typeof pt.customdata === "string" && pt.customdata) {
      window.location.href = pt.customdata;
    }
  }

  function draw(el) {
    var src = document.getElementById(el.getAttribute("data-figure") + "-data");
    if (!src) { return; }
    var fig = JSON.parse(src.textContent);
    // plotly's responsive mode resizes a figure to its container on window resize: give the container the
    // figure's height, or a resize would collapse it
    if (fig.layout && fig.layout.height) { el.style.height = fig.layout.height + "px"; }
    var config = {responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"]};
    Plotly.newPlot(el, fig.data, fig.layout, config).then(function () {
      el.on("plotly_click", openPoint);
      el.setAttribute("data-rendered", "true");
    });
  }

  if (typeof Plotly === "undefined") {
    document.querySelectorAll("[data-figure]").forEach(function (el) {
      el.textContent = "Charts need assets/plotly.min.js beside this page; it is missing.";
    });
    return;
  }
  document.querySelectorAll("[data-figure]").forEach(draw);
})();
