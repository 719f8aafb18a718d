// The git exp dashboard: plain JavaScript, no build step, nothing loaded from elsewhere.
// Records may come from other people's remotes: text goes in with textContent (through el()),
// never parsed as HTML, and a value is looked up by a record's key only through own() (a
// param named "constructor" or "__proto__" is a value, not the object's machinery).
"use strict";

const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
  "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"];
const SVG_NS = "http://www.w3.org/2000/svg";
const POLL_MS = 1000;
const CURVE_POLLS = 5;
const table = { where: "", sort: "", order: "asc", deleted: false, page: 0, selected: new Set() };
let pollTimer = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  for (const child of children.flat(Infinity)) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) {
    for (const item of [].concat(value)) query.append(name, item);
  }
  const response = await fetch(path + "?" + query.toString(), { headers: { Accept: "application/json" } });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

// The value stored under `key` in `object` itself (undefined when absent), never one inherited
// from Object.prototype.
function own(object, key) {
  return object !== null && typeof object === "object" && Object.hasOwn(object, key) ? object[key] : undefined;
}

function show(...nodes) {
  const view = document.getElementById("view");
  view.replaceChildren(...nodes.flat(Infinity).filter((node) => node !== null && node !== undefined));
}

function formatValue(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") {
    if (Number.isInteger(value)) return String(value);
    return Math.abs(value) >= 1e5 || Math.abs(value) < 1e-3 ? value.toExponential(3) : String(+value.toPrecision(4));
  }
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function formatDuration(seconds) {
  if (typeof seconds !== "number") return "";
  if (seconds < 60) return seconds.toFixed(1) + "s";
  if (seconds < 3600) return Math.floor(seconds / 60) + "m" + String(Math.round(seconds % 60)).padStart(2, "0") + "s";
  return Math.floor(seconds / 3600) + "h" + String(Math.floor((seconds % 3600) / 60)).padStart(2, "0") + "m";
}

