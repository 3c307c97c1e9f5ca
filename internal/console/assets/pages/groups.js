// Consumer groups: counters, dead letters, redrive and seek. A server
// without the Consumer groups API gets a clear notice instead.
import { html, useEffect, useState } from "../vendor/htm-preact-standalone.mjs";
import { get, label, post } from "../api.js";
import { ErrorBox, Time, Unavailable } from "../ui.js";

// The REST paths, in one place: grpc-gateway's usual mapping of the
// ConsumerGroupService methods.
const PATHS = {
  list: "/v1/consumerGroups",
  deadLetters: (id) => `/v1/consumerGroups/${encodeURIComponent(id)}/deadLetters`,
  redrive: (id) => `/v1/consumerGroups/${encodeURIComponent(id)}/deadLetters:redrive`,
  seek: (id) => `/v1/consumerGroups/${encodeURIComponent(id)}:seek`,
};

export function GroupsPage() {
  const [groups, setGroups] = useState(null);
  const [error, setError] = useState(null);
  async function load() {
    try {
      const r = await get(PATHS.list, { pageSize: 100 });
      setGroups(r.consumerGroups || []); setError(null);
    } catch (e) { setError(e); }
  }
  useEffect(() => { load(); }, []);
  const head = html`<div class="page-head"><h1>Consumer groups</h1></div>`;
  if (error?.kind === "missing") return html`<main class="page" id="main" tabindex="-1">${head}<${Unavailable} name="Consumer groups" path=${PATHS.list} /></main>`;
  return html`<main class="page" id="main" tabindex="-1">
    ${head}
    <${ErrorBox} error=${error} what="list consumer groups" />
    ${groups && !groups.length ? html`<p class="empty">No consumer groups yet. Create one with <code>klingctl groups create</code> or <code>POST /v1/consumerGroups</code>.</p>` : null}
    ${groups?.length ? html`<ul class="hooks" aria-label="Consumer groups">${groups.map((g) => html`<${GroupCard} key=${g.id} g=${g} onChange=${load} />`)}</ul>` : null}
  </main>`;
}

function Counter({ name, value, tone }) {
  return html`<div class=${"counter " + (tone && Number(value) > 0 ? tone : "")}><span class="n">${value ?? 0}</span><span class="muted">${name}</span></div>`;
}

function GroupCard({ g, onChange }) {
  const [dead, setDead] = useState(null);
  const [error, setError] = useState(null);
  const [note, setNote] = useState("");
  const [seek, setSeek] = useState({ mode: "afterSequence", value: "" });
  async function loadDead() {
    try { const r = await get(PATHS.deadLetters(g.id), { pageSize: 50 }); setDead(r.deadLetters || []); } catch (e) { setError({ e, what: "list dead letters" }); }
  }
  async function redrive(sequences) {
    setError(null);
    try {
      const r = await post(PATHS.redrive(g.id), { sequences });
      const n = r.redriven ?? sequences.length;
      setNote(`Redrove ${n} dead ${n === 1 ? "letter" : "letters"}${sequences.length ? " (#" + sequences.join(", #") + ")" : ""}.`);
      onChange(); if (dead) loadDead();
    } catch (e) { setError({ e, what: "redrive" }); }
  }
  async function doSeek(e) {
    e.preventDefault();
    setError(null);
    const body = {};
    if (seek.mode === "fromBeginning") body.fromBeginning = true;
    else if (seek.mode === "since") body.since = new Date(seek.value).toISOString();
    else body.afterSequence = seek.value;
    try { await post(PATHS.seek(g.id), body); setNote("Moved the group's position."); onChange(); } catch (err) { setError({ e: err, what: "seek" }); }
  }
  const filters = [...(g.eventTypes || []).map((t) => label(t, "EVENT_TYPE_VIDEO_")), ...(g.jobKinds || []).map((k) => label(k, "JOB_KIND_")),
    ...(g.jobIds || []).map((j) => "job " + j), ...(g.webhookIds || []).map((w) => "webhook " + w)];
  return html`<li class="card hook" data-group=${g.id}>
    <div class="hook-head"><h3>${g.displayName || g.id} ${g.displayName ? html`<code class="muted">${g.id}</code>` : null}</h3>
      <span class="muted">created <${Time} value=${g.createTime} /></span></div>
    <div class="counters">
      <${Counter} name="members" value=${g.members} />
      <${Counter} name="pending" value=${g.pending} />
      <${Counter} name="awaiting ack" value=${g.ackPending} />
      <${Counter} name="redelivered" value=${g.redelivered} tone="warn" />
      <${Counter} name="dead letters" value=${g.deadLettered} tone="bad" />
    </div>
    <p class="muted">${filters.length ? "Events: " + filters.join(", ") : "Every event"}${g.filter ? html`, where <code>${g.filter}</code>` : null} · ack wait ${g.ackWait || "30s"} · max deliveries ${g.maxDeliveries || 5}</p>
    ${error ? html`<${ErrorBox} error=${error.e} what=${error.what} />` : null}
    ${note ? html`<p class="notice ok" role="status">${note}</p>` : null}
    <div class="actions">
      <button type="button" onClick=${loadDead} aria-label=${"Show dead letters of " + g.id}>Dead letters</button>
      <button type="button" onClick=${() => redrive([])} disabled=${!Number(g.deadLettered)} aria-label=${"Redrive every dead letter of " + g.id}>Redrive all</button>
    </div>
    ${dead ? (dead.length ? html`<ol class="timeline" aria-label=${"Dead letters of " + g.id}>${dead.map((d) => html`<li key=${d.sequence}>
        <a href=${"#/events/" + d.sequence}>#${d.sequence}</a>
        <span class="muted">${d.deliveryAttempts} ${d.deliveryAttempts === 1 ? "attempt" : "attempts"}</span>
        <span>dead-lettered <${Time} value=${d.deadLetterTime} /></span>
        <button type="button" class="small" onClick=${() => redrive([d.sequence])} aria-label=${"Redrive event " + d.sequence}>Redrive</button></li>`)}</ol>`
      : html`<p class="muted">No dead letters.</p>`) : null}
    <form class="row seek" onSubmit=${doSeek} aria-label=${"Seek " + g.id}>
      <label>Replay
        <select value=${seek.mode} onChange=${(e) => setSeek({ ...seek, mode: e.target.value })}>
          <option value="afterSequence">after sequence</option><option value="since">since time</option><option value="fromBeginning">from the beginning</option>
        </select></label>
      ${seek.mode === "fromBeginning" ? null : html`<label>${seek.mode === "since" ? "Time" : "Sequence"}
        <input type=${seek.mode === "since" ? "datetime-local" : "number"} min="0" required value=${seek.value} onInput=${(e) => setSeek({ ...seek, value: e.target.value })} /></label>`}
      <button type="submit">Seek</button>
    </form>
  </li>`;
}
