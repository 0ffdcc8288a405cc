// Live filter for a list of labels: <input data-filter-target="#list"> hides the
// entries whose data-search text lacks any typed word. Without JavaScript the search
// form narrows the list on the server instead.
document.querySelectorAll("input[data-filter-target]").forEach(function (input) {
  var list = document.querySelector(input.dataset.filterTarget);
  if (!list) return;
  input.addEventListener("input", function () {
    var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    list.querySelectorAll("[data-search]").forEach(function (item) {
      var text = item.dataset.search;
      var checked = item.querySelector("input:checked");
      item.hidden = !checked && !words.every(function (w) { return text.indexOf(w) >= 0; });
    });
  });
});
