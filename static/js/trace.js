// The trace page: three linked views of one trace — the step tree (#steps), the
// timeline (canvas#timeline) and the step panel (#step-detail) — and the keyboard.
// Rows come from the server (the first screen in the page, the rest and the live steps
// over the websocket); this script only reads their data-* attributes.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  var root = document.querySelector(".debugger[data-trace]");
  var list = document.getElementById("steps");
  if (!root || !list) return;
  var canvas = document.getElementById("timeline");

  // Step rows go straight into the list, in one DOM operation per frame, before htmx
  // sees the message: they carry no hx-* attributes, and processing tens of thousands
  // of nodes one by one is what made a 10,000-step catch-up slow. Everything else in
  // the frame (totals, status, running calls) is left to htmx's out-of-band swaps.
  var ROWS = '<div hx-swap-oob="beforeend:#steps">';
  htmx.defineExtension("trace-rows", {
    transformResponse: function (text) {
      if (text.indexOf(ROWS) === -1) return text;
      var tpl = document.createElement("template");
      tpl.innerHTML = text;
      var frag = document.createDocumentFragment();
      tpl.content.querySelectorAll('div[hx-swap-oob="beforeend:#steps"]').forEach(function (div) {
        while (div.firstChild) frag.appendChild(div.firstChild);
        div.remove();
      });
      list.appendChild(frag);
      var cursors = tpl.content.querySelectorAll("#trace-cursor");
      if (cursors.length) {
        document.getElementById("trace-cursor").setAttribute("data-cursor", cursors[cursors.length - 1].getAttribute("data-cursor"));
        cursors.forEach(function (c) { c.remove(); });
      }
      return tpl.innerHTML;
    },
  });
  var pane = document.querySelector(".timeline-pane");
  var stepUrl = root.getAttribute("data-step-url").replace(/0\/$/, "");

  // --- the model: rows by seq, in order ---------------------------------------------
  var rows = []; // {seq, parent, el, t0, t1, kind, error, children, desc, errs}
  var bySeq = {};
  var selected = null;
  var pending = null; // a seq asked for before its row arrived
  var collapsed = {};
  var bySpan = {}; // OTLP span id → row
  var waiting = {}; // parent span id → rows that arrived before their parent
  var waitingSeq = {}; // parent seq → rows listed before their parent (spans ingested out of order)

  function register(el) {
    var seq = +el.getAttribute("data-seq");
    if (!seq || bySeq[seq]) return;
    var parent = el.getAttribute("data-parent");
    var row = {
      seq: seq,
      parent: parent ? +parent : null,
      el: el,
      t0: +el.getAttribute("data-t0") || 0,
      t1: +el.getAttribute("data-t1") || 0,
      kind: el.getAttribute("data-kind"),
      error: el.classList.contains("status-error"),
      children: 0, desc: 0, errs: 0,
    };
    row.index = rows.length;
    rows.push(row);
    bySeq[seq] = row;
    (waitingSeq[seq] || []).forEach(function (child) { adopt(child, row); });
    delete waitingSeq[seq];
    if (row.parent != null && !bySeq[row.parent]) {
      (waitingSeq[row.parent] = waitingSeq[row.parent] || []).push(row);
    }
    // Bubble counts and error markers up to every ancestor.
    var p = row.parent != null ? bySeq[row.parent] : null;
    if (p) p.children += 1;
    while (p) {
      p.desc += 1;
      if (row.error) p.errs += 1;
      dirty[p.seq] = p;
      p = p.parent != null ? bySeq[p.parent] : null;
    }
    if (hiddenUnder(row)) el.classList.add("folded");
    var span = el.getAttribute("data-span"), parentSpan = el.getAttribute("data-parent-span");
    if (span) {
      bySpan[span] = row;
      (waiting[span] || []).forEach(function (child) { adopt(child, row); });
      delete waiting[span];
    }
    if (row.parent == null && parentSpan) {
      if (bySpan[parentSpan]) adopt(row, bySpan[parentSpan]);
      else (waiting[parentSpan] = waiting[parentSpan] || []).push(row);
    }
    if (pending === seq) { pending = null; select(seq, { fetch: false, scroll: true }); }
  }
  function below(row, ancestor) {
    var p = row.parent != null ? bySeq[row.parent] : null;
    while (p) { if (p === ancestor) return true; p = p.parent != null ? bySeq[p.parent] : null; }
    return false;
  }
  // A span that arrived before its parent's span: when the parent's row arrives, the
  // waiting row (and what hangs below it) moves under it, as the database has done
  // and as a reload would show it.
  function adopt(row, parent) {
    if (row === parent || below(parent, row)) return; // a cycle in the spans: left alone
    var delta = (+parent.el.getAttribute("data-depth") || 0) + 1 - (+row.el.getAttribute("data-depth") || 0);
    row.parent = parent.seq;
    row.el.setAttribute("data-parent", parent.seq);
    parent.children += 1;
    var p = parent;
    while (p) {
      p.desc += 1 + row.desc;
      p.errs += (row.error ? 1 : 0) + row.errs;
      dirty[p.seq] = p;
      p = p.parent != null ? bySeq[p.parent] : null;
    }
    rows.forEach(function (r) {
      if (r !== row && !below(r, row)) return;
      if (delta) {
        var depth = (+r.el.getAttribute("data-depth") || 0) + delta;
        r.el.setAttribute("data-depth", depth);
        r.el.style.setProperty("--depth", Math.min(depth, 40));
      }
      r.el.classList.toggle("folded", hiddenUnder(r));
    });
  }
  function hiddenUnder(row) {
    var p = row.parent != null ? bySeq[row.parent] : null;
    while (p) { if (collapsed[p.seq]) return true; p = p.parent != null ? bySeq[p.parent] : null; }
    return false;
  }

  // Counts are drawn once per frame, however many rows arrived.
  var dirty = {};
  function drawCounts() {
    Object.keys(dirty).forEach(function (k) {
      var row = dirty[k];
      var head = row.el.firstElementChild;
      if (!head) return;
      var fold = row.el.querySelector(":scope > button.fold");
      if (!fold) {
        fold = document.createElement("button");
        fold.type = "button";
        fold.className = "fold";
        fold.setAttribute("aria-label", "Fold step #" + row.seq);
        row.el.insertBefore(fold, head);
      }
      fold.setAttribute("aria-expanded", collapsed[row.seq] ? "false" : "true");
      var sub = head.querySelector(".sub");
      if (!sub) { sub = document.createElement("span"); sub.className = "sub"; head.insertBefore(sub, head.querySelector(".dur")); }
      sub.textContent = row.desc + (row.errs ? " · " + row.errs + " err" : "");
      row.el.classList.toggle("has-errors-below", row.errs > 0);
    });
    dirty = {};
  }

  function toggle(seq) {
    collapsed[seq] = !collapsed[seq];
    // Parents come before children: one pass decides every row.
    var hidden = {};
    rows.forEach(function (r) {
      var h = r.parent != null && (collapsed[r.parent] || hidden[r.parent]);
      if (h) hidden[r.seq] = true;
      r.el.classList.toggle("folded", !!h);
    });
    var row = bySeq[seq];
    if (row) { dirty[seq] = row; drawCounts(); }
    schedule();
  }

  // --- selection, shared by the three views --------------------------------------------
  function setUrl(seq) {
    var u = new URL(window.location.href);
    u.searchParams.set("step", seq);
    history.replaceState(null, "", u.toString());
  }
  function select(seq, opts) {
    opts = opts || {};
    var row = bySeq[seq];
    if (!row) { pending = seq; if (opts.fetch !== false) load(seq); setUrl(seq); return; }
    if (selected && selected.el) selected.el.classList.remove("is-selected");
    selected = row;
    row.el.classList.add("is-selected");
    // Unfold its ancestors so it can be seen.
    var p = row.parent != null ? bySeq[row.parent] : null;
    var unfolded = false;
    while (p) { if (collapsed[p.seq]) { collapsed[p.seq] = false; unfolded = p.seq; } p = p.parent != null ? bySeq[p.parent] : null; }
    if (unfolded) { collapsed[unfolded] = true; toggle(unfolded); }
    if (opts.scroll !== false) row.el.scrollIntoView({ block: "nearest" });
    if (opts.fetch !== false) load(seq);
    setUrl(seq);
    revealInTimeline(row);
    schedule();
  }
  function load(seq) {
    if (window.htmx) htmx.ajax("GET", stepUrl + seq + "/", { target: "#step-detail", swap: "innerHTML" });
  }

  // One listener for every row (rows carry no handlers of their own: there may be
  // 10,000). Without JavaScript a row is a plain link to ?step=N.
  list.addEventListener("click", function (e) {
    var b = e.target.closest("button.fold");
    if (b) { e.preventDefault(); toggle(+b.parentElement.getAttribute("data-seq")); return; }
    var a = e.target.closest("a.step-head");
    if (!a || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    select(+a.parentElement.getAttribute("data-seq"), { scroll: false });
  });

  // --- the timeline (canvas) -------------------------------------------------------------
  var ROW_H = 12, PAD_L = 4, AXIS_H = 18;
  var view = { start: null, end: null, top: 0, fitted: false };
  var frame = 0;
  function schedule() { if (!frame) frame = requestAnimationFrame(draw); }
  function extent() {
    var lo = Infinity, hi = -Infinity;
    rows.forEach(function (r) { if (r.t0) { lo = Math.min(lo, r.t0); hi = Math.max(hi, r.t1 || r.t0); } });
    return lo === Infinity ? null : [lo, Math.max(hi, lo + 1)];
  }
  function visibleRows() { return rows.filter(function (r) { return !r.el.classList.contains("folded"); }); }
  function draw() {
    frame = 0;
    drawCounts();
    if (!canvas) return;
    var ext = extent();
    var dpr = window.devicePixelRatio || 1;
    var w = canvas.clientWidth, h = canvas.clientHeight;
    if (canvas.width !== w * dpr) { canvas.width = w * dpr; canvas.height = h * dpr; }
    var ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    if (!ext) return;
    if (!view.fitted) { view.start = ext[0]; view.end = ext[1]; }
    var span = view.end - view.start;
    var scale = (w - PAD_L * 2) / span;
    // The axis: about 8 ticks at a round step.
    var step = Math.pow(10, Math.floor(Math.log10(span / 8)));
    if (span / step > 16) step *= 5; else if (span / step > 8) step *= 2;
    ctx.fillStyle = "#888"; ctx.font = "10px sans-serif";
    for (var t = Math.ceil((view.start - ext[0]) / step) * step; t <= view.end - ext[0]; t += step) {
      var x = PAD_L + (t + ext[0] - view.start) * scale;
      ctx.fillRect(x, AXIS_H - 4, 1, 4);
      ctx.fillText(t >= 1000 ? (t / 1000).toFixed(t % 1000 ? 1 : 0) + " s" : Math.round(t) + " ms", x + 2, 10);
    }
    var vis = visibleRows();
    var capacity = Math.floor((h - AXIS_H) / ROW_H);
    view.top = Math.max(0, Math.min(view.top, vis.length - capacity));
    for (var i = view.top; i < Math.min(vis.length, view.top + capacity); i++) {
      var r = vis[i];
      if (!r.t0) continue;
      var x0 = PAD_L + (r.t0 - view.start) * scale;
      var x1 = PAD_L + ((r.t1 || r.t0) - view.start) * scale;
      if (x1 < 0 || x0 > w) continue;
      var y = AXIS_H + (i - view.top) * ROW_H;
      ctx.fillStyle = r.error ? "#d64545" : COLORS[r.kind] || "#999";
      ctx.fillRect(x0, y + 2, Math.max(2, x1 - x0), ROW_H - 4);
      if (selected === r) { ctx.strokeStyle = "#111"; ctx.lineWidth = 1.5; ctx.strokeRect(x0 - 1, y + 1, Math.max(2, x1 - x0) + 2, ROW_H - 2); }
    }
    canvas.setAttribute("data-rows", vis.length);
  }
  var COLORS = { model_call: "#6b5bd6", tool_call: "#2f80c8", tool_result: "#2a9d8f", error: "#d64545", final: "#3f8f3f" };
  function revealInTimeline(row) {
    if (!canvas) return;
    var vis = visibleRows();
    var i = vis.indexOf(row);
    var capacity = Math.floor((canvas.clientHeight - AXIS_H) / ROW_H);
    if (i >= 0 && (i < view.top || i >= view.top + capacity)) view.top = Math.max(0, i - Math.floor(capacity / 2));
  }
  if (canvas) {
    pane.hidden = false;
    var drag = null;
    canvas.addEventListener("mousedown", function (e) { drag = { x: e.clientX, moved: false, start: view.start, end: view.end }; });
    window.addEventListener("mousemove", function (e) {
      if (!drag) return;
      var dx = e.clientX - drag.x;
      if (Math.abs(dx) > 3) drag.moved = true;
      if (!drag.moved) return;
      var ms = dx * (drag.end - drag.start) / canvas.clientWidth;
      view.fitted = true; view.start = drag.start - ms; view.end = drag.end - ms; schedule();
    });
    window.addEventListener("mouseup", function (e) {
      if (!drag) return;
      var moved = drag.moved; drag = null;
      if (moved) return;
      var rect = canvas.getBoundingClientRect();
      var i = view.top + Math.floor((e.clientY - rect.top - AXIS_H) / ROW_H);
      var r = visibleRows()[i];
      if (r && e.clientY - rect.top > AXIS_H) select(r.seq);
    });
    canvas.addEventListener("wheel", function (e) {
      e.preventDefault();
      if (e.ctrlKey || e.metaKey) {
        var ext = extent(); if (!ext) return;
        if (!view.fitted) { view.start = ext[0]; view.end = ext[1]; view.fitted = true; }
        var rect = canvas.getBoundingClientRect();
        var at = view.start + (e.clientX - rect.left) / canvas.clientWidth * (view.end - view.start);
        var k = e.deltaY > 0 ? 1.25 : 0.8;
        view.start = at - (at - view.start) * k; view.end = at + (view.end - at) * k;
      } else {
        view.top += e.deltaY > 0 ? 3 : -3;
      }
      schedule();
    }, { passive: false });
    canvas.addEventListener("dblclick", function () { view.fitted = false; schedule(); });
    window.addEventListener("resize", schedule);
  }

  // --- keyboard ------------------------------------------------------------------------
  var search = document.getElementById("trace-search");
  var matches = [], matchQuery = "";
  function typing(e) { var t = e.target; return t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName)); }
  function move(delta) {
    var vis = visibleRows();
    if (!vis.length) return;
    var i = selected ? vis.indexOf(selected) : -1;
    var next = vis[Math.max(0, Math.min(vis.length - 1, i + delta))];
    if (i < 0) next = vis[0];
    select(next.seq);
  }
  function nextError() {
    var from = selected ? selected.index : -1;
    for (var k = 1; k <= rows.length; k++) {
      var r = rows[(from + k) % rows.length];
      if (r.error) { select(r.seq); return; }
    }
  }
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e)) return;
    if (e.key === "j") { move(1); e.preventDefault(); }
    else if (e.key === "k") { move(-1); e.preventDefault(); }
    else if (e.key === "e") { nextError(); e.preventDefault(); }
    else if (e.key === "/" && search) { search.focus(); search.select(); e.preventDefault(); }
  });
  if (search) {
    var form = search.form, status = form.querySelector(".search-status");
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var q = search.value.trim();
      if (!q) return;
      var go = function () {
        if (!matches.length) { status.textContent = "no match"; return; }
        var cur = selected ? selected.seq : 0;
        var seq = matches.find(function (s) { return s > cur; }) || matches[0];
        status.textContent = (matches.indexOf(seq) + 1) + " of " + matches.length;
        select(seq);
      };
      if (q === matchQuery) { go(); return; }
      fetch(form.getAttribute("data-url") + "?q=" + encodeURIComponent(q), { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (data) { matches = data.seqs; matchQuery = q; go(); });
    });
    search.addEventListener("keydown", function (e) { if (e.key === "Escape") search.blur(); });
  }

  // --- calls in progress: a ticking duration -------------------------------------------
  setInterval(function () {
    var now = Date.now();
    // A call announced both in the greeting and live (a connect right as it started)
    // is shown once.
    var seen = {};
    document.querySelectorAll("#running-calls > li").forEach(function (li) {
      if (seen[li.id]) li.remove(); else seen[li.id] = true;
    });
    document.querySelectorAll("[data-running-since]").forEach(function (el) {
      var since = +el.getAttribute("data-running-since");
      el.textContent = "running " + ((now - since) / 1000).toFixed(1) + " s…";
      var li = el.closest("li");
      var p = li && bySeq[+li.getAttribute("data-parent")];
      if (p && !li.style.getPropertyValue("--depth")) li.style.setProperty("--depth", (+p.el.getAttribute("data-depth") || 0) + 1);
    });
  }, 200);

  // --- rows as they arrive -----------------------------------------------------------------
  Array.prototype.forEach.call(list.children, register);
  new MutationObserver(function (records) {
    records.forEach(function (rec) { rec.addedNodes.forEach(function (n) { if (n.nodeType === 1 && n.matches("li.step")) register(n); }); });
    schedule();
  }).observe(list, { childList: true });
  var initial = new URL(window.location.href).searchParams.get("step");
  if (initial && /^\d+$/.test(initial)) select(+initial, { fetch: false });
  schedule();
  window.tooltrailTrace = { select: select, toggle: toggle, rows: rows };
})();
