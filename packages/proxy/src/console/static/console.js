// The Cloudstate console: plain JS against /console/api (no framework, no build step).
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const state = { services: [], selected: null };

  function token() {
    return sessionStorage.getItem("cloudstate-console-token");
  }

  async function api(path, init = {}) {
    const headers = { ...(init.headers || {}) };
    const t = token();
    if (t) headers.authorization = `Bearer ${t}`;
    const res = await fetch(`/console/api${path}`, { ...init, headers });
    if (res.status === 401) {
      const given = prompt("This console needs its bearer token (--console-token):");
      if (given) {
        sessionStorage.setItem("cloudstate-console-token", given);
        return api(path, init);
      }
    }
    const body = await res.json();
    if (!res.ok) throw new Error(body.error ? `${body.error.code}: ${body.error.message}` : `HTTP ${res.status}`);
    return body;
  }

  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  }

  function status(text) {
    $("status").textContent = text;
  }

  async function loadServices() {
    const { services, serviceInfo } = await api("/services");
    state.services = services;
    $("service-info").textContent = `${serviceInfo.serviceName} ${serviceInfo.serviceVersion} · ${serviceInfo.supportLibraryName} ${serviceInfo.supportLibraryVersion}`;
    const list = $("services");
    list.replaceChildren();
    const select = $("entity-service");
    select.replaceChildren();
    for (const s of services) {
      const box = el("div", { class: "service" },
        el("strong", {}, s.name), " ", el("span", { class: "kind" }, s.kind),
        el("div", { class: "meta" }, `${s.entityType}`, el("br"), s.kind === "action" ? "" : `persistence id "${s.persistenceId}"`));
      for (const m of s.methods) {
        const streamed = m.clientStreaming || m.serverStreaming;
        box.append(el("button", {
          class: "method", type: "button", "data-method": `${s.name}/${m.name}`,
          title: `${m.input} → ${m.output}${streamed ? " (streamed: not callable here)" : ""}`,
          onclick: () => selectMethod(s, m),
        }, `${m.name}${streamed ? " ⇶" : ""}`));
      }
      list.append(box);
      if (s.kind !== "action") select.append(el("option", { value: s.name }, s.name));
    }
    if (select.options.length > 0) loadEntities();
  }

  function selectMethod(s, m) {
    state.selected = { service: s.name, method: m.name };
    for (const b of document.querySelectorAll(".method")) b.classList.toggle("selected", b.dataset.method === `${s.name}/${m.name}`);
    $("call-target").textContent = `${s.name}/${m.name} (${m.input} → ${m.output})`;
    $("call-body").value = JSON.stringify(m.example, null, 2);
    $("call-submit").disabled = m.clientStreaming || m.serverStreaming;
    $("call-reply").textContent = "";
    $("call-ms").textContent = "";
  }

  async function submitCall(event) {
    event.preventDefault();
    if (!state.selected) return;
    const out = $("call-reply");
    out.classList.remove("error");
    let body;
    try {
      body = JSON.parse($("call-body").value || "{}");
    } catch (e) {
      out.classList.add("error");
      out.textContent = `not JSON: ${e.message}`;
      return;
    }
    try {
      const r = await api("/call", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ...state.selected, body }) });
      $("call-ms").textContent = `${r.ms.toFixed(1)} ms`;
      if (r.error) {
        out.classList.add("error");
        out.textContent = `${r.error.code}: ${r.error.message}`;
      } else {
        out.textContent = JSON.stringify(r.reply, null, 2);
      }
      out.dataset.done = String(Date.now());
      if (state.selected.service === $("entity-service").value) loadEntities();
    } catch (e) {
      out.classList.add("error");
      out.textContent = e.message;
    }
  }

  async function loadEntities() {
    const service = $("entity-service").value;
    if (!service) return;
    const { ids, active } = await api(`/entities?service=${encodeURIComponent(service)}`);
    const live = new Set(active);
    const list = $("entities");
    list.replaceChildren();
    for (const id of ids) {
      list.append(el("li", {},
        el("a", { "data-entity": id, onclick: () => showEntity(service, id) }, id),
        live.has(id) ? el("span", { class: "active" }, " ● active") : ""));
    }
    if (ids.length === 0) list.append(el("li", {}, "(none yet)"));
  }

  function payloadCell(p) {
    if (p.json !== undefined) return el("pre", {}, JSON.stringify(p.json, null, 2));
    return el("pre", {}, `${p.typeUrl}\n${p.bytes} (base64)`);
  }

  async function showEntity(service, id) {
    const view = $("entity-view");
    $("entity-title").textContent = `${service} / ${id}`;
    try {
      const e = await api(`/entity?service=${encodeURIComponent(service)}&id=${encodeURIComponent(id)}`);
      view.replaceChildren();
      if (e.kind === "eventSourced") {
        const table = el("table", { id: "journal" }, el("tr", {}, el("th", {}, "#"), el("th", {}, "type"), el("th", {}, "event")));
        for (const ev of e.events) {
          table.append(el("tr", { class: "event" }, el("td", {}, String(ev.sequence)), el("td", {}, ev.type || ev.typeUrl), el("td", {}, payloadCell(ev))));
        }
        view.append(el("h3", {}, `Journal (${e.events.length} events)`), table);
        view.append(el("h3", {}, e.snapshot ? `Snapshot at #${e.snapshot.sequence} (${e.snapshot.type || e.snapshot.typeUrl})` : "No snapshot"));
        if (e.snapshot) view.append(payloadCell(e.snapshot));
      } else if (e.kind === "value") {
        view.append(el("h3", {}, `Value (version ${e.version}${e.value ? `, ${e.value.type || e.value.typeUrl}` : ""})`), e.value ? payloadCell(e.value) : "(no state)");
      } else {
        view.append(el("h3", {}, `CRDT state (version ${e.version})`), e.state ? payloadCell(e.state) : "(no state)");
      }
    } catch (err) {
      view.replaceChildren(el("pre", { class: "error" }, err.message));
    }
  }

  function drawChart(canvas, series, colors) {
    const ctx = canvas.getContext("2d");
    const w = canvas.width, h = canvas.height, pad = 18;
    ctx.clearRect(0, 0, w, h);
    const max = Math.max(1, ...series.flat());
    ctx.fillStyle = "#667";
    ctx.font = "10px sans-serif";
    ctx.fillText(max.toFixed(max < 10 ? 1 : 0), 2, 10);
    ctx.fillText("0", 2, h - 2);
    ctx.strokeStyle = "#eee";
    ctx.beginPath();
    ctx.moveTo(pad, h - pad / 2);
    ctx.lineTo(w, h - pad / 2);
    ctx.stroke();
    series.forEach((points, k) => {
      ctx.strokeStyle = colors[k];
      ctx.setLineDash(k === 0 ? [] : [4, 3]);
      ctx.beginPath();
      points.forEach((v, i) => {
        const x = pad + (i / Math.max(1, points.length - 1)) * (w - pad - 2);
        const y = h - pad / 2 - (v / max) * (h - pad);
        if (i === 0) ctx.moveTo(x, y);
        else ctx.lineTo(x, y);
      });
      ctx.stroke();
    });
    ctx.setLineDash([]);
  }

  async function refreshCharts() {
    try {
      const { seconds } = await api("/stats");
      drawChart($("chart-throughput"), [seconds.map((s) => s.count), seconds.map((s) => s.errors)], ["#1f5fa8", "#c33"]);
      drawChart($("chart-latency"), [seconds.map((s) => s.avgMs), seconds.map((s) => s.maxMs)], ["#2a8a3a", "#999"]);
      status("");
    } catch (e) {
      status(e.message);
    }
  }

  // Eventing and dead letters: re-rendered only when they changed, so that a button does not move under the pointer.
  const shown = { eventing: "", deadLetters: "" };
  let eventingBusy = false;

  function cells(row, values) {
    for (const v of values) row.append(v instanceof Node ? el("td", {}, v) : el("td", {}, String(v)));
    return row;
  }

  function renderEventing(e) {
    const key = JSON.stringify(e);
    if (key === shown.eventing) return;
    shown.eventing = key;
    const any = e.consumers.length > 0 || e.topics.length > 0;
    $("eventing-none").hidden = any;
    $("eventing-view").hidden = !any;
    $("eventing-broker").textContent = e.broker ? `(broker: ${e.broker})` : "";
    const consumers = $("consumers").tBodies[0];
    consumers.replaceChildren();
    for (const c of e.consumers) {
      consumers.append(cells(el("tr", { class: "consumer", "data-source": c.source }), [
        `${c.source} → ${c.service}`,
        c.group,
        `${c.committed} / ${c.head}`,
        el("span", { class: c.lag > 0 ? "lag" : "" }, String(c.lag)),
        c.inFlight,
        c.delivered,
        el("span", { class: c.deadLetters > 0 ? "dead" : "" }, String(c.deadLetters)),
        el("span", { class: c.active ? "active" : "meta" }, c.active ? "● active" : "standby"),
      ]));
    }
    if (e.consumers.length === 0) consumers.append(el("tr", {}, el("td", { colspan: "8" }, "(no consumers)")));
    const topics = $("topics").tBodies[0];
    topics.replaceChildren();
    for (const t of e.topics) topics.append(cells(el("tr", { class: "topic", "data-topic": t.topic }), [t.topic, t.messages, t.head]));
    if (e.topics.length === 0) topics.append(el("tr", {}, el("td", { colspan: "3" }, "(no topics)")));
  }

  function deadLetterData(d) {
    if (d.dataFormat === "text") return el("pre", {}, d.data);
    if (d.dataFormat === "base64") return el("pre", {}, `${d.data.base64} (base64, ${d.contentType})`);
    return el("pre", {}, JSON.stringify(d.data, null, 2));
  }

  function renderDeadLetters({ count, deadLetters }, eventing) {
    const key = JSON.stringify([count, deadLetters.map((d) => d.id)]);
    // No eventing and nothing set aside: nothing to show.
    $("dead-letters-panel").hidden = count === 0 && !eventing;
    if (key === shown.deadLetters) return;
    shown.deadLetters = key;
    $("dead-letters-count").textContent = count > deadLetters.length ? `(${count}, the newest ${deadLetters.length} shown)` : `(${count})`;
    const body = $("dead-letters").tBodies[0];
    body.replaceChildren();
    for (const d of deadLetters) {
      const dismiss = el("button", { type: "button", class: "dismiss", "data-dead-letter": String(d.id), title: "delete this dead letter (you dealt with it)", onclick: () => dismissDeadLetter(d.id, dismiss) }, "dismiss");
      body.append(cells(el("tr", { class: "dead-letter", "data-id": String(d.id) }), [
        new Date(d.time).toLocaleString(),
        d.source,
        d.group,
        d.offset,
        el("span", { title: d.contentType }, d.type),
        d.subject || "—",
        d.attempts,
        el("span", { class: "error-text" }, d.error),
        deadLetterData(d),
        dismiss,
      ]));
    }
    if (deadLetters.length === 0) body.append(el("tr", {}, el("td", { colspan: "10" }, "(none)")));
  }

  async function dismissDeadLetter(id, button) {
    button.disabled = true;
    try {
      await api(`/dead-letters?id=${encodeURIComponent(id)}`, { method: "DELETE" });
      button.closest("tr").remove();
    } catch (e) {
      status(e.message);
      button.disabled = false;
    }
    refreshEventing(true);
  }

  // A refresh asked for while one runs (after a dismiss) runs once it is done; an answer read
  // before a dismiss is dropped, so that the dismissed letter does not come back for a second.
  let eventingAgain = false;
  let eventingGeneration = 0;

  async function refreshEventing(changed = false) {
    if (changed) eventingGeneration++;
    if (eventingBusy) {
      eventingAgain ||= changed;
      return;
    }
    eventingBusy = true;
    const generation = eventingGeneration;
    try {
      const [eventing, deadLetters] = await Promise.all([api("/eventing"), api("/dead-letters")]);
      if (generation === eventingGeneration) {
        renderEventing(eventing);
        renderDeadLetters(deadLetters, eventing.consumers.length > 0 || eventing.topics.length > 0);
      }
    } catch (e) {
      status(e.message);
    } finally {
      eventingBusy = false;
    }
    if (eventingAgain || generation !== eventingGeneration) {
      eventingAgain = false;
      refreshEventing();
    }
  }

  $("call-form").addEventListener("submit", submitCall);
  $("entity-service").addEventListener("change", loadEntities);
  $("entities-refresh").addEventListener("click", loadEntities);
  loadServices().then(() => status("")).catch((e) => status(e.message));
  const refresh = () => {
    refreshCharts();
    refreshEventing();
  };
  refresh();
  setInterval(refresh, 1000);
})();