function formatWhen(iso) {
  if (typeof iso !== "string") return "";
  const date = new Date(iso);
  if (isNaN(date)) return iso;
  return date.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

function quotePath(prefix, name) {
  return /^[A-Za-z_][\w-]*$/.test(name) ? prefix + "." + name : prefix + '."' + name.replace(/["\\]/g, "\\$&") + '"';
}

function statusBadge(status) {
  return el("span", { class: "status status-" + String(status).replace(/[^a-z]/g, "") }, status);
}

function runLink(id) {
  return el("a", { class: "run-link", href: "#/run/" + encodeURIComponent(id) }, id);
}

// ---- the runs table -------------------------------------------------------------------------

async function viewRuns() {
  const filter = el("input", {
    id: "filter", type: "search", placeholder: "filter: metrics.loss < 0.5 and tags == best",
    value: table.where, spellcheck: "false",
  });
  const error = el("div", { id: "filter-error", class: "error", role: "alert" });
  const deleted = el("input", { id: "show-deleted", type: "checkbox" });
  deleted.checked = table.deleted;
  const compare = el("button", { id: "compare-button", type: "button", disabled: table.selected.size < 1 },
    "Compare selected");
  const body = el("div", { id: "runs-body" });
  const apply = () => { table.where = filter.value; table.page = 0; loadRuns(body, error, compare); };
  filter.addEventListener("keydown", (event) => { if (event.key === "Enter") apply(); });
  deleted.addEventListener("change", () => { table.deleted = deleted.checked; table.page = 0; loadRuns(body, error, compare); });
  compare.addEventListener("click", () => {
    const query = new URLSearchParams();
    for (const id of table.selected) query.append("id", id);
    location.hash = "#/compare?" + query.toString();
  });
  show(
    el("div", { class: "toolbar" },
      filter,
      el("button", { id: "filter-apply", type: "button", onclick: apply }, "Filter"),
      el("label", { class: "check" }, deleted, " show deleted"),
      compare),
    error,
    body,
  );
  await loadRuns(body, error, compare);
}

async function loadRuns(body, error, compare) {
  let data;
  try {
    data = await api("/api/runs", {
      where: table.where, sort: table.sort, order: table.order,
      deleted: table.deleted ? "1" : "0", page: String(table.page),
    });
  } catch (exc) {
    error.textContent = exc.message;
    return;
  }
  error.textContent = "";
  body.replaceChildren(runsTable(data, body, error, compare), pager(data, body, error, compare));
}

function runsTable(data, body, error, compare) {
  const columns = [
    { label: "id", key: "id", cell: (run) => runLink(run.id) },
    { label: "status", key: "status", cell: (run) => statusBadge(run.status) },
    { label: "started", key: "started_at", cell: (run) => formatWhen(run.started_at) },
    { label: "duration", key: "duration_s", cell: (run) => formatDuration(run.duration_s), num: true },
    { label: "tags", key: "tags", cell: (run) => run.tags.map((tag) => el("span", { class: "tag" }, tag)) },
    ...data.metric_columns.map((name) => ({
      label: name, key: quotePath("metrics", name), cell: (run) => formatValue(own(run.metrics, name)), num: true, group: "metric",
    })),
    ...data.params_columns.map((name) => ({
      label: name, key: quotePath("params", name), cell: (run) => formatValue(own(run.params, name)), group: "param",
    })),
    { label: "message", key: "message", cell: (run) => (run.message || "").split("\n")[0], group: "message" },
  ];
  const reload = () => loadRuns(body, error, compare);
  const head = el("tr", {}, el("th", {}, ""), columns.map((column) => {
    const arrow = table.sort === column.key ? (table.order === "desc" ? " ▼" : " ▲") : "";
    return el("th", {
      class: ["sortable", column.group || "", column.num ? "num" : ""].join(" ").trim(),
      "data-key": column.key,
      title: "sort by " + column.key,
      onclick: () => {
        if (table.sort === column.key) table.order = table.order === "asc" ? "desc" : "asc";
        else { table.sort = column.key; table.order = "asc"; }
        reload();
      },
    }, column.label, arrow);
  }));
  const rows = data.runs.map((run) => {
    const box = el("input", { type: "checkbox", class: "select", "aria-label": "select " + run.id });
    box.checked = table.selected.has(run.id);
    box.addEventListener("change", () => {
      if (box.checked) table.selected.add(run.id); else table.selected.delete(run.id);
      compare.disabled = table.selected.size < 1;
    });
    return el("tr", { class: "run-row" + (run.deleted ? " deleted" : ""), "data-id": run.id },
      el("td", {}, box),
      columns.map((column) => el("td", { class: column.num ? "num" : null }, column.cell(run))));
  });
  if (!rows.length) {
    rows.push(el("tr", {}, el("td", { colspan: columns.length + 1, class: "muted" }, "No runs match.")));
  }
  return el("div", { class: "scroll" },
    el("table", { id: "runs-table", class: "grid" }, el("thead", {}, head), el("tbody", {}, rows)));
}

function pager(data, body, error, compare) {
  const pages = Math.max(1, Math.ceil(data.total / data.page_size));
  const go = (page) => { table.page = page; loadRuns(body, error, compare); };
  return el("div", { class: "pager" },
    el("button", { id: "pager-prev", type: "button", disabled: data.page <= 0, onclick: () => go(data.page - 1) }, "‹ Newer"),
    el("span", { id: "page-info" }, `page ${data.page + 1} of ${pages} · ${data.total} run${data.total === 1 ? "" : "s"}`),
    el("button", { id: "pager-next", type: "button", disabled: data.page + 1 >= pages, onclick: () => go(data.page + 1) }, "Older ›"));
}

// ---- one run ----------------------------------------------------------------------------------

async function viewRun(id) {
  let data;
  try {
    data = await api("/api/run", { id });
  } catch (exc) {
    show(el("div", { class: "error", role: "alert" }, exc.message));
    return;
  }
  const record = data.record;
  const curves = el("div", { class: "charts", id: "charts" });
  const output = el("pre", { id: "output", class: "output" });
  const follow = data.has_output || data.status === "running";
  show(
    el("h1", {}, record.id, " ", statusBadge(data.status)),
    record.problem ? el("p", { class: "error" }, record.problem) : null,
    messageEditor(record),
    tagEditor(record),
    section("Metrics", metricsTable(record.metrics || {})),
    section("Curves", curves),
    section("Params", keyValues(Object.entries(record.params || {}))),
    section("Run", keyValues(summaryFields(record))),
    section("Output", follow ? output : el("p", { class: "muted" }, "No output.log on this machine.")),
    section("Artifacts", artifactsTable(data.artifacts)),
    section("Environment", environment(record)),
    section("Record", el("details", {}, el("summary", {}, "the whole record as JSON"),
      el("pre", { class: "json" }, JSON.stringify(record, null, 2)))),
  );
  if (data.has_metrics) loadCurves([record.id], curves);
  else curves.append(el("p", { class: "muted" }, "No metrics.jsonl on this machine."));
  // While the run goes on, its curves are redrawn every few seconds with the new points.
  const refreshCurves = data.has_metrics || data.status === "running" ? () => loadCurves([record.id], curves) : null;
  if (follow) followOutput(record.id, output, refreshCurves);
}

function section(title, ...content) {
  return el("section", { class: "card" }, el("h2", {}, title), content);
}

function keyValues(pairs) {
  if (!pairs.length) return el("p", { class: "muted" }, "none");
  return el("table", { class: "kv" }, el("tbody", {}, pairs.map(([key, value]) =>
    el("tr", {}, el("th", {}, key), el("td", {}, value instanceof Node ? value : formatValue(value))))));
}

function summaryFields(record) {
  const host = record.host || {};
  const python = record.python || {};
  const git = record.git || {};
  return [
    ["command", Array.isArray(record.command) ? record.command.join(" ") : record.command],
    ["commit", record.commit],
    ["parent", git.head ? git.head + (git.branch ? " (" + git.branch + ")" : "") : null],
    ["started", formatWhen(record.started_at)],
    ["ended", formatWhen(record.ended_at)],
    ["duration", formatDuration(record.duration_s)],
    ["exit code", record.exit_code],
    ["error", record.error ? (record.error.type || "") + ": " + (record.error.message || "") : null],
    ["host", [host.hostname, host.user, host.platform].filter(Boolean).join(" · ")],
    ["python", python.version],
    ["rerun of", record.rerun_of],
  ].filter(([, value]) => value !== null && value !== undefined && value !== "");
}

function metricsTable(metrics) {
  const names = Object.keys(metrics);
  if (!names.length) return el("p", { class: "muted" }, "none");
  const stats = ["last", "min", "max", "count", "step"];
  return el("table", { class: "grid" },
    el("thead", {}, el("tr", {}, el("th", {}, "metric"), stats.map((stat) => el("th", { class: "num" }, stat)))),
    el("tbody", {}, names.map((name) => el("tr", {}, el("th", {}, name),
      stats.map((stat) => el("td", { class: "num" }, formatValue(own(own(metrics, name), stat))))))));
}

function artifactsTable(artifacts) {
  if (!artifacts.length) return el("p", { class: "muted" }, "none");
  return el("table", { class: "grid" },
    el("thead", {}, el("tr", {}, ["name", "path", "size", "state"].map((h) => el("th", {}, h)))),
    el("tbody", {}, artifacts.map((a) => el("tr", {},
      el("td", {}, a.name), el("td", {}, a.path), el("td", { class: "num" }, formatValue(a.size)),
      el("td", { class: "state-" + a.state }, a.state)))));
}

function environment(record) {
  const packages = Object.entries(record.packages || {});
  const gpus = Array.isArray(record.gpus) ? record.gpus : [];
  const python = record.python || {};
  const env = Object.entries(record.env || {});
  return el("div", {},
    keyValues([["python", [python.implementation, python.version].filter(Boolean).join(" ")],
      ["executable", python.executable], ["cpus", (record.host || {}).cpu_count],
      ["memory", (record.host || {}).memory_bytes]].filter(([, v]) => v !== undefined && v !== "")),
    el("h3", {}, "Packages"), keyValues(packages),
    env.length ? [el("h3", {}, "Variables"), keyValues(env)] : null,
    gpus.length ? [el("h3", {}, "GPUs"), keyValues(gpus.map((gpu, i) => [String(i), gpu.name || JSON.stringify(gpu)]))] : null);
}

function messageEditor(record) {
  const input = el("textarea", { id: "message-input", rows: "2", placeholder: "a message for this run" });
  input.value = record.message || "";
  const status = el("span", { id: "message-status", class: "muted", role: "status" });
  const save = async () => {
    try {
      await post("/api/message", { id: record.id, message: input.value });
      status.className = "muted";
      status.textContent = "saved";
    } catch (exc) {
      status.className = "error";
      status.textContent = exc.message;
    }
  };
  return el("div", { class: "editor" }, input,
    el("button", { id: "message-save", type: "button", onclick: save }, "Save message"), status);
}

function tagEditor(record) {
  const chips = el("span", { id: "tags" });
  const error = el("span", { id: "tag-error", class: "error", role: "alert" });
  const input = el("input", { id: "tag-input", type: "text", placeholder: "new tag", size: "14" });
  const change = async (body) => {
    try {
      const row = await post("/api/tags", Object.assign({ id: record.id }, body));
      error.textContent = "";
      render(row.tags);
    } catch (exc) {
      error.textContent = exc.message;
    }
  };
  const render = (tags) => chips.replaceChildren(...tags.map((tag) => el("span", { class: "tag tag-chip", "data-tag": tag },
    tag, el("button", { type: "button", class: "remove", title: "remove tag " + tag, onclick: () => change({ remove: [tag] }) }, "×"))));
  const add = () => { if (input.value.trim()) { change({ add: [input.value.trim()] }); input.value = ""; } };
  input.addEventListener("keydown", (event) => { if (event.key === "Enter") add(); });
  render(record.tags || []);
  return el("div", { class: "editor" }, el("strong", {}, "Tags "), chips, input,
    el("button", { id: "tag-add", type: "button", onclick: add }, "Add tag"), error);
}

async function followOutput(id, output, refreshCurves) {
  let offset = null;
  let polls = 0;
  const poll = async () => {
    if (!document.body.contains(output)) return;
    let data;
    try {
      data = await api("/api/output", offset === null ? { id } : { id, offset: String(offset) });
    } catch (exc) {
      output.textContent += "\n[" + exc.message + "]";
      return;
    }
    const atBottom = output.scrollTop + output.clientHeight >= output.scrollHeight - 4;
    if (offset === null && data.start > 0) output.textContent = "[… " + data.start + " earlier bytes]\n";
    output.textContent += data.text;
    offset = data.offset;
    if (atBottom) output.scrollTop = output.scrollHeight;
    output.dataset.status = data.status;
    polls += 1;
    if (refreshCurves && polls > 1 && (polls % CURVE_POLLS === 0 || data.status !== "running")) refreshCurves();
    if (data.status === "running" || data.offset < data.size) pollTimer = setTimeout(poll, data.offset < data.size ? 0 : POLL_MS);
  };
  await poll();
}

// ---- curves (SVG drawn here) ------------------------------------------------------------------

async function loadCurves(ids, container) {
  let data;
  try {
    data = await api("/api/metrics", { id: ids });
  } catch (exc) {
    container.replaceChildren(el("p", { class: "error" }, exc.message));
    return;
  }
  const names = [];
  for (const run of data.runs) for (const name of Object.keys(run.curves)) if (!names.includes(name)) names.push(name);
  if (!names.length) {
    container.replaceChildren(el("p", { class: "muted" }, "No numeric metrics logged."));
    return;
  }
  container.replaceChildren(...names.map((name) => chart(name, data.runs
    .map((run, i) => ({ label: run.id, colour: COLOURS[i % COLOURS.length], points: own(run.curves, name) || [] }))
    .filter((line) => line.points.some((p) => p[1] !== null)), data.runs.length > 1)));
}

function niceTicks(low, high, count) {
  if (low === high) { low -= 1; high += 1; }
  const step0 = (high - low) / count;
  const magnitude = Math.pow(10, Math.floor(Math.log10(step0)));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= step0);
  const ticks = [];
  for (let t = Math.ceil(low / step) * step; t <= high + step * 1e-9; t += step) ticks.push(+t.toPrecision(12));
  return { low, high, ticks };
}

function chart(name, lines, legend) {
  const width = 460, height = 240, left = 56, right = 12, top = 12, bottom = 30;
  const xs = lines.flatMap((line) => line.points.map((p) => p[0]));
  const ys = lines.flatMap((line) => line.points.map((p) => p[1]).filter((y) => y !== null));
  const xr = niceTicks(Math.min(...xs), Math.max(...xs), 5);
  const ypad = (Math.max(...ys) - Math.min(...ys)) * 0.05;
  const yr = niceTicks(Math.min(...ys) - ypad, Math.max(...ys) + ypad, 4);
  const px = (x) => left + ((x - xr.low) / (xr.high - xr.low)) * (width - left - right);
  const py = (y) => height - bottom - ((y - yr.low) / (yr.high - yr.low)) * (height - top - bottom);
  const grid = [
    ...yr.ticks.map((t) => [svg("line", { x1: left, x2: width - right, y1: py(t), y2: py(t), class: "gridline" }),
      svg("text", { x: left - 6, y: py(t) + 4, "text-anchor": "end" }, formatValue(t))]),
    ...xr.ticks.map((t) => svg("text", { x: px(t), y: height - bottom + 16, "text-anchor": "middle" }, formatValue(t))),
  ];
  const paths = lines.map((line) => {
    // A null value (NaN, infinity or null in metrics.jsonl) is a gap: the next point moves.
    let gap = true;
    const d = line.points.map((p) => {
      if (p[1] === null) { gap = true; return ""; }
      const move = gap ? "M" : "L";
      gap = false;
      return move + px(p[0]).toFixed(1) + " " + py(p[1]).toFixed(1);
    }).join(" ");
    const path = svg("path", { d, fill: "none", stroke: line.colour, "stroke-width": "1.8" });
    path.append(svg("title", {}, line.label));
    if (line.points.length === 1) return svg("circle", { cx: px(line.points[0][0]), cy: py(line.points[0][1]), r: 3, fill: line.colour });
    return path;
  });
  const plot = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "plot", role: "img", "aria-label": name },
    grid, svg("rect", { x: left, y: top, width: width - left - right, height: height - top - bottom, class: "frame" }),
    paths, svg("text", { x: (left + width - right) / 2, y: height - 2, "text-anchor": "middle", class: "axis" }, "step"));
  return el("figure", { class: "chart", "data-metric": name }, el("figcaption", {}, name), plot,
    legend ? el("div", { class: "legend" }, lines.map((line) =>
      el("span", { class: "key" }, el("span", { class: "swatch", style: null, "data-colour": line.colour }), line.label))) : null);
}

