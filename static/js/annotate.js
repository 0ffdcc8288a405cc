// The annotator's keyboard: 1/2/3 verdict, q…p category, c corrected call, a accept the
// judge's suggestion, n save & next, b back, s skip. Keys typed into a field are left
// alone (Escape leaves the field). Items are swapped in by htmx: no page reloads.
(function () {
  function panel() { return document.getElementById("item-panel"); }
  function click(action) {
    var el = panel() && panel().querySelector('[data-action="' + action + '"]');
    if (el) { el.click(); return true; }
    return false;
  }
  function accept(form) {
    var box = panel().querySelector("[data-suggestion]");
    if (!box) return;
    var s = JSON.parse(box.getAttribute("data-suggestion"));
    var v = form.querySelector('input[name="verdict"][value="' + s.verdict + '"]');
    if (v) v.checked = true;
    var c = form.querySelector('input[name="category"][value="' + (s.category || "") + '"]');
    if (c) c.checked = true;
    if (s.corrected_call && form.corrected_name) {
      form.corrected_name.value = s.corrected_call.name;
      form.corrected_arguments.value = JSON.stringify(s.corrected_call.arguments);
      form.querySelector("details.corrected-call").open = true;
    }
  }
  document.addEventListener("keydown", function (e) {
    var p = panel();
    if (!p || e.ctrlKey || e.metaKey || e.altKey) return;
    var t = e.target;
    if (t.matches && t.matches("input[type=text], input:not([type]), textarea, select")) {
      if (e.key === "Escape") t.blur();
      return;
    }
    // A key pressed right after an item is swapped in may come before htmx has set up
    // the new item's links and forms; a click then would load a whole page. htmx skips
    // elements it has already set up, so this is cheap.
    if (window.htmx) window.htmx.process(p);
    var form = p.querySelector("form.label-form");
    var key = e.key.toLowerCase();
    var choice = form && form.querySelector('input[data-key="' + key + '"]');
    if (choice) { choice.checked = true; e.preventDefault(); return; }
    if (key === "n" && form) { e.preventDefault(); form.requestSubmit(); return; }
    if (key === "b") { if (click("back")) e.preventDefault(); return; }
    if (key === "s") { if (click("skip")) e.preventDefault(); return; }
    if (key === "a" && form) { e.preventDefault(); accept(form); return; }
    if (key === "c" && form) {
      var d = form.querySelector("details.corrected-call");
      if (d) { e.preventDefault(); d.open = true; form.corrected_name.focus(); }
    }
  });
})();
