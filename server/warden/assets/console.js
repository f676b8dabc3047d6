// Warden console: conveniences on top of pages that work without script.
// No inline handlers (the CSP forbids them), no third-party code.
"use strict";

// Forms that ask before they act (revoking a key).
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form instanceof HTMLFormElement ? form.dataset.confirm : undefined;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// A running run's timeline follows it over server-sent events; when the
// run stops, the page is reloaded to show its final state.
const timeline = document.getElementById("timeline");
if (timeline && timeline.dataset.live) {
  const events = new EventSource(timeline.dataset.live);
  events.addEventListener("step", (event) => {
    const step = JSON.parse(event.data);
    const item = document.createElement("li");
    item.className = `step ${step.kind}`;
    const kind = document.createElement("span");
    kind.className = "kind";
    kind.textContent = step.kind;
    const ms = document.createElement("span");
    ms.className = "ms";
    ms.textContent = ` ${step.ms} ms `;
    const detail = document.createElement("pre");
    detail.textContent = step.detail;
    item.append(kind, ms, detail);
    timeline.append(item);
  });
  events.addEventListener("end", () => {
    events.close();
    window.location.reload();
  });
}

// The overview's model table follows the metrics: requests in flight and
// the last minute's tokens/s, refreshed every two seconds.
const load = document.getElementById("model-load");
if (load && load.dataset.live) {
  const refresh = async () => {
    try {
      const response = await fetch(load.dataset.live, { credentials: "same-origin" });
      if (!response.ok) return;
      const { models } = await response.json();
      for (const row of load.querySelectorAll("tr[data-model]")) {
        const m = models.find((x) => x.model === row.dataset.model);
        if (!m) continue;
        row.querySelector(".in-flight").textContent = String(m.in_flight);
        row.querySelector(".tps").textContent = String(m.tokens_per_second);
      }
      load.dataset.updated = String(Date.now());
    } catch (_) {
      // The next tick tries again.
    }
  };
  setInterval(refresh, 2000);
}
