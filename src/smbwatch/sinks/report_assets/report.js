/* smbwatch report: draws the page from the JSON in #smbwatch-data. Every value from the
 * inputs (host, user, file and share names...) is set as text (textContent, setAttribute on
 * plain attributes, Cytoscape's canvas labels), never parsed as markup. */
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("smbwatch-data").textContent);
  const PAGE = 500; // timeline rows drawn at a time
  const GRAPH_EDGES = 80; // the most important moves (data.edges comes in that order) drawn
  const SMALL_GRAPH = 40; // hosts a layered layout still draws readably

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  function text(value) { return value === null || value === undefined ? "" : String(value); }
  function riskClass(risk) {
    return risk >= 80 ? "r80" : risk >= 50 ? "r50" : risk >= 25 ? "r25" : "r0";
  }
  function riskBadge(risk) { return el("span", { class: "risk " + riskClass(risk) }, risk); }
  function riskColor(risk) {
    return { r80: "#c0392b", r50: "#e67e22", r25: "#c9a100", r0: "#8a949e" }[riskClass(risk)];
  }
  function shortTime(time) { return text(time).replace("T", " ").replace(/\.\d+Z$/, "Z"); }
  function preciseTime(time) { return text(time).replace("T", " ").replace(/(\.\d{3})\d*Z$/, "$1Z"); }
  function base(path) { const parts = text(path).split(/[\\/]/); return parts[parts.length - 1]; }
  function row(cells, attrs) {
    return el("tr", attrs, ...cells.map((c) => (c instanceof Node && c.tagName === "TD" ? c : el("td", {}, c))));
  }
  function table(headers, rows) {
    return el("table", {}, el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h)))),
      el("tbody", {}, ...rows));
  }
  function evidence(file, ref) { return base(file) + "#" + text(ref); }
  const MOVE_NAMES = { logon: "logon", admin_write: "admin share write", service: "service created",
    task: "task created" };
  const MOVE_ORDER = Object.keys(MOVE_NAMES);
  function moves(edge) {
    return Object.entries(edge.moves).sort((a, b) => MOVE_ORDER.indexOf(a[0]) - MOVE_ORDER.indexOf(b[0]));
  }
  function what(row) {
    const target = [row.share, row.path].filter((v) => v !== null && v !== undefined).join("\\");
    return [row.code ? row.code + " " + row.what : row.what, target, row.object]
      .filter((v) => v).join(" ");
  }

  // --- header and tabs --------------------------------------------------------------------
  document.getElementById("report-meta").textContent =
    "generated " + data.generated + " by smbwatch " + data.version + " from " +
    data.inputs.length + " input(s): " + data.inputs.map((i) => base(i.path)).join(", ");
  const tabs = document.querySelectorAll("nav button");
  for (const tab of tabs) {
    tab.addEventListener("click", () => {
      for (const other of tabs) other.classList.toggle("active", other === tab);
      for (const section of document.querySelectorAll("main section")) {
        section.classList.toggle("active", section.id === tab.dataset.section);
      }
      if (tab.dataset.section === "graph" && window.smbwatchCy) window.smbwatchCy.resize();
    });
  }

  // --- summary ----------------------------------------------------------------------------
  const summary = document.getElementById("summary");
  const counts = [
    ["incidents", data.incidents_total], ["alerts", data.alerts_total],
    ["hosts", new Set(data.edges.flatMap((e) => [e.src, e.dst])).size],
    ["moves", data.edges_total], ["events", data.timeline.total], ["files", data.files.length],
  ];
  for (const [name, count] of counts) summary.append(el("div", {}, el("strong", {}, count), name));

  // --- graph ------------------------------------------------------------------------------
  const riskOf = new Map(); // "src\u0000dst" → the highest risk of the pair's incidents
  for (const incident of data.incidents) {
    const key = incident.src_host + "\u0000" + incident.dst_host;
    riskOf.set(key, Math.max(riskOf.get(key) || 0, incident.risk_score));
  }
  const hostIds = new Map();
  function hostId(name) {
    if (!hostIds.has(name)) hostIds.set(name, "h" + hostIds.size);
    return hostIds.get(name);
  }
  const elements = [];
  data.edges.forEach((edge, index) => {
    edge.risk = riskOf.get(edge.src + "\u0000" + edge.dst) || 0;
    edge.label = moves(edge).map(([k, n]) => MOVE_NAMES[k] + " " + n).join(" · ");
    if (index >= GRAPH_EDGES) return;
    const total = Object.values(edge.moves).reduce((a, b) => a + b, 0);
    const risk = edge.risk;
    const lines = moves(edge).map(([k, n]) => n + " × " + MOVE_NAMES[k]).join("\n");
    elements.push({ data: { id: "e" + index, index: index, source: hostId(edge.src),
      target: hostId(edge.dst), label: lines, color: riskColor(risk),
      width: 2 + Math.min(10, 2 * Math.log2(1 + total)) } });
  });
  if (hostIds.size > SMALL_GRAPH) {  // many hosts: the moves' counts are in the table, on a click
    for (const element of elements) element.data.label = "";
  }
  for (const [name, id] of hostIds) elements.push({ data: { id: id, label: name } });
  const detail = document.getElementById("edge-detail");
  function showEdge(index) {
    const edge = data.edges[index];
    const incidents = data.incidents.filter((i) => i.src_host === edge.src && i.dst_host === edge.dst);
    detail.replaceChildren(
      el("h2", {}, edge.src + " → " + edge.dst),
      el("div", {}, riskBadge(edge.risk), " ", edge.label),
      el("div", { class: "muted" }, shortTime(edge.first) + " – " + shortTime(edge.last)),
      el("h2", {}, "Incidents"),
      incidents.length ? el("ul", {}, ...incidents.map((i) => el("li", {}, riskBadge(i.risk_score), " ",
        i.incident_id + ": " + [...new Set(i.alerts.map((a) => a.title))].join("; ")))) :
        el("p", { class: "muted" }, "none"),
      el("h2", {}, "Events"),
      el("ul", {}, ...edge.events.map((r) => el("li", { class: "edge-event" },
        el("span", { class: "muted" }, shortTime(r.time)), " " + MOVE_NAMES[r.move] + ": " +
        [r.user, what(r), r.status].filter((v) => v).join(" · ") + " ",
        el("span", { class: "evidence" }, evidence(r.file, r.ref))))));
  }
  if (data.edges.length && typeof cytoscape === "function") {
    const cy = cytoscape({
      container: document.getElementById("cy"),
      elements: elements,
      style: [
        { selector: "node", style: { label: "data(label)", "background-color": "#34495e",
          color: "#1d232b", "font-size": 12, "text-valign": "bottom", "text-margin-y": 6,
          width: 26, height: 26 } },
        { selector: "edge", style: { width: "data(width)", "line-color": "data(color)",
          "target-arrow-color": "data(color)", "target-arrow-shape": "triangle",
          "curve-style": "bezier", label: "data(label)", "font-size": 11, color: "#3d4650",
          "text-wrap": "wrap", "text-background-color": "#fff", "text-background-opacity": 0.9,
          "text-background-padding": 3 } },
        { selector: "edge:selected", style: { "line-style": "dashed" } },
      ],
      // left to right: the breadth-first layout's rows turned into columns; many hosts in rings
      layout: hostIds.size <= SMALL_GRAPH ?
        { name: "breadthfirst", directed: true, padding: 50, spacingFactor: 1.6,
          transform: (node, position) => ({ x: position.y * 1.8, y: position.x }) } :
        { name: "concentric", padding: 30, minNodeSpacing: 20,
          concentric: (node) => node.degree(), levelWidth: () => 2 },
    });
    cy.on("tap", "edge", (event) => showEdge(event.target.data("index")));
    window.smbwatchCy = cy;
  } else {
    document.getElementById("cy").append(el("p", { class: "muted" }, "No moves between hosts."));
  }
  if (data.edges.length > GRAPH_EDGES || data.edges.length < data.edges_total) {
    const drawn = Math.min(GRAPH_EDGES, data.edges.length);
    const listed = data.edges.length < data.edges_total ?
      "the table below lists the " + data.edges.length + " first in that order." :
      "the table below lists them all.";
    document.getElementById("graph-note").append(el("div", { class: "note" }, "The graph draws the " +
      drawn + " moves that matter most of " + data.edges_total + " (the incidents' first, then " +
      "those that did more than log on, then the busiest); " + listed));
  }
  document.getElementById("moves").append(table(
    ["risk", "from", "to", "moves", "first", "last"],
    data.edges.map((edge, index) => {
      const line = row([riskBadge(edge.risk), edge.src, edge.dst, edge.label,
        el("td", { class: "time" }, shortTime(edge.first)), el("td", { class: "time" }, shortTime(edge.last))],
        { class: "move" });
      line.addEventListener("click", () => showEdge(index));
      return line;
    })));

  // --- incidents --------------------------------------------------------------------------
  const incidents = document.getElementById("incident-list");
  if (!data.incidents.length) incidents.append(el("p", { class: "muted" }, "No incidents."));
  if (data.incidents.length < data.incidents_total) {
    incidents.append(el("div", { class: "note" }, "The " + data.incidents.length +
      " incidents of highest risk of " + data.incidents_total + " are shown; smbwatch incidents lists them all."));
  }
  for (const incident of data.incidents) {
    const hosts = incident.path.length ? incident.path : [incident.src_host || "?", incident.dst_host || "?"];
    incidents.append(el("details", { class: "incident" },
      el("summary", {}, riskBadge(incident.risk_score), " ",
        el("span", { class: "path" }, hosts.map(text).join(" → ")), " ",
        el("span", { class: "muted" }, shortTime(incident.first_time) + " – " + shortTime(incident.last_time) +
          " · " + incident.count + " alert(s) · " + (incident.users.join(", ") || "no user named") +
          " · " + incident.attack.join(", ") + " · " + incident.incident_id)),
      table(["risk", "first", "alert", "message"], incident.alerts.map((a) => row([riskBadge(a.risk_score),
        el("td", { class: "time" }, shortTime(a.first_time)), a.title, a.message])))));
  }

  // --- alerts -----------------------------------------------------------------------------
  if (data.alerts.length < data.alerts_total) {
    document.getElementById("alerts-note").append(el("div", { class: "note" },
      "The " + data.alerts.length + " alerts of highest risk of " + data.alerts_total +
      " are shown; smbwatch detect -f jsonl lists them all."));
  }
  document.getElementById("alert-list").append(table(
    ["risk", "first", "rule", "from", "to", "user", "seen by", "message", "evidence"],
    data.alerts.map((a) => row([riskBadge(a.risk_score), el("td", { class: "time" }, shortTime(a.first_time)),
      a.title, a.src_host || a.src_ip, a.dst_host || a.dst_ip, a.user, (a.confirmed_by || []).join(" + "),
      a.message, el("td", { class: "evidence" }, a.evidence.map((e) => evidence(e.source_file, e.source_ref)).join(" ") +
        (a.evidence_count > a.evidence.length ? " (+" + (a.evidence_count - a.evidence.length) + ")" : ""))],
      { class: "alert" }))));

  // --- timeline ---------------------------------------------------------------------------
  const rows = data.timeline.rows;
  const hostFilter = document.getElementById("filter-host");
  const userFilter = document.getElementById("filter-user");
  const since = document.getElementById("filter-since");
  const until = document.getElementById("filter-until");
  for (const [select, values] of [
    [hostFilter, rows.flatMap((r) => [r.src, r.dst])], [userFilter, rows.map((r) => r.user)]]) {
    for (const value of [...new Set(values.filter((v) => v))].sort()) {
      select.append(el("option", { value: value }, value));
    }
  }
  if (data.timeline.sampled) {
    document.getElementById("timeline-note").append(el("div", { class: "note" },
      rows.length + " of " + data.timeline.total + " events: those the alerts name, then the other moves " +
      "(logons last), then an even sample of the rest (smbwatch timeline lists them all)."));
  }
  const body = el("tbody", {});
  const headers = ["time", "source", "from", "to", "user", "what", "status", "evidence"];
  document.getElementById("timeline-table").append(el("table", {},
    el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h)))), body));
  const more = document.getElementById("timeline-more");
  let shown = [];
  let drawn = 0;
  function drawMore() {
    const next = shown.slice(drawn, drawn + PAGE);
    for (const r of next) {
      const tags = [];
      if (r.linked) tags.push(el("span", { class: "tag" }, "linked"));
      if (r.filled && r.filled.length) tags.push(el("span", { class: "tag" }, "filled: " + r.filled.join(", ")));
      if (r.missing) tags.push(el("span", { class: "tag missing" }, "missing from log"));
      body.append(row([el("td", { class: "time" }, preciseTime(r.time)), r.source, r.src, r.dst, r.user,
        el("td", {}, what(r), ...tags), r.status, el("td", { class: "evidence" }, evidence(r.file, r.ref))],
        { class: "event" }));
    }
    drawn += next.length;
    more.hidden = drawn >= shown.length;
  }
  function applyFilters() {
    const host = hostFilter.value, user = userFilter.value;
    const from = since.value.trim(), to = until.value.trim();
    shown = rows.filter((r) => (!host || r.src === host || r.dst === host) &&
      (!user || r.user === user) && (!from || r.time >= from) && (!to || r.time.slice(0, to.length) <= to));
    body.replaceChildren();
    drawn = 0;
    drawMore();
    document.getElementById("timeline-count").textContent = shown.length + " event(s)";
  }
  if (rows.length) {
    since.placeholder = rows[0].time.slice(0, 16);
    until.placeholder = rows[rows.length - 1].time.slice(0, 16);
  }
  for (const input of [hostFilter, userFilter, since, until]) input.addEventListener("change", applyFilters);
  more.addEventListener("click", drawMore);
  applyFilters();

  // --- files ------------------------------------------------------------------------------
  function sighting(s) {
    return el("div", {}, shortTime(s.time) + " " + text(s.src) + " → " + text(s.dst) + " \\" +
      text(s.share) + "\\" + text(s.path) + " (" + text(s.direction) + (s.user ? ", " + s.user : "") +
      ") " + evidence(s.file, s.ref));
  }
  const files = data.files.map((f) => row([el("td", { class: "hash" }, f.sha256 || "(not seen whole)"),
    f.magic, f.size, f.names.join(", "), el("td", {}, ...f.sightings.map(sighting))], { class: "file" }));
  document.getElementById("file-list").append(files.length ?
    table(["sha256", "type", "bytes", "names", "where it went"], files) :
    el("p", { class: "muted" }, "No file crossed the wire whole or recognised."));

  window.smbwatchReady = performance.now();
})();
