"use strict";
(function () {
  var q = new URLSearchParams(location.search);
  var next = q.get("next");
  if (next && next.charAt(0) === "/" && next.charAt(1) !== "/") document.getElementById("next").value = next;
  if (q.get("failed")) document.getElementById("login-failed").hidden = false;
})();
