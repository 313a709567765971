// The console's own script (the CSP allows no inline script): local times, and the pause control.
(function () {
  "use strict";
  var KEY = "miniapp-console-paused";

  // Times arrive in UTC (<time datetime="…Z">); show them in the browser's zone, UTC on hover.
  function localTimes(root) {
    var times = (root || document).querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) {
      var el = times[i];
      var when = new Date(el.getAttribute("datetime"));
      if (isNaN(when.getTime())) continue;
      el.textContent = when.toLocaleString(undefined, {
        year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit"
      });
      el.title = el.getAttribute("datetime").replace("T", " ").replace(/\.\d+Z$/, "Z").replace("Z", " UTC");
    }
  }

  function paused() {
    return window.sessionStorage.getItem(KEY) === "1";
  }

  function showPause() {
    var button = document.getElementById("pause");
    if (!button) return;
    button.setAttribute("aria-pressed", paused() ? "true" : "false");
    button.textContent = paused() ? "Resume updates" : "Pause updates";
    document.body.classList.toggle("paused", paused());
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    showPause();
    var button = document.getElementById("pause");
    if (button) {
      button.addEventListener("click", function () {
        window.sessionStorage.setItem(KEY, paused() ? "0" : "1");
        showPause();
      });
    }
  });

  // A paused page keeps polling's timer but sends nothing: each poll is cancelled before it leaves.
  // So is a poll of a region holding ticked boxes: a fresh copy would drop the operator's selection.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (elt && elt.hasAttribute("data-poll") && (paused() || elt.querySelector("input[type=checkbox]:checked"))) {
      event.preventDefault();
    }
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    localTimes(event.detail.elt);
  });
})();