// ---- compare ----------------------------------------------------------------------------------

async function viewCompare(ids) {
  let data;
  try {
    data = await api("/api/compare", { id: ids });
  } catch (exc) {
    show(el("div", { class: "error", role: "alert" }, exc.message));
    return;
  }
  const curves = el("div", { class: "charts", id: "charts" });
  const columns = data.columns;
  const rows = data.rows;
  const colourOf = new Map(rows.map((row, i) => [row.id, COLOURS[i % COLOURS.length]]));
  show(
    el("h1", {}, "Compare ", String(rows.length), " runs"),
    section("Params and metrics that differ", el("div", { class: "scroll" }, el("table", { class: "grid", id: "compare-table" },
      el("thead", {}, el("tr", {}, columns.map((column) => el("th", {}, column)))),
      el("tbody", {}, rows.map((row) => el("tr", {}, columns.map((column) => el("td", {},
        column === "id" ? [el("span", { class: "swatch", "data-colour": colourOf.get(row.id) }), runLink(row.id)]
          : column === "status" ? statusBadge(row.status) : formatValue(own(row, column)))))))))),
    section("Curves", curves),
  );
  colourSwatches();
  await loadCurves(rows.map((row) => row.id), curves);
  colourSwatches();
}

function colourSwatches() {
  // The page's CSP forbids inline style attributes; colours are set through the CSSOM instead.
  for (const swatch of document.querySelectorAll(".swatch[data-colour]")) swatch.style.background = swatch.dataset.colour;
}

// ---- routing ----------------------------------------------------------------------------------

async function route() {
  clearTimeout(pollTimer);
  const hash = location.hash || "#/";
  if (hash.startsWith("#/run/")) await viewRun(decodeURIComponent(hash.slice(6)));
  else if (hash.startsWith("#/compare")) await viewCompare(new URLSearchParams(hash.split("?")[1] || "").getAll("id"));
  else await viewRuns();
  colourSwatches();
  document.body.dataset.ready = hash;
}

window.addEventListener("hashchange", route);
route();
