// The status bar: is the server ready, what the log holds, how many
// subscription streams are open.
import { html, useEffect, useState } from "./vendor/htm-preact-standalone.mjs";
import { get } from "./api.js";

async function readiness() {
  try {
    const r = await fetch("/readyz", { cache: "no-store" });
    return r.ok ? "ready" : "not ready";
  } catch {
    return "unreachable";
  }
}

// streams reads the open-subscription gauge from /metrics (open, like
// /readyz): the console's own live tail is one of them.
async function streams() {
  try {
    const r = await fetch("/metrics", { cache: "no-store" });
    if (!r.ok) return null;
    const m = /^klingfan_hub_subscribers\s+([0-9.e+]+)$/m.exec(await r.text());
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

async function bounds() {
  try {
    const [first, last] = await Promise.all([
      get("/v1/events", { pageSize: 1, orderBy: "sequence" }),
      get("/v1/events", { pageSize: 1, orderBy: "sequence desc" }),
    ]);
    const f = first.events?.[0]?.sequence, l = last.events?.[0]?.sequence;
    return f ? { first: f, last: l } : { empty: true };
  } catch {
    return null;
  }
}

export function StatusBar() {
  const [s, setS] = useState({});
  useEffect(() => {
    let stop = false;
    async function tick() {
      const [ready, open, log] = await Promise.all([readiness(), streams(), bounds()]);
      if (!stop) setS({ ready, open, log, at: new Date() });
    }
    tick();
    // Every 10 seconds, and on every page change so a page never shows
    // stale numbers under fresh content.
    const id = setInterval(tick, 10000);
    // A moment after the change, so the new page's streams are counted.
    let later;
    const onHash = () => { clearTimeout(later); later = setTimeout(tick, 600); };
    addEventListener("hashchange", onHash);
    return () => { stop = true; clearInterval(id); clearTimeout(later); removeEventListener("hashchange", onHash); };
  }, []);
  const log = !s.log ? "—" : s.log.empty ? "empty" : `#${s.log.first} … #${s.log.last}`;
  return html`<footer class="statusbar" aria-label="Server status">
    <span><span class=${"dot " + (s.ready === "ready" ? "ok" : s.ready ? "bad" : "")} aria-hidden="true"></span>
      <span data-testid="readiness">${s.ready || "checking…"}</span></span>
    <span>log <span data-testid="bounds">${log}</span></span>
    <span><span data-testid="streams">${s.open ?? "—"}</span> open ${s.open === 1 ? "stream" : "streams"}</span>
    ${s.at ? html`<span class="muted updated" title=${s.at.toISOString()}>updated ${s.at.toLocaleTimeString()}</span>` : null}
  </footer>`;
}
