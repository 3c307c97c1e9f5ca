// The live tail: the latest events, then every new one as it is appended,
// newest on top. It subscribes first (REST NDJSON) and lists the recent
// past once the subscription is live, so nothing falls between the two;
// events are keyed by sequence, so an overlap shows once.
import { html, useEffect, useRef, useState } from "../vendor/htm-preact-standalone.mjs";
import { EVENT_TYPES, JOB_KINDS, get, label, stream } from "../api.js";
import { Badge, ErrorBox, Time } from "../ui.js";

const KEEP = 500; // events kept on the page
const RECENT = 50; // events listed when the tail opens

const EMPTY = { eventTypes: "", jobKinds: "", jobIds: "", webhookIds: "", filter: "" };

function params(f) {
  // Unset filters are left out: an older server may not know jobKinds or
  // filter, and would refuse them even empty.
  return {
    eventTypes: f.eventTypes, jobKinds: f.jobKinds,
    jobIds: f.jobIds.split(/[\s,]+/).filter(Boolean),
    webhookIds: f.webhookIds.split(/[\s,]+/).filter(Boolean),
    filter: f.filter.trim(),
  };
}

const sleep = (ms, signal) => new Promise((res) => {
  const t = setTimeout(res, ms);
  signal.addEventListener("abort", () => { clearTimeout(t); res(); }, { once: true });
});

export function Tail() {
  const [draft, setDraft] = useState(EMPTY);
  const [filters, setFilters] = useState(EMPTY);
  const [events, setEvents] = useState([]);
  const [paused, setPaused] = useState(false);
  const [conn, setConn] = useState("connecting");
  const [error, setError] = useState(null);
  const [webhooks, setWebhooks] = useState([]);
  const last = useRef(null); // highest sequence shown: the resume point
  const seen = useRef(new Map());

  useEffect(() => { get("/v1/webhooks", { pageSize: 100 }).then((r) => setWebhooks(r.webhooks || []), () => {}); }, []);

  function add(list, live) {
    let changed = false;
    for (const ev of list) {
      if (!ev || seen.current.has(ev.sequence)) continue;
      seen.current.set(ev.sequence, { ev, live });
      changed = true;
      if (last.current === null || BigInt(ev.sequence) > BigInt(last.current)) last.current = ev.sequence;
    }
    if (!changed) return;
    const all = [...seen.current.values()].sort((a, b) => (BigInt(b.ev.sequence) > BigInt(a.ev.sequence) ? 1 : -1));
    if (all.length > KEEP) {
      all.slice(KEEP).forEach((x) => seen.current.delete(x.ev.sequence));
      all.length = KEEP;
    }
    setEvents(all);
  }

  useEffect(() => {
    if (paused) { setConn("paused"); return; }
    const ctl = new AbortController();
    const p = params(filters);
    (async () => {
      let delay = 500;
      while (!ctl.signal.aborted) {
        const after = last.current;
        setConn(after === null ? "connecting" : "resuming");
        try {
          await stream("/v1/events:subscribe", after === null ? p : { ...p, afterSequence: after }, {
            signal: ctl.signal,
            onOpen: () => {
              setConn("live");
              setError(null);
              delay = 500;
              if (after === null) {
                get("/v1/events", { ...p, pageSize: RECENT, orderBy: "sequence desc" }, { signal: ctl.signal })
                  .then((r) => add(r.events || [], false), (e) => { if (e.name !== "AbortError") setError(e); });
              }
            },
            onMessage: (r) => add([r.event], true),
          });
        } catch (e) {
          if (ctl.signal.aborted || e.name === "AbortError") return;
          setError(e);
          // A refused token or a bad filter will not get better by retrying.
          if (["unauthenticated", "forbidden"].includes(e.kind) || e.status === 400) { setConn("stopped"); return; }
        }
        setConn("reconnecting");
        await sleep(delay, ctl.signal);
        delay = Math.min(delay * 2, 10000);
      }
    })();
    return () => ctl.abort();
  }, [filters, paused]);

  function apply(e) {
    e.preventDefault();
    seen.current = new Map();
    last.current = null;
    setEvents([]);
    setError(null);
    setFilters({ ...draft });
  }
  function clear() { setDraft(EMPTY); seen.current = new Map(); last.current = null; setEvents([]); setFilters(EMPTY); }
  const set = (k) => (e) => setDraft({ ...draft, [k]: e.target.value });
  const active = Object.values(filters).some(Boolean);

  return html`<main class="page" id="main" tabindex="-1">
    <div class="page-head">
      <h1>Live tail</h1>
      <span class=${"conn " + conn} role="status" aria-live="polite" data-testid="conn">${conn}</span>
      <button type="button" onClick=${() => setPaused(!paused)} aria-pressed=${paused}>${paused ? "Resume" : "Pause"}</button>
    </div>
    <form class="filters" onSubmit=${apply} aria-label="Filters">
      <label>Type
        <select value=${draft.eventTypes} onChange=${set("eventTypes")}>
          <option value="">any</option>
          ${EVENT_TYPES.map((t) => html`<option value=${t}>${label(t, "EVENT_TYPE_VIDEO_")}</option>`)}
        </select></label>
      <label>Kind
        <select value=${draft.jobKinds} onChange=${set("jobKinds")}>
          <option value="">any</option>
          ${JOB_KINDS.map((k) => html`<option value=${k}>${label(k, "JOB_KIND_")}</option>`)}
        </select></label>
      <label>Job id <input value=${draft.jobIds} onInput=${set("jobIds")} placeholder="any" spellcheck="false" /></label>
      <label>Webhook <input value=${draft.webhookIds} onInput=${set("webhookIds")} placeholder="any" list="tail-webhooks" spellcheck="false" /></label>
      <datalist id="tail-webhooks">${webhooks.map((w) => html`<option value=${w.id}>${w.displayName || w.id}</option>`)}</datalist>
      <label class="wide">CEL filter <input value=${draft.filter} onInput=${set("filter")} spellcheck="false"
        placeholder='event.job.model == "kling-v2-master"' /></label>
      <div class="filter-actions">
        <button type="submit" class="primary">Apply</button>
        ${active ? html`<button type="button" onClick=${clear}>Clear</button>` : null}
      </div>
    </form>
    <${ErrorBox} error=${error} what="follow the log" />
    ${events.length === 0
      ? html`<p class="empty">${active ? "No events match these filters yet." : "No events yet."} New ones appear here as they arrive.</p>`
      : html`<ol class="events" aria-label="Events, newest first" data-testid="events">
        ${events.map(({ ev, live }) => html`<${EventRow} key=${ev.sequence} ev=${ev} live=${live} />`)}
      </ol>`}
  </main>`;
}

function EventRow({ ev, live }) {
  const job = ev.job || {};
  return html`<li class=${live ? "arrived" : ""}>
    <a href=${"#/events/" + ev.sequence} data-sequence=${ev.sequence} data-job=${job.jobId || ""}>
      <span class="seq">#${ev.sequence}</span>
      <span class="type"><${Badge} value=${ev.type || ev.rawType} prefix="EVENT_TYPE_VIDEO_" />${ev.test ? html` <span class="badge">test</span>` : null}</span>
      <span class="job" title="job id">${job.jobId || html`<span class="muted">no job id</span>`}</span>
      <span class="hook muted" title="webhook">${ev.webhookId}</span>
      <span class="kind muted">${job.kind ? label(job.kind, "JOB_KIND_") : ""}${job.model ? " " + job.model : ""}</span>
      <span class="when"><${Time} value=${ev.receivedAt} /></span>
    </a>
  </li>`;
}
