// The node page's script: plain JavaScript, no build step, nothing loaded from elsewhere.
// It polls the daemon's read-only JSON (kubelet_py/server/page/__init__.py) and puts what it got
// into the page as TEXT only (textContent and SVG text nodes, never as markup), so a pod label or a
// log line holding markup shows that markup as characters. The daemon computes every cell
// (model.py); this script knows how to draw a table, a log and boxes, not what a pod is.
"use strict";
(function () {
  const POLL_MS = 2000;
  const LOG_EVERY = 5;  // polls: the log tails every 10 s (the daemon reads a log's files whole)
  const SVG_NS = "http://www.w3.org/2000/svg";
  const LINE = 16, PAD = 8;
  const $ = (id) => document.getElementById(id);

  // an element holding text (never markup)
  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }

  async function getJSON(url) {
    const r = await fetch(url, {cache: "no-store", headers: {Accept: "application/json"}});
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    if (!r.ok) {
      const err = new Error((body && body.message) || (r.status + " " + r.statusText));
      err.status = r.status;
      throw err;
    }
    return body;
  }

  function showError(message) {
    const e = $("error");
    e.textContent = message || "";
    e.hidden = !message;
  }

  // the selected pod is in the address: #pod/NAMESPACE/NAME
  function selected() {
    const m = /^#pod\/([^/]+)\/([^/]+)$/.exec(location.hash);
    return m ? {ns: decodeURIComponent(m[1]), name: decodeURIComponent(m[2])} : null;
  }
  function podHash(ns, name) { return "#pod/" + encodeURIComponent(ns) + "/" + encodeURIComponent(name); }
  function podURL(sel, rest) {
    return "page/api/pods/" + encodeURIComponent(sel.ns) + "/" + encodeURIComponent(sel.name) + (rest || "");
  }

  // ---- the pods list ----------------------------------------------------------------------------
  function renderPods(data) {
    $("node").textContent = data.node ? "node " + data.node : "";
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    const sel = selected();
    const rows = data.pods.map((p) => {
      const tr = el("tr", null, p.health);
      tr.dataset.namespace = p.namespace;
      tr.dataset.name = p.name;
      if (sel && sel.ns === p.namespace && sel.name === p.name) tr.classList.add("selected");
      const name = el("td");
      const a = el("a", p.name);
      a.href = podHash(p.namespace, p.name);
      name.append(a);
      tr.append(el("td", p.namespace), name, el("td", p.ready), el("td", p.status, "status"),
                el("td", p.restarts), el("td", p.ip), el("td", p.age));
      tr.addEventListener("click", () => { location.hash = podHash(p.namespace, p.name); });
      return tr;
    });
    document.querySelector("#pods tbody").replaceChildren(...rows);
    $("empty").hidden = rows.length > 0;
  }

  // ---- one pod ----------------------------------------------------------------------------------
  function cells(values) {
    const tr = el("tr");
    for (const v of values) tr.append(el("td", v));
    return tr;
  }

  function pairs(list) {
    return list.length ? list.map(([k, v]) => k + "=" + v).join("\n") : "<none>";
  }

  function renderDetail(sel, d) {
    $("detail-missing").hidden = true;
    const p = d.pod;
    const summary = [["Status", p.status], ["Phase", p.phase], ["Ready", p.ready], ["Restarts", p.restarts],
                     ["IP", p.ip || "<none>"], ["Node", p.node || "<none>"], ["Host IP", d.hostIP || "<none>"],
                     ["QoS", d.qos || "<none>"], ["Age", p.age],
                     ["Conditions", d.conditions.map(([t, s]) => t + "=" + s).join(", ") || "<none>"],
                     ["Labels", pairs(d.labels)], ["Annotations", pairs(d.annotations)]];
    if (d.message) summary.push(["Message", d.message]);
    const dl = [];
    for (const [k, v] of summary) {
      const dd = el("dd", v);
      if (k === "Status") dd.className = p.health;
      dl.push(el("dt", k), dd);
    }
    $("summary").replaceChildren(...dl);
    document.querySelector("#containers tbody").replaceChildren(...d.containers.map(
      (c) => cells([c.name, c.kind, c.image, c.ready ? "yes" : "no", c.restarts, c.state, c.last])));
    document.querySelector("#events tbody").replaceChildren(...d.events.map((e) => {
      const tr = cells([e.type, e.reason, e.count > 1 ? e.age + " (x" + e.count + " over " + e.first + ")" : e.age,
                        e.count, e.from, e.message]);
      tr.className = e.type;
      tr.firstChild.className = "type";
      return tr;
    }));
    $("no-events").hidden = d.events.length > 0;
    if (d.logs !== null) renderLogs(d.logs);
    $("detail").dataset.loaded = sel.ns + "/" + sel.name;
  }

  function renderLogs(list) {
    const logs = list.map((l) => {
      const box = el("div", null, "log");
      box.dataset.container = l.container;
      box.append(el("h4", l.container + (l.previous ? " (previous attempt: the current one has not started)" : "")));
      box.append(l.error ? el("p", l.error, "error") : el("pre", l.text || "(empty)"));
      return box;
    });
    if (!logs.length) logs.push(el("p", "No container has started yet.", "muted"));
    $("logs").replaceChildren(...logs);
  }

  function clearDetail() {
    for (const id of ["summary", "logs", "picture", "problems"]) $(id).replaceChildren();
    for (const t of ["#containers tbody", "#events tbody"]) document.querySelector(t).replaceChildren();
    $("inspect-text").textContent = "";
    delete $("detail").dataset.loaded;
    delete $("picture").dataset.drawn;
  }

  // ---- the inspect picture: boxes and arrows laid out by the daemon -------------------------------
  function draw(pic) {
    const root = svg("svg", {viewBox: "0 0 " + pic.width + " " + pic.height, width: pic.width, height: pic.height,
                             role: "img", "aria-label": "the kernel objects behind the pod"});
    const marker = svg("marker", {id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7,
                                  markerHeight: 7, orient: "auto-start-reverse"});
    marker.append(svg("path", {d: "M 0 0 L 10 5 L 0 10 z"}));
    const defs = svg("defs");
    defs.append(marker);
    root.append(defs);
    for (const b of pic.boxes) {
      const g = svg("g", {"class": "box " + b.kind + (b.problem ? " problem" : "")});
      g.dataset.id = b.id;
      g.append(svg("title", {}, b.title));
      g.append(svg("rect", {x: b.x, y: b.y, width: b.w, height: b.h}));
      const top = b.y + PAD + 12;
      g.append(svg("text", {x: b.x + PAD, y: top, "class": "head"}, b.head));
      if (b.owner) {
        g.append(svg("text", {x: b.x + b.w - PAD, y: top + LINE * (b.owner_row || 0), "text-anchor": "end",
                              "class": "owner"}, b.owner));
      }
      b.lines.forEach((line, i) => {
        g.append(svg("text", {x: b.x + PAD, y: top + LINE * (i + 1), "class": line.startsWith("!! ") ? "problem" : ""},
                     line));
      });
      root.append(g);
    }
    for (const l of pic.links) {
      const pts = l.points;
      root.append(svg("polyline", {points: pts.map((p) => p.join(",")).join(" "), "marker-end": "url(#arrow)",
                                   "class": "link" + (l.problem ? " problem" : "")}));
      if (l.label) {
        const a = pts[0], z = pts[pts.length - 1];
        root.append(svg("text", {x: (a[0] + z[0]) / 2, y: Math.min(a[1], z[1]) - 4, "text-anchor": "middle",
                                 "class": "label"}, l.label));
      }
    }
    return root;
  }

  let drawing = 0;
  async function loadPicture(sel) {
    const mine = ++drawing;
    $("picture").replaceChildren(el("p", "reading the kernel\u2026", "muted"));
    try {
      const r = await getJSON(podURL(sel, "/inspect"));
      if (mine !== drawing) return;
      $("picture").replaceChildren(draw(r.picture));
      $("problems").replaceChildren(...r.problems.map((p) => el("li", p)));
      $("inspect-text").textContent = r.text;
      $("picture").dataset.drawn = sel.ns + "/" + sel.name;
    } catch (e) {
      if (mine === drawing) $("picture").replaceChildren(el("p", "inspect: " + e.message, "error"));
    }
  }

  // ---- the listener's token (serve --token-file), kept in its cookie for this browser session ------
  const TOKEN_COOKIE = "kubelet_py_token";
  function askToken(e) {
    const why = e.status === 401 ? "This node's listener asks for its bearer token (the text of serve --token-file)."
                                 : "The node page is served only with serve --token-file: " + e.message;
    $("login-why").textContent = why;
    $("login").hidden = false;
    $("token").disabled = e.status !== 401;
  }
  $("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const token = $("token").value.trim();
    if (!/^[\x21-\x7e]+$/.test(token) || /[;,"\\]/.test(token)) {
      $("login-error").textContent = "a token is one word of printable ASCII, without ; , \" or \\";
      return;
    }
    document.cookie = TOKEN_COOKIE + "=" + token + "; path=/; SameSite=Strict";
    $("token").value = "";
    $("login-error").textContent = "";
    refresh();
  });

  // ---- the loop ---------------------------------------------------------------------------------
  async function refresh() {
    try {
      renderPods(await getJSON("page/api/pods"));
      showError("");
      $("login").hidden = true;
    } catch (e) {
      if (e.status === 401 || e.status === 403) {
        askToken(e);
        return;
      }
      showError("the node does not answer: " + e.message);
    }
    const sel = selected();
    if (!sel) return;
    try {
      const d = await getJSON(podURL(sel, detailPolls++ % LOG_EVERY === 0 ? "" : "?logs=0"));
      if (JSON.stringify(selected()) === JSON.stringify(sel)) renderDetail(sel, d);
    } catch (e) {
      $("detail-missing").textContent = e.status === 404 ? "pod " + sel.ns + "/" + sel.name + " is not on this node"
                                                         : "pod " + sel.ns + "/" + sel.name + ": " + e.message;
      $("detail-missing").hidden = false;
    }
  }

  let detailPolls = 0;

  async function loop() {
    await refresh();
    setTimeout(loop, POLL_MS);
  }

  function route() {
    const sel = selected();
    $("detail").hidden = !sel;
    clearDetail();
    for (const tr of document.querySelectorAll("#pods tbody tr")) {
      tr.classList.toggle("selected", !!sel && tr.dataset.namespace === sel.ns && tr.dataset.name === sel.name);
    }
    if (!sel) return;
    detailPolls = 0;
    $("detail-title").textContent = "pod " + sel.ns + "/" + sel.name;
    refresh();
    loadPicture(sel);
  }

  window.addEventListener("hashchange", route);
  $("redraw").addEventListener("click", () => { const sel = selected(); if (sel) loadPicture(sel); });
  route();
  loop();
})();
