/* gearpy dashboard: a dependency-free single-page app polling the JSON API every 2 s.
   Every string from the server goes into the page as text (never as HTML). */
"use strict";
(function () {
  var API = "/api/v1";
  var POLL_MS = 2000;
  var session = null;
  var timer = null;
  var jobsQuery = { function: "", state: "", priority: "", offset: 0, limit: 50 };

  function h(tag, attrs) {
    var el = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        if (k === "text") el.textContent = v;
        else if (k.slice(0, 2) === "on") el.addEventListener(k.slice(2), v);
        else el.setAttribute(k, v === true ? "" : v);
      });
    }
    for (var i = 2; i < arguments.length; i++) append(el, arguments[i]);
    return el;
  }
  function append(el, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { append(el, c); }); return; }
    el.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }
  function svg(tag, attrs) {
    var el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    Object.keys(attrs || {}).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    return el;
  }
  function fmtAge(s) {
    if (s === null || s === undefined) return "–";
    if (s < 60) return s.toFixed(1) + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + Math.floor(s % 60) + " s";
    if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
    return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
  }
  function num(n) { return Number(n).toLocaleString("en-US"); }
  function plural(n, word) { return num(n) + " " + word + (n === 1 ? "" : "s"); }

  function api(method, path, body) {
    var opts = { method: method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
    if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
    if (method !== "GET" && session) opts.headers["X-CSRF-Token"] = session.csrf;
    return fetch(API + path, opts).then(function (r) {
      if (r.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); throw new Error("login required"); }
      return r.json().then(function (data) {
        if (!r.ok && !(data && data.handle)) {
          var msg = data && data.error ? data.error.message : r.statusText;
          throw new Error(r.status + ": " + msg);
        }
        data._status = r.status;
        return data;
      });
    });
  }

  function setStatus(text, isError) {
    var el = document.getElementById("status");
    el.textContent = text;
    el.className = isError ? "error" : "muted";
  }

  function card(label, value, sub, id) {
    return h("div", { class: "card", id: id }, h("div", { class: "label", text: label }),
      h("div", { class: "value" }, value), sub ? h("div", { class: "sub" }, sub) : null);
  }

  function chart(rates) {
    var W = 600, H = 160, pad = 4;
    var s = svg("svg", { viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none", id: "rate-chart" });
    var max = 1;
    rates.forEach(function (r) { max = Math.max(max, r.submitted, r.finished); });
    [0.25, 0.5, 0.75].forEach(function (f) {
      s.appendChild(svg("line", { x1: 0, x2: W, y1: H * f, y2: H * f, stroke: "#e4e9ee", "stroke-width": 1 }));
    });
    function line(key, color) {
      if (rates.length < 2) return;
      var pts = rates.map(function (r, i) {
        var x = (i / (rates.length - 1)) * W;
        var y = H - pad - (r[key] / (max * 1.15)) * (H - 2 * pad);
        return x.toFixed(1) + "," + y.toFixed(1);
      }).join(" ");
      s.appendChild(svg("polyline", { points: pts, fill: "none", stroke: color, "stroke-width": 2,
        "vector-effect": "non-scaling-stroke" }));
    }
    line("submitted", "#2f6f8f");
    line("finished", "#2e8b57");
    var last = rates.length ? rates[rates.length - 1] : { submitted: 0, finished: 0 };
    return h("div", { class: "chart" },
      h("div", { class: "legend" },
        h("span", null, h("span", { class: "swatch submitted" }), "submitted " + last.submitted + "/s"),
        h("span", null, h("span", { class: "swatch finished" }), "finished " + last.finished + "/s"),
        h("span", null, "peak " + num(max) + "/s over the last " + rates.length + " s")),
      s);
  }

  // ------------------------------------------------------------------ pages

  var pages = {
    overview: function () {
      return api("GET", "/overview").then(function (o) {
        var store = o.store;
        return h("section", { id: "overview" },
          h("h1", { text: "Overview" }),
          h("div", { class: "cards" },
            card("Version", o.version, "pid " + o.pid, "card-version"),
            card("Uptime", fmtAge(o.uptime), null, "card-uptime"),
            card("Connections", num(o.connections.total),
              plural(o.connections.workers, "worker") + ", " + plural(o.connections.clients, "client"), "card-connections"),
            card("Queued", num(o.jobs.queued), o.jobs.scheduled ? num(o.jobs.scheduled) + " scheduled" : null, "card-queued"),
            card("Running", num(o.jobs.running), null, "card-running"),
            card("Functions", num(o.functions), null, "card-functions"),
            card("Queue store", store.name,
              h("span", { class: "badge " + (store.healthy ? "ok" : "bad"), text: store.healthy ? "healthy" : "unreachable" }),
              "card-store"),
            card("Mode", o.mode, o.draining ? "draining" : null, "card-mode")),
          h("h2", { text: "Submitted and finished jobs per second" }),
          chart(o.rates));
      });
    },

    functions: function () {
      return api("GET", "/functions").then(function (d) {
        var admin = session && session.role === "admin";
        var rows = d.functions.map(function (f) {
          var mq = f.maxqueue;
          var mqText = (mq.high || mq.normal || mq.low) ? [mq.high, mq.normal, mq.low].join(" / ") : "–";
          var empty = !f.total && !f.workers;
          return h("tr", { "data-function": f.name },
            h("td", null, h("a", { href: "/jobs?function=" + encodeURIComponent(f.name), "data-nav": true, text: f.name })),
            h("td", { class: "num", text: num(f.queued.high) }), h("td", { class: "num", text: num(f.queued.normal) }),
            h("td", { class: "num", text: num(f.queued.low) }), h("td", { class: "num", text: num(f.scheduled) }),
            h("td", { class: "num", text: num(f.running) }), h("td", { class: "num", text: num(f.workers) }),
            h("td", { class: "num", text: fmtAge(f.oldest_queued_age || null) }),
            h("td", { class: "num", text: f.submit_rate + "/s" }), h("td", { class: "num", text: f.finish_rate + "/s" }),
            h("td", { class: "num", text: mqText }),
            admin ? h("td", null,
              h("button", { class: "small maxqueue", onclick: function () { setMaxqueue(f.name); }, text: "maxqueue" }), " ",
              h("button", { class: "small danger drop", disabled: !empty, title: empty ? "drop this function" : "only an empty function without workers can be dropped",
                onclick: function () { act("DELETE", "/functions/" + encodeURIComponent(f.name), "dropped " + f.name); }, text: "drop" }))
              : null);
        });
        return h("section", { id: "functions" }, h("h1", { text: "Functions" }),
          d.functions.length ? h("table", null,
            h("thead", null, h("tr", null, ["Function", "High", "Normal", "Low", "Scheduled", "Running", "Workers",
              "Oldest queued", "Submitted", "Finished", "Maxqueue (h/n/l)"].map(function (t, i) {
                return h("th", { class: i ? "num" : null, text: t });
              }), admin ? h("th", { text: "" }) : null)),
            h("tbody", null, rows))
            : h("p", { class: "muted", text: "No function known yet." }));
      });
    },

    workers: function () {
      return api("GET", "/workers").then(function (d) {
        var rows = d.workers.map(function (w) {
          return h("tr", { "data-worker": w.id },
            h("td", { class: "num", text: w.id }), h("td", { text: w.peer }), h("td", { text: w.client_id }),
            h("td", { text: w.functions.join(", ") }),
            h("td", null, w.jobs.length ? w.jobs.map(function (j, i) {
              return [i ? ", " : "", h("a", { href: "/jobs/" + encodeURIComponent(j.handle), "data-nav": true, text: j.handle }),
                " (" + j.function + ", " + fmtAge(j.running_for) + ")"];
            }) : h("span", { class: "muted", text: w.sleeping ? "sleeping" : "idle" })));
        });
        return h("section", { id: "workers" }, h("h1", { text: "Workers" }),
          d.workers.length ? h("table", null,
            h("thead", null, h("tr", null, ["Conn", "Peer", "Client id", "Functions", "Running"].map(function (t, i) {
              return h("th", { class: i ? null : "num", text: t });
            }))), h("tbody", null, rows))
            : h("p", { class: "muted", text: "No worker connected." }));
      });
    },

    jobs: function () {
      var q = jobsQuery;
      var params = new URLSearchParams();
      ["function", "state", "priority"].forEach(function (k) { if (q[k]) params.set(k, q[k]); });
      params.set("offset", q.offset); params.set("limit", q.limit);
      return api("GET", "/jobs?" + params.toString()).then(function (d) {
        var admin = session && session.role === "admin";
        var rows = d.jobs.map(function (j) {
          return h("tr", { "data-handle": j.handle },
            h("td", null, h("a", { href: "/jobs/" + encodeURIComponent(j.handle), "data-nav": true, text: j.handle })),
            h("td", { text: j.function }), h("td", { text: j.state }), h("td", { text: j.priority }),
            h("td", { text: j.unique || "–" }), h("td", { class: "num", text: fmtAge(j.age) }),
            h("td", { class: "num", text: num(j.size) }),
            h("td", { text: j.due ? new Date(j.due * 1000).toISOString().replace(".000", "") : "–" }),
            h("td", { text: j.background ? "yes" : "no" }),
            admin ? h("td", null, j.state === "queued" || j.state === "scheduled" ? h("button", {
              class: "small danger cancel", "data-handle": j.handle, text: "cancel",
              onclick: function () { act("DELETE", "/jobs/" + encodeURIComponent(j.handle), "cancelled " + j.handle); }
            }) : null) : null);
        });
        var from = d.total ? d.offset + 1 : 0, to = d.offset + d.jobs.length;
        return h("section", { id: "jobs" }, h("h1", { text: "Jobs" }), filters(),
          h("table", null,
            h("thead", null, h("tr", null, ["Handle", "Function", "State", "Priority", "Unique", "Age", "Bytes", "Due", "Background"].map(function (t) {
              return h("th", { class: t === "Age" || t === "Bytes" ? "num" : null, text: t });
            }), admin ? h("th", { text: "" }) : null)),
            h("tbody", null, rows)),
          h("div", { class: "pager" },
            h("button", { class: "small", id: "prev-page", disabled: d.offset === 0, text: "‹ previous",
              onclick: function () { q.offset = Math.max(0, q.offset - q.limit); refresh(); } }),
            h("span", { id: "page-info", text: num(from) + "–" + num(to) + " of " + num(d.total) }),
            h("button", { class: "small", id: "next-page", disabled: to >= d.total, text: "next ›",
              onclick: function () { q.offset += q.limit; refresh(); } })));
      });
    },

    job: function (handle) {
      return api("GET", "/jobs/" + encodeURIComponent(handle)).then(function (j) {
        var pct = j.progress.denominator ? j.progress.numerator / j.progress.denominator : null;
        var rows = [
          ["Handle", j.handle], ["Function", j.function], ["State", h("span", { class: "badge info", id: "job-state", text: j.state })],
          ["Priority", j.priority], ["Unique", j.unique || "–"], ["Background", j.background ? "yes" : "no"],
          ["Age", fmtAge(j.age)], ["Payload", num(j.size) + " bytes"], ["Due", j.due ? new Date(j.due * 1000).toISOString() : "–"],
          ["Progress", pct === null ? "–" : [h("progress", { max: j.progress.denominator, value: j.progress.numerator }),
            " " + j.progress.numerator + " / " + j.progress.denominator]],
          ["Worker", j.worker ? j.worker.peer + " (" + j.worker.client_id + ", conn " + j.worker.id + ")" : "–"],
          ["Running for", fmtAge(j.running_for)], ["Retries", j.retries],
          ["Waiting clients", j.clients.length ? j.clients.map(function (c) { return c.http ? "HTTP " + c.peer : c.peer + " (" + c.client_id + ")"; }).join(", ") : "none"]
        ];
        var admin = session && session.role === "admin";
        return h("section", { id: "job" }, h("h1", { text: "Job " + j.handle }),
          h("dl", { class: "detail" }, rows.map(function (r) { return [h("dt", { text: r[0] }), h("dd", null, r[1])]; })),
          admin && (j.state === "queued" || j.state === "scheduled") ? h("p", null, h("button", { class: "danger cancel", "data-handle": j.handle,
            onclick: function () { act("DELETE", "/jobs/" + encodeURIComponent(j.handle), "cancelled " + j.handle); }, text: "Cancel this job" })) : null);
      }, function (err) {
        if (/^404/.test(err.message)) return h("section", { id: "job" }, h("h1", { text: "Job " + handle }),
          h("p", { class: "muted", text: "This job is no longer on the server (it finished or was cancelled)." }));
        throw err;
      });
    },

    fleet: function () {
      return api("GET", "/fleet").then(function (d) {
        return h("section", { id: "fleet" }, h("h1", { text: "Fleet" }),
          h("div", { class: "fleet" }, d.servers.map(function (s) {
            if (!s.up) return h("div", { class: "card server", "data-address": s.address },
              h("h2", { text: s.address }), h("span", { class: "badge bad", text: "down" }), h("p", { class: "muted", text: s.error }));
            return h("div", { class: "card server", "data-address": s.address },
              h("h2", null, s.address + " ", h("span", { class: "badge ok", text: "up" })),
              h("div", { class: "sub muted", text: "version " + s.version + " · " + plural(s.connections, "connection") + " · " +
                plural(s.workers, "worker") + " · " + num(s.queued) + " queued · " + num(s.running) + " running" }),
              s.functions.length ? h("table", null,
                h("thead", null, h("tr", null, ["Function", "Total", "Running", "Workers"].map(function (t, i) {
                  return h("th", { class: i ? "num" : null, text: t });
                }))),
                h("tbody", null, s.functions.map(function (f) {
                  return h("tr", null, h("td", { text: f.name }), h("td", { class: "num", text: num(f.total) }),
                    h("td", { class: "num", text: num(f.running) }), h("td", { class: "num", text: num(f.workers) }));
                }))) : h("p", { class: "muted", text: "no functions" }));
          })));
      });
    },

    submit: function () {
      var admin = session && session.role === "admin";
      if (!admin) return Promise.resolve(h("section", { id: "submit" }, h("h1", { text: "Submit a job" }),
        h("p", { class: "muted", text: "Submitting needs the admin role." })));
      var result = h("pre", { class: "result", id: "submit-result", hidden: true });
      var form = h("form", { class: "grid", id: "submit-form" },
        h("label", null, "Function", h("input", { name: "function", id: "f-function", required: true })),
        h("label", null, "Priority", h("select", { name: "priority", id: "f-priority" },
          h("option", { value: "normal", text: "normal" }), h("option", { value: "high", text: "high" }), h("option", { value: "low", text: "low" }))),
        h("label", null, "Unique (optional)", h("input", { name: "unique", id: "f-unique" })),
        h("label", { class: "wide" }, "Payload", h("textarea", { name: "payload", id: "f-payload" })),
        h("label", null, "Payload is", h("select", { name: "encoding", id: "f-encoding" },
          h("option", { value: "text", text: "text" }), h("option", { value: "json", text: "JSON" }), h("option", { value: "base64", text: "base64" }))),
        h("label", null, "Timeout (s, foreground)", h("input", { name: "timeout", id: "f-timeout", type: "number", value: "30", min: "1" })),
        h("label", { class: "check" }, h("input", { type: "checkbox", name: "background", id: "f-background" }), "background (return at once)"),
        h("div", { class: "wide" }, h("button", { type: "submit", id: "f-submit", text: "Submit" })));
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var fd = new FormData(form);
        var body = { function: fd.get("function"), priority: fd.get("priority"), encoding: fd.get("encoding"),
          background: !!fd.get("background"), timeout: Number(fd.get("timeout") || 30) };
        if (fd.get("unique")) body.unique = fd.get("unique");
        var payload = fd.get("payload");
        if (body.encoding === "json") {
          try { body.payload = JSON.parse(payload || "null"); } catch (e) { show("payload is not JSON: " + e.message); return; }
        } else body.payload = payload;
        document.getElementById("f-submit").disabled = true;
        show("submitting…");
        api("POST", "/jobs", body).then(function (r) {
          var lines = ["handle:  " + r.handle];
          if (r.background) lines.push("queued in the background");
          else {
            lines.push("outcome: " + r.outcome);
            if (r.result !== undefined) lines.push("result:  " + (r.result === null ? "(binary, base64) " + r.result_base64 : r.result));
          }
          show(lines.join("\n"), r.outcome || "queued");
        }, function (err) { show("error " + err.message, "error"); })
          .then(function () { document.getElementById("f-submit").disabled = false; });
      });
      function show(text, outcome) { result.hidden = false; result.textContent = text; result.setAttribute("data-outcome", outcome || ""); }
      return Promise.resolve(h("section", { id: "submit" }, h("h1", { text: "Submit a job" }), form, h("h2", { text: "Result" }), result));
    }
  };

  function filters() {
    var q = jobsQuery;
    function sel(name, options) {
      return h("select", { name: name, id: "filter-" + name, onchange: function (e) { q[name] = e.target.value; q.offset = 0; refresh(); } },
        options.map(function (o) { return h("option", { value: o, selected: q[name] === o, text: o || "any" }); }));
    }
    var fn = h("input", { id: "filter-function", value: q.function, placeholder: "any", size: 18 });
    fn.addEventListener("change", function () { q.function = fn.value.trim(); q.offset = 0; refresh(); });
    return h("div", { class: "filters" },
      h("label", null, "Function", fn), h("label", null, "State", sel("state", ["", "queued", "running"])),
      h("label", null, "Priority", sel("priority", ["", "high", "normal", "low"])),
      h("label", null, "Per page", sel("limit", ["25", "50", "100", "500"])));
  }

  function act(method, path, done) {
    api(method, path).then(function () { setStatus(done); refresh(); }, function (err) { setStatus(err.message, true); });
  }
  function setMaxqueue(name) {
    var v = window.prompt("Maxqueue for " + name + ": one number for all priorities, three for high normal low, empty for none", "");
    if (v === null) return;
    var parts = v.trim() ? v.trim().split(/[\s,]+/).map(Number) : [];
    var body = { maxqueue: parts.length === 0 ? null : parts.length === 1 ? parts[0] : parts };
    api("PUT", "/functions/" + encodeURIComponent(name), body).then(function () { setStatus("maxqueue of " + name + " set"); refresh(); },
      function (err) { setStatus(err.message, true); });
  }

  // ------------------------------------------------------------------ routing

  function route() {
    var p = location.pathname;
    if (p.indexOf("/jobs/") === 0) return { page: "job", arg: decodeURIComponent(p.slice(6)) };
    var name = p.replace(/^\//, "") || "overview";
    return pages[name] ? { page: name } : { page: "overview" };
  }

  function refresh() {
    var r = route();
    var main = document.getElementById("main");
    if (r.page === "submit" && main.querySelector("#submit-form")) return; // keep what the user typed
    if (r.page === "jobs") jobsQuery.limit = Number(jobsQuery.limit);
    document.querySelectorAll("nav a").forEach(function (a) {
      a.classList.toggle("active", a.getAttribute("data-page") === (r.page === "job" ? "jobs" : r.page));
    });
    pages[r.page](r.arg).then(function (el) {
      var focused = document.activeElement && document.activeElement.id;
      main.replaceChildren(el);
      if (focused && focused.indexOf("filter-") === 0) { var f = document.getElementById(focused); if (f) f.focus(); }
      document.title = "gearpy: " + r.page;
      if (!/^(maxqueue|dropped|cancelled)/.test(document.getElementById("status").textContent)) {
        setStatus("updated " + new Date().toLocaleTimeString());
      }
    }, function (err) { setStatus(err.message, true); });
  }

  function navigate(href) {
    history.pushState(null, "", href);
    var u = new URL(href, location.href);
    if (u.pathname === "/jobs") {
      jobsQuery.function = u.searchParams.get("function") || "";
      jobsQuery.offset = 0;
    }
    document.getElementById("main").replaceChildren(h("p", { class: "muted", text: "Loading…" }));
    refresh();
  }

  document.addEventListener("click", function (ev) {
    var a = ev.target.closest && ev.target.closest("a[data-nav]");
    if (!a || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
    ev.preventDefault();
    navigate(a.getAttribute("href"));
  });
  window.addEventListener("popstate", function () { refresh(); });

  var start = new URLSearchParams(location.search);
  if (start.get("function")) jobsQuery.function = start.get("function");
  api("GET", "/session").then(function (s) {
    session = s;
    document.getElementById("whoami").textContent = s.user + " (" + s.role + ")";
    if (s.auth) document.getElementById("logout").hidden = false;
    refresh();
    timer = setInterval(refresh, POLL_MS);
  }, function (err) { setStatus(err.message, true); });
})();
