"use strict";
// The negotiation room's page: plain DOM, no library, no build step. Every label from the
// data goes through textContent (never innerHTML), so ids such as <script> show as text.
(function () {
  const params = new URLSearchParams(window.location.search);
  const token = params.get("token") || sessionStorage.getItem("allocator-token") || "";
  if (token) {
    sessionStorage.setItem("allocator-token", token);
    // The token leaves the address bar (and the history) once the page has it.
    history.replaceState(null, "", window.location.pathname);
  }
  const $ = (id) => document.getElementById(id);
  const state = { run: null, current: null, currentName: "", edits: new Map(), busy: false };

  const KPIS = [
    ["weighted_shortfall", "Weighted shortfall (units)", 2, "low"],
    ["unmet", "Unmet workload (units)", 2, "low"],
    ["served_share", "Demand served", 1, "high", "%"],
    ["cost", "Cost", 0, "low"],
    ["fte", "FTE assigned", 1, ""],
  ];

  function fmt(x, digits) {
    if (x === null || x === undefined || Number.isNaN(x)) return "–";
    const text = Number(x).toLocaleString("en-US", {minimumFractionDigits: digits,
                                                    maximumFractionDigits: digits});
    return /^-[0.,]+$/.test(text) ? text.slice(1) : text;  // no "-0" for a solver's -1e-9
  }
  function fmtKpi(value, digits, unit) {
    if (value === null || value === undefined) return "–";
    return unit === "%" ? fmt(100 * value, digits) + "%" : fmt(value, digits);
  }
  function signed(x, digits, unit) {
    if (x === null || x === undefined) return "–";
    const shown = unit === "%" ? fmt(100 * x, digits) : fmt(x, digits);
    if (Number(shown.replace(/[,%]/g, "")) === 0) return "0" + (unit === "%" ? " pts" : "");
    return (x > 0 ? "+" : "") + shown + (unit === "%" ? " pts" : "");
  }
  function el(tag, text, attrs) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (attrs) for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") node.className = v; else node.setAttribute(k, v);
    }
    return node;
  }
  function table(node, head, rows) {
    node.replaceChildren();
    const thead = el("thead"); const tr = el("tr");
    head.forEach((h, i) => tr.appendChild(el("th", h, i ? {} : {class: "text"})));
    thead.appendChild(tr); node.appendChild(thead);
    const body = el("tbody");
    rows.forEach((cells) => {
      const row = el("tr");
      cells.forEach((c) => row.appendChild(c instanceof Node ? c : el("td", c)));
      body.appendChild(row);
    });
    node.appendChild(body);
    return body;
  }

  async function api(method, path, body) {
    const headers = {"Authorization": "Bearer " + token};
    const init = {method, headers};
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw {error: "the server cannot be reached (" + err + ")", problems: []};
    }
    const kind = response.headers.get("content-type") || "";
    if (!response.ok) {
      let payload = {error: "HTTP " + response.status, problems: []};
      if (kind.includes("json")) payload = await response.json();
      payload.status = response.status;
      throw payload;
    }
    return kind.includes("json") ? response.json() : response.blob();
  }

  function say(kind, text, problems) {
    const box = $("message");
    box.replaceChildren();
    box.className = kind;
    if (!text) return;
    box.appendChild(el("div", text));
    if (problems && problems.length) {
      const list = el("ul");
      problems.forEach((p) => list.appendChild(el("li", p)));
      box.appendChild(list);
    }
  }

  // ---- inputs --------------------------------------------------------------------------
  const LABELS = {amount: "amount", capacity_fte: "capacity (FTE)", min_fte: "min. staffing (FTE)",
                  demand: "demand (units)", min_level: "floor (share)"};
  const TARGET_ROWS = 150;

  function rowId(table, row) {
    return table === "targets" ? row.site_id + "/" + row.service_id : row[state.run.inputs[table].key[0]];
  }
  function editKey(table, id, column) { return JSON.stringify([table, id, column]); }

  function inputCell(table, row, column) {
    const id = rowId(table, row);
    const base = row[column];
    const input = el("input", null, {type: "text", inputmode: "decimal",
      "aria-label": table + " " + id + " " + column});
    input.dataset.table = table; input.dataset.id = id; input.dataset.column = column;
    input.dataset.base = base === null ? "" : String(base);
    const key = editKey(table, id, column);
    input.value = state.edits.has(key) ? state.edits.get(key).raw : input.dataset.base;
    input.classList.toggle("changed", state.edits.has(key));
    input.addEventListener("input", () => {
      const raw = input.value.trim();
      if (raw === input.dataset.base) {
        state.edits.delete(key);
      } else {
        const idValue = table === "targets" ? [row.site_id, row.service_id] : id;
        let value = raw === "" ? null : Number(raw.replace(/[,_\s]/g, ""));
        if (raw !== "" && Number.isNaN(value)) value = raw;  // the server says what is wrong
        state.edits.set(key, {raw, change: {table, id: idValue, column, value}});
      }
      input.classList.toggle("changed", state.edits.has(key));
      input.classList.remove("invalid");
      showPending();
    });
    input.addEventListener("keydown", (e) => { if (e.key === "Enter") solve(); });
    const td = el("td"); td.appendChild(input);
    return td;
  }

  function renderInputs() {
    const inputs = state.run.inputs;
    const b = inputs.budgets;
    table($("budgets-input"), ["budget", "scope", LABELS.amount],
      b.rows.map((r) => [el("td", r.budget_id, {class: "text"}), el("td", r.scope, {class: "text"}),
                         inputCell("budgets", r, "amount")]));
    const s = inputs.sites;
    table($("sites-input"), ["site", LABELS.capacity_fte, LABELS.min_fte],
      s.rows.map((r) => [el("td", r.site_id, {class: "text"}), inputCell("sites", r, "capacity_fte"),
                         inputCell("sites", r, "min_fte")]));
    renderTargets();
  }

  function renderTargets() {
    const word = $("targets-filter").value.trim().toLowerCase();
    const rows = state.run.inputs.targets.rows.filter((r) => !word ||
      String(r.site_id).toLowerCase().includes(word) || String(r.service_id).toLowerCase().includes(word));
    table($("targets-input"), ["site", "service", LABELS.demand, LABELS.min_level],
      rows.slice(0, TARGET_ROWS).map((r) => [el("td", r.site_id, {class: "text"}),
        el("td", r.service_id, {class: "text"}), inputCell("targets", r, "demand"),
        inputCell("targets", r, "min_level")]));
    $("targets-more").textContent = rows.length > TARGET_ROWS ?
      `${rows.length - TARGET_ROWS} more rows: narrow the filter` : "";
  }

  function showPending() {
    const n = state.edits.size;
    $("pending").textContent = n ? `${n} changed cell${n > 1 ? "s" : ""}` : "";
  }

  // ---- figures -------------------------------------------------------------------------
  function renderKpis() {
    const base = state.run.base.kpis;
    const cur = state.current ? state.current.kpis : null;
    $("current-name").textContent = state.current ? (state.currentName || "this what-if") : "this alternative";
    const body = $("kpi-rows"); body.replaceChildren();
    for (const [key, label, digits, good, unit] of KPIS) {
      const tr = el("tr");
      tr.appendChild(el("th", label, {class: "text"}));
      tr.appendChild(el("td", fmtKpi(base[key], digits, unit), {id: "base-kpi-" + key}));
      tr.appendChild(el("td", cur ? fmtKpi(cur[key], digits, unit) : "–", {id: "kpi-" + key}));
      const delta = cur && cur[key] !== null && base[key] !== null ? cur[key] - base[key] : null;
      const td = el("td", cur ? signed(delta, digits, unit) : "–", {id: "delta-" + key, class: "delta"});
      if (delta && good) td.classList.add((delta < 0) === (good === "low") ? "better" : "worse");
      tr.appendChild(td);
      body.appendChild(tr);
    }
  }

  function shown() { return state.current || state.run.base; }

  function renderCoverage() {
    const cov = shown().coverage;
    const sites = [...new Set(cov.map((r) => r.site_id))];
    const services = [...new Set(cov.map((r) => r.service_id))];
    const at = new Map(cov.map((r) => [JSON.stringify([r.site_id, r.service_id]), r]));
    const node = $("coverage"); node.replaceChildren();
    const head = el("tr"); head.appendChild(el("th", "site", {class: "text"}));
    services.forEach((s) => head.appendChild(el("th", s)));
    const thead = el("thead"); thead.appendChild(head); node.appendChild(thead);
    const body = el("tbody");
    for (const site of sites) {
      const tr = el("tr"); tr.dataset.site = site;
      tr.appendChild(el("td", site, {class: "text"}));
      for (const service of services) {
        const r = at.get(JSON.stringify([site, service]));
        const td = el("td", r ? fmt(100 * r.served_share, 0) + "%" : "", {class: "cell"});
        if (r) {
          td.dataset.service = service;
          td.title = `${site}, ${service}: ${fmt(r.served, 2)} of ${fmt(r.demand, 2)} units served, shortfall ${fmt(r.shortfall, 2)}`;
          const short = 1 - (r.served_share === null ? 1 : r.served_share);
          td.style.background = short > 5e-5 ? `rgba(179, 38, 30, ${Math.min(0.75, 0.15 + short)})` : "#e5f4e8";
        }
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
    node.appendChild(body);
  }

  function renderBudgets() {
    const rows = shown().budgets;
    const body = table($("budgets"), ["budget", "scope", "amount", "spent", "headroom", "use", ""],
      rows.map((r) => {
        const share = r.amount ? Math.max(0, Math.min(1, r.spent / r.amount)) : 0;
        const track = el("span", null, {class: "bartrack"});
        const bar = el("span", null, {class: "bar"}); bar.style.width = (100 * share) + "%";
        track.appendChild(bar);
        const use = el("td"); use.appendChild(track); use.appendChild(el("span", " " + fmt(100 * share, 1) + "%"));
        const button = el("button", "value curve", {class: "small curve", type: "button"});
        button.addEventListener("click", () => showCurve(r.budget_id));
        const cell = el("td"); cell.appendChild(button);
        return [el("td", r.budget_id, {class: "text"}), el("td", r.scope, {class: "text"}),
                el("td", fmt(r.amount, 0), {class: "amount"}), el("td", fmt(r.spent, 0), {class: "spent"}),
                el("td", fmt(r.headroom, 0), {class: "headroom"}), use, cell];
      }));
    [...body.children].forEach((tr, i) => { tr.dataset.id = rows[i].budget_id; });
  }

  const FAMILY = {budget: "budget", capacity: "site capacity", min_staff: "minimum staffing"};
  function renderPrices() {
    const o = shown();
    const binding = $("binding"); binding.replaceChildren();
    o.binding.forEach((b) => binding.appendChild(el("li",
      `${FAMILY[b.family] || b.family} ${b.id} is at its limit: ${fmt(b.used, b.family === "budget" ? 0 : 2)} of ${fmt(b.limit, b.family === "budget" ? 0 : 2)}`)));
    if (!o.binding.length) binding.appendChild(el("li", "No budget, capacity or minimum staffing is at its limit."));
    const list = $("prices"); list.replaceChildren();
    // The limits people negotiate first; demand rows (one per short target) after, ten a stage.
    const seen = {};
    o.prices.filter((p) => p.family !== "coverage" || (seen[p.stage] = (seen[p.stage] || 0) + 1) <= 10)
      .forEach((p) => list.appendChild(el("li", `${p.stage} stage: ${p.sentence}`)));
    $("prices-note").textContent = o.prices.some((p) => p.rhs_low !== null || p.rhs_high !== null) ?
      "Prices and the ranges where they hold, from this solve's sensitivity analysis." :
      "Prices from this solve's duals (ranges are computed for the base run).";
  }

  function renderDifference(diff) {
    const box = $("difference");
    if (!diff) { box.hidden = true; return; }
    box.hidden = false;
    $("diff-summary").textContent =
      `FTE moved: ${fmt(diff.moved_fte, 2)} · weighted shortfall ${signed(diff.kpis.weighted_shortfall, 2)}` +
      ` · unmet workload ${signed(diff.kpis.unmet, 2)} · cost ${signed(diff.kpis.cost, 0)}`;
    const tags = $("diff-binding"); tags.replaceChildren();
    diff.started_binding.forEach((b) => tags.appendChild(el("span", `now binding: ${FAMILY[b.family] || b.family} ${b.id}`, {class: "tag started"})));
    diff.stopped_binding.forEach((b) => tags.appendChild(el("span", `no longer binding: ${FAMILY[b.family] || b.family} ${b.id}`, {class: "tag stopped"})));
    if (!diff.started_binding.length && !diff.stopped_binding.length)
      tags.appendChild(el("span", "The same budgets, capacities and floors bind as in the base.", {class: "muted"}));
    table($("diff-coverage"), ["site", "service", "shortfall base", "shortfall now", "change"],
      diff.coverage.map((r) => [el("td", r.site_id, {class: "text"}), el("td", r.service_id, {class: "text"}),
        fmt(r.shortfall_a, 2), fmt(r.shortfall_b, 2),
        el("td", signed(r.shortfall_delta, 2), {class: r.shortfall_delta > 0 ? "pos" : "neg"})]));
    table($("diff-places"), ["site", "service", "FTE change"],
      diff.moves_by_site_service.map((r) => [el("td", r.site_id, {class: "text"}),
        el("td", r.service_id, {class: "text"}), signed(r.delta, 2)]));
    table($("diff-budgets"), ["budget", "amount base", "amount now", "spent base", "spent now", "headroom now"],
      diff.budgets.map((r) => [el("td", r.budget_id, {class: "text"}), fmt(r.amount_a, 0), fmt(r.amount_b, 0),
        fmt(r.spent_a, 0), fmt(r.spent_b, 0), fmt(r.headroom_b, 0)]));
    $("moves-count").textContent = diff.moves.length;
    table($("diff-moves"), ["staff", "site", "service", "FTE base", "FTE now", "change"],
      diff.moves.slice(0, 300).map((r) => [el("td", r.staff_id, {class: "text"}), el("td", r.site_id, {class: "text"}),
        el("td", r.service_id, {class: "text"}), fmt(r.fte_a, 2), fmt(r.fte_b, 2), signed(r.delta, 2)]));
  }

  function renderAlternatives(data) {
    const cols = data.alternatives;
    const node = $("alternatives"); node.replaceChildren();
    const thead = el("thead"); const head = el("tr"); head.appendChild(el("th", "", {class: "text"}));
    cols.forEach((c) => {
      const th = el("th"); th.appendChild(el("div", c.name));
      if (c.name !== "base") {
        const show = el("button", "show", {class: "small", type: "button"});
        show.addEventListener("click", () => showAlternative(c.name));
        const exp = el("button", "export", {class: "small", type: "button"});
        exp.addEventListener("click", () => exportAlternative(c.name));
        const del = el("button", "delete", {class: "small", type: "button"});
        del.addEventListener("click", () => deleteAlternative(c.name));
        th.append(show, exp, del);
      }
      head.appendChild(th);
    });
    thead.appendChild(head); node.appendChild(thead);
    const body = el("tbody");
    for (const [key, label, digits, , unit] of KPIS) {
      const tr = el("tr"); tr.appendChild(el("th", label, {class: "text"}));
      cols.forEach((c) => tr.appendChild(el("td", fmtKpi(c.kpis[key], digits, unit))));
      body.appendChild(tr);
    }
    const budgetIds = [...new Set(cols.flatMap((c) => c.budgets.map((b) => b.budget_id)))];
    for (const id of budgetIds) {
      const tr = el("tr"); tr.appendChild(el("th", `headroom ${id}`, {class: "text"}));
      cols.forEach((c) => {
        const b = c.budgets.find((x) => x.budget_id === id);
        tr.appendChild(el("td", b ? fmt(b.headroom, 0) : "–"));
      });
      body.appendChild(tr);
    }
    const binds = el("tr"); binds.appendChild(el("th", "at its limit", {class: "text"}));
    cols.forEach((c) => binds.appendChild(el("td", c.binding.map((b) =>
      `${FAMILY[b.family] || b.family} ${b.id}`).join("; ") || "nothing", {class: "text"})));
    body.appendChild(binds);
    const changes = el("tr"); changes.appendChild(el("th", "changed inputs", {class: "text"}));
    cols.forEach((c) => changes.appendChild(el("td", c.changes.map((ch) =>
      `${ch.table}[${Array.isArray(ch.id) ? ch.id.join("/") : ch.id}].${ch.column} = ${ch.value === null ? "none" : fmt(ch.value, 2)}`).join("; ") || "–", {class: "text"})));
    body.appendChild(changes);
    node.appendChild(body);
  }

  function renderAll(diff) {
    const o = shown();
    $("showing").textContent = state.current ?
      `Showing ${state.currentName || "a what-if"}: ${o.status}, ${o.how} in ${fmt(o.seconds, 2)} s` :
      `Showing the base: ${o.status} (${o.how})`;
    renderKpis(); renderCoverage(); renderBudgets(); renderPrices(); renderDifference(diff);
  }

  // ---- the value curve of a budget -------------------------------------------------------
  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }
  const STAGE_WORDS = {service: "weighted shortfall (units)", cost: "cost", stability: "FTE moved"};

  function chart(points, stage, today) {
    const W = 480, H = 250, L = 76, R = 40, T = 14, B = 40;
    const xs = points.map((p) => p.parameter), ys = points.map((p) => p.objective);
    const x0 = Math.min(...xs), x1 = Math.max(...xs);
    let y0 = Math.min(...ys), y1 = Math.max(...ys);
    if (y1 - y0 < 1e-9) { y0 -= 1; y1 += 1; }
    const X = (x) => L + (W - L - R) * (x - x0) / (x1 - x0 || 1);
    const Y = (y) => H - B - (H - T - B) * (y - y0) / (y1 - y0);
    const root = svg("svg", {viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img",
                             "aria-label": `${stage} against the budget`});
    root.appendChild(svg("line", {x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#888"}));
    root.appendChild(svg("line", {x1: L, y1: T, x2: L, y2: H - B, stroke: "#888"}));
    for (const v of [x0, (x0 + x1) / 2, x1])
      root.appendChild(svg("text", {x: X(v), y: H - B + 16, "text-anchor": "middle", "font-size": 11}, fmt(v, 0)));
    for (const v of [y0, (y0 + y1) / 2, y1])
      root.appendChild(svg("text", {x: L - 6, y: Y(v) + 4, "text-anchor": "end", "font-size": 11}, fmt(v, stage === "cost" ? 0 : 2)));
    root.appendChild(svg("text", {x: (L + W - R) / 2, y: H - 6, "text-anchor": "middle", "font-size": 11}, "budget amount"));
    root.appendChild(svg("text", {x: L + 4, y: T + 4, "font-size": 11, fill: "#5d6677"}, STAGE_WORDS[stage] || stage));
    if (today >= x0 && today <= x1)
      root.appendChild(svg("line", {x1: X(today), y1: T, x2: X(today), y2: H - B, stroke: "#b3261e", "stroke-dasharray": "4 3"}));
    root.appendChild(svg("polyline", {points: points.map((p) => `${X(p.parameter)},${Y(p.objective)}`).join(" "),
                                      fill: "none", stroke: "#1f5fbf", "stroke-width": 2}));
    for (const p of points) {
      const dot = svg("circle", {cx: X(p.parameter), cy: Y(p.objective), r: 2.5, fill: "#1f5fbf"});
      const why = [p.starts_binding && "starts binding: " + p.starts_binding,
                   p.stops_binding && "stops binding: " + p.stops_binding].filter(Boolean).join("; ");
      dot.appendChild(svg("title", {}, `${fmt(p.parameter, 0)} → ${fmt(p.objective, 4)}${why ? " (" + why + ")" : ""}`));
      root.appendChild(dot);
    }
    const box = el("div"); box.appendChild(el("h3", STAGE_WORDS[stage] || stage)); box.appendChild(root);
    return box;
  }

  async function showCurve(budget) {
    const section = $("curve-section");
    section.hidden = false;
    $("curve-budget").textContent = budget + " (computing…)";
    $("curve-readings").replaceChildren(); $("curve-charts").replaceChildren();
    try {
      const c = await api("GET", "/api/curve?budget=" + encodeURIComponent(budget));
      $("curve-budget").textContent = budget;
      const list = $("curve-readings");
      const todays = new Map(c.readings.filter((r) => r.change === 0).map((r) => [r.stage, r.objective]));
      for (const r of c.readings.filter((r) => r.change !== 0)) {
        const li = el("li");
        li.appendChild(el("span", `${r.change < 0 ? "Cut" : "Raised"} by 10% (to ${fmt(r.amount, 0)}): ${STAGE_WORDS[r.stage] || r.stage} `));
        li.appendChild(el("b", fmt(r.objective, r.stage === "cost" ? 0 : 2),
                          {id: `curve-${r.change < 0 ? "cut" : "rise"}-${r.stage}`}));
        if (todays.has(r.stage))
          li.appendChild(el("span", ` (${signed(r.objective - todays.get(r.stage), r.stage === "cost" ? 0 : 2)} against today)`));
        list.appendChild(li);
      }
      const stages = [...new Set(c.points.map((p) => p.stage))];
      for (const stage of stages)
        $("curve-charts").appendChild(chart(c.points.filter((p) => p.stage === stage), stage, c.today));
      for (const p of c.points.filter((p) => p.kind.startsWith("stopped")))
        list.appendChild(el("li", `The ${p.stage} curve stops at ${fmt(p.parameter, 0)}: the limit on pieces was reached.`));
      list.appendChild(el("li", `Computed in ${fmt(c.seconds, 2)} s (${c.points.length} breakpoints).`, {class: "muted"}));
    } catch (err) {
      $("curve-budget").textContent = budget;
      say("error", err.error || String(err), err.problems || []);
    }
  }

  // ---- actions -------------------------------------------------------------------------
  async function solve() {
    if (state.busy) return;
    const changes = [...state.edits.values()].map((e) => e.change);
    const name = $("alt-name").value.trim();
    state.busy = true; $("solve").disabled = true; $("solve").textContent = "Solving…";
    say("info", "Solving…");
    document.querySelectorAll("input.invalid").forEach((i) => i.classList.remove("invalid"));
    try {
      const answer = await api("POST", "/api/whatif", {changes, name: name || null});
      if (answer.status !== "optimal" && answer.status !== "feasible") {
        say("error", answer.status === "infeasible" ?
            "No plan can meet these inputs together (infeasible): a floor, a minimum staffing " +
            "or a budget cannot be met with the people and money there are. Keep it as an " +
            "alternative and export it: allocator solve on it says which limits conflict " +
            "and prices the repairs." :
            `No plan for these inputs: ${answer.status}.` +
            (answer.outcome.notes.length ? " " + answer.outcome.notes.join(" ") : ""));
        return;
      }
      state.current = answer.outcome; state.currentName = name;
      renderAll(answer.difference);
      say("info", `Solved (${answer.outcome.how}) in ${fmt(answer.seconds.solve, 2)} s` +
          (name ? `; kept as “${name}”.` : "."));
      if (name) { $("alt-name").value = ""; renderAlternatives(await api("GET", "/api/alternatives")); }
    } catch (err) {
      say("error", err.status === 422 ? "Some values cannot be used:" : (err.error || String(err)),
          err.problems || []);
      markInvalid(err.problems || []);
    } finally {
      state.busy = false; $("solve").disabled = false; $("solve").textContent = "Solve";
    }
  }

  function markInvalid(problems) {
    for (const input of document.querySelectorAll(".inputs input.changed")) {
      const probe = `${input.dataset.table} ${input.dataset.id}`;
      if (problems.some((p) => p.includes(probe) && p.includes(input.dataset.column)))
        input.classList.add("invalid");
    }
  }

  async function showAlternative(name) {
    try {
      const alt = await api("GET", "/api/alternatives/" + encodeURIComponent(name));
      state.current = alt.outcome; state.currentName = name;
      renderAll(alt.difference);
      say("", "");
    } catch (err) { say("error", err.error || String(err), err.problems || []); }
  }

  async function deleteAlternative(name) {
    try {
      await api("DELETE", "/api/alternatives/" + encodeURIComponent(name));
      renderAlternatives(await api("GET", "/api/alternatives"));
    } catch (err) { say("error", err.error || String(err), err.problems || []); }
  }

  async function exportAlternative(name) {
    try {
      const blob = await api("GET", "/api/alternatives/" + encodeURIComponent(name) + "/export");
      const link = el("a", null, {download: name.replace(/[^\w.-]+/g, "-") + ".zip"});
      link.href = URL.createObjectURL(blob);
      document.body.appendChild(link); link.click(); link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    } catch (err) { say("error", err.error || String(err), err.problems || []); }
  }

  function reset() {
    state.edits.clear(); state.current = null; state.currentName = "";
    renderInputs(); showPending(); renderAll(null); say("", "");
  }

  async function start() {
    $("solve").addEventListener("click", solve);
    $("reset").addEventListener("click", reset);
    $("targets-filter").addEventListener("input", renderTargets);
    try {
      state.run = await api("GET", "/api/run");
    } catch (err) {
      say("error", err.status === 401 ? "This page needs its token: open the URL the server printed (…/?token=…)."
                                      : (err.error || String(err)), err.problems || []);
      return;
    }
    $("scenario-name").textContent = "· " + state.run.name;
    document.title = "allocator · " + state.run.name;
    renderInputs(); renderAll(null);
    renderAlternatives(await api("GET", "/api/alternatives"));
    document.body.dataset.ready = "true";
  }
  start();
})();
