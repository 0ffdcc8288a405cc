// Live traces over the htmx ws extension. The one thing htmx cannot do by itself:
// on every (re)connect, ask the server only for the steps after the last one shown,
// so a dropped connection catches up with no gap and no duplicate.
(function () {
  function cursorUrl(url) {
    var cursor = document.getElementById("trace-cursor");
    if (!cursor) return url;
    var u = new URL(url, window.location.href);
    u.searchParams.set("after", cursor.getAttribute("data-cursor") || "0");
    return u.toString();
  }
  htmx.createWebSocket = function (url) {
    return new WebSocket(cursorUrl(url));
  };
  // Reconnect fast at first, then back off (ms).
  htmx.config.wsReconnectDelay = function (retryCount) {
    return Math.min(200 * Math.pow(2, retryCount), 5000) * (0.5 + Math.random() / 2);
  };
  document.addEventListener("htmx:wsOpen", function () {
    document.documentElement.setAttribute("data-live", "open");
  });
  document.addEventListener("htmx:wsClose", function () {
    document.documentElement.setAttribute("data-live", "closed");
  });
})();
