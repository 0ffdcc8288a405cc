// Draws the dashboard's charts from the JSON the page embeds; a click on a bar opens the
// runs behind it. Without JavaScript the tables show the same figures.
(function () {
  if (!window.Chart) return;
  var style = getComputedStyle(document.documentElement);
  var accent = style.getPropertyValue("--accent").trim() || "#3b6fd8";
  var fail = style.getPropertyValue("--k-error").trim() || "#c0392b";
  function read(id) { return JSON.parse(document.getElementById(id).textContent); }
  function open(urls) {
    return function (event, elements) {
      if (elements.length) window.location.href = urls[elements[0].index];
    };
  }
  var runs = read("runs-data");
  new Chart(document.getElementById("runs-chart"), {
    type: "bar",
    data: {
      labels: runs.map(function (b) { return b.label; }),
      datasets: [
        { label: "Runs", data: runs.map(function (b) { return b.runs - b.failed; }), backgroundColor: accent, stack: "s" },
        { label: "Failed", data: runs.map(function (b) { return b.failed; }), backgroundColor: fail, stack: "s" }
      ]
    },
    options: { maintainAspectRatio: false, animation: false, onClick: open(runs.map(function (b) { return b.url; })),
      scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } }
  });
  var agents = read("agents-data");
  new Chart(document.getElementById("cost-chart"), {
    type: "bar",
    data: {
      labels: agents.map(function (a) { return a.name || "(no agent)"; }),
      datasets: [
        { label: "Tokens", data: agents.map(function (a) { return a.tokens; }), backgroundColor: accent, yAxisID: "y" },
        { label: "Cost", data: agents.map(function (a) { return a.cost; }), backgroundColor: "#e0a800", yAxisID: "cost" }
      ]
    },
    options: { maintainAspectRatio: false, animation: false, onClick: open(agents.map(function (a) { return a.url; })),
      scales: { y: { beginAtZero: true, position: "left" }, cost: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false } } } }
  });
})();
