// Coding Agent dashboard: marks live streams' state, and keeps a live log bounded, so a task that
// writes without pause never slows the page down; the older lines stay one link away.
// (A file: the CSP forbids inline code.)
(function () {
  "use strict";
  var MAX_LINES = 1000;

  function olderLink(log, seq) {
    var wrap = document.getElementById("log-older-wrap");
    if (!wrap) {
      wrap = document.createElement("p");
      wrap.id = "log-older-wrap";
      log.parentNode.insertBefore(wrap, log);
    }
    var stale = document.querySelectorAll(".log-older");
    for (var i = 0; i < stale.length; i++) {
      stale[i].parentNode.removeChild(stale[i]);
    }
    var link = document.createElement("a");
    link.id = "log-older";
    link.href = log.getAttribute("data-log-url") + "?before=" + seq;
    link.textContent = "Older events";
    wrap.replaceChildren(link);
  }

  function trim(log) {
    var extra = log.children.length - MAX_LINES;
    if (extra <= 0) {
      return;
    }
    for (var i = 0; i < extra; i++) {
      log.removeChild(log.firstElementChild);
    }
    var first = log.querySelector(".log-line");
    if (first) {
      olderLink(log, first.id.replace("event-", ""));
    }
  }

  // The element holding a live stream says how it is: data-live="open", "error" or "closed".
  function mark(state) {
    return function (event) {
      if (event.target && event.target.setAttribute) {
        event.target.setAttribute("data-live", state);
      }
    };
  }
  document.addEventListener("htmx:sseOpen", mark("open"));
  document.addEventListener("htmx:sseError", mark("error"));
  document.addEventListener("htmx:sseClose", mark("closed"));

  // A pending request's time left counts down (the server rendered it; this keeps it current).
  function age(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    if (seconds < 60) { return seconds + "s"; }
    if (seconds < 3600) { return Math.floor(seconds / 60) + "m"; }
    if (seconds < 86400) { return Math.floor(seconds / 3600) + "h"; }
    return Math.floor(seconds / 86400) + "d";
  }
  setInterval(function () {
    var left = document.querySelectorAll("time.approval-left");
    for (var i = 0; i < left.length; i++) {
      var deadline = Date.parse(left[i].getAttribute("datetime"));
      if (!isNaN(deadline)) {
        left[i].textContent = age((deadline - Date.now()) / 1000);
      }
    }
  }, 1000);

  document.addEventListener("htmx:sseMessage", function (event) {
    if (event.target && event.target.id === "log") {
      trim(event.target);
    }
  });
})();
