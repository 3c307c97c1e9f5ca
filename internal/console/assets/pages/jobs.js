// Jobs: the list with status filters, a form that creates a Kling task
// through klingfan (CreateJob), and one job's state, outputs and event
// timeline. A server without the Jobs API gets a clear notice; one job's
// page then falls back to what its events say.
import { html, useEffect, useRef, useState } from "../vendor/htm-preact-standalone.mjs";
import { JOB_STATUSES, get, label, post, stream } from "../api.js";
import { Badge, ErrorBox, Time, Unavailable } from "../ui.js";

// newRequestID makes the idempotency key of a create. The form keeps it
// until a create succeeds, so sending again after an error can never make
// a second Kling task.
function newRequestID() {
  const b = crypto.getRandomValues(new Uint8Array(12));
  return "console-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

// CreateJobForm sends Kling's request body for an endpoint through
// POST /v1/jobs; klingfan fills in the callback URL and the external task
// id. On success it opens the new job's page.
function CreateJobForm() {
  const [f, setF] = useState({ endpoint: "/v1/videos/text2video", webhook: "", requestId: newRequestID(), body: '{\n  "prompt": ""\n}' });
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  async function submit(e) {
    e.preventDefault();
    setError(null);
    let body;
    try {
      body = JSON.parse(f.body);
    } catch (err) {
      setError(new Error("The body is not JSON: " + err.message));
      return;
    }
    if (body === null || typeof body !== "object" || Array.isArray(body)) {
      setError(new Error("The body must be a JSON object: Kling's request body for the endpoint."));
      return;
    }
    setBusy(true);
    try {
      const req = { endpoint: f.endpoint.trim(), requestId: f.requestId.trim(), body };
      if (f.webhook.trim()) req.webhookId = f.webhook.trim();
      const r = await post("/v1/jobs", req);
      const st = r.jobState || {};
      setF({ ...f, requestId: newRequestID() });
      location.hash = "#/jobs/" + encodeURIComponent(st.jobId);
    } catch (err) { setError(err); } finally { setBusy(false); }
  }
  const set = (k) => (e) => setF({ ...f, [k]: e.target.value });
  return html`<details class="card create" data-testid="create-job">
    <summary>Create a job</summary>
    <form onSubmit=${submit} aria-label="Create a Kling task">
      <p class="muted">klingfan fills in the callback URL and the external task id, signs the call with the account's credentials and records the job before answering. The same request id again returns the same job.</p>
      <div class="row">
        <label>Endpoint<input name="endpoint" value=${f.endpoint} onInput=${set("endpoint")} required spellcheck="false" placeholder="/v1/videos/text2video" /></label>
        <label>Webhook<input name="webhook" value=${f.webhook} onInput=${set("webhook")} spellcheck="false" placeholder="default" /></label>
        <label>Request id<input name="request-id" value=${f.requestId} onInput=${set("requestId")} required spellcheck="false" /></label>
      </div>
      <label>Kling's request body (JSON)<textarea name="body" rows="6" spellcheck="false" value=${f.body} onInput=${set("body")}></textarea></label>
      <div class="actions"><button type="submit" class="primary" disabled=${busy}>Create</button></div>
      <${ErrorBox} error=${error} what="create the job" />
    </form>
  </details>`;
}

export function JobsPage({ params }) {
  const [statuses, setStatuses] = useState(params.getAll("status"));
  const [page, setPage] = useState({ token: "", history: [] });
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    const ctl = new AbortController();
    setError(null);
    get("/v1/jobs", { statuses, pageSize: 50, pageToken: page.token }, { signal: ctl.signal })
      .then(setData, (e) => e.name !== "AbortError" && setError(e));
    return () => ctl.abort();
  }, [statuses.join(), page.token]);

  function toggle(s) {
    setPage({ token: "", history: [] });
    setStatuses(statuses.includes(s) ? statuses.filter((x) => x !== s) : [...statuses, s]);
  }
  const head = html`<div class="page-head"><h1>Jobs</h1></div>`;
  if (error?.kind === "missing") return html`<main class="page" id="main" tabindex="-1">${head}<${Unavailable} name="Jobs" path="/v1/jobs" />
    <p>Each event still links to its job's page, which shows what the job's events say.</p></main>`;
  const jobs = data?.jobStates || [];
  return html`<main class="page" id="main" tabindex="-1">
    ${head}
    <${CreateJobForm} />
    <fieldset class="chips"><legend>Status</legend>
      ${JOB_STATUSES.map((s) => html`<label class="chip"><input type="checkbox" checked=${statuses.includes(s)} onChange=${() => toggle(s)} />${label(s, "JOB_STATUS_")}</label>`)}
    </fieldset>
    <${ErrorBox} error=${error} what="list jobs" />
    ${!data && !error ? html`<p class="muted" role="status">Loading…</p>` : null}
    ${data && jobs.length === 0 ? html`<p class="empty">No jobs${statuses.length ? " with these statuses" : ""} yet.</p>` : null}
    ${jobs.length ? html`<div class="table-wrap"><table>
      <caption class="sr-only">Jobs, most recently updated first</caption>
      <thead><tr><th scope="col">Job</th><th scope="col">Status</th><th scope="col">Kind / model</th><th scope="col">Webhook</th><th scope="col">Events</th><th scope="col">Updated</th></tr></thead>
      <tbody>${jobs.map((s) => html`<tr key=${s.webhookId + "/" + s.jobId}>
        <td><a href=${"#/jobs/" + encodeURIComponent(s.jobId)}>${s.jobId}</a></td>
        <td><${Badge} value=${s.job?.status} prefix="JOB_STATUS_" /></td>
        <td>${label(s.job?.kind, "JOB_KIND_")} ${s.job?.model || ""}</td>
        <td>${s.webhookId}</td><td>${s.eventCount}</td><td><${Time} value=${s.updateTime} /></td>
      </tr>`)}</tbody></table></div>` : null}
    <div class="pager">
      ${page.history.length ? html`<button type="button" onClick=${() => setPage({ token: page.history.at(-1), history: page.history.slice(0, -1) })}>Previous</button>` : null}
      ${data?.nextPageToken ? html`<button type="button" onClick=${() => setPage({ token: data.nextPageToken, history: [...page.history, page.token] })}>Next</button>` : null}
    </div>
  </main>`;
}

// jobsAPI says whether this server serves /v1/jobs at all: a 404 from
// GET /v1/jobs/X alone could also mean "no such job".
async function jobsAPI(signal) {
  try {
    await get("/v1/jobs", { pageSize: 1 }, { signal });
    return true;
  } catch (e) {
    if (e.kind === "missing") return false;
    throw e;
  }
}

// JobPage follows the job as it changes: it subscribes to the job's events
// and reloads the state on each one, and once when the subscription is live
// (so an event between the first load and the subscription is not missed).
export function JobPage({ jobId }) {
  const [state, setState] = useState(null);
  const [events, setEvents] = useState(null);
  const [error, setError] = useState(null);
  const [fallback, setFallback] = useState(false);
  const [version, setVersion] = useState(0);
  const [live, setLive] = useState(false);
  const shown = useRef(null);
  // The highest sequence of this job the stream has shown: the Jobs API's
  // projection is written just after the append, so a state older than
  // this is asked for again shortly.
  const want = useRef(0n);
  const retries = useRef(0);

  useEffect(() => {
    const ctl = new AbortController();
    (async () => {
      let delay = 1000;
      while (!ctl.signal.aborted) {
        try {
          await stream("/v1/events:subscribe", { jobIds: [jobId] }, {
            signal: ctl.signal,
            onOpen: () => { setLive(true); delay = 1000; setVersion((v) => v + 1); },
            onMessage: (r) => {
              const seq = BigInt(r.event?.sequence || 0);
              if (seq > want.current) want.current = seq;
              retries.current = 0;
              setVersion((v) => v + 1);
            },
          });
        } catch (e) {
          if (ctl.signal.aborted || e.name === "AbortError") return;
          if (["unauthenticated", "forbidden"].includes(e.kind)) { setLive(false); return; }
        }
        setLive(false);
        await new Promise((res) => setTimeout(res, delay));
        delay = Math.min(delay * 2, 10000);
      }
    })();
    return () => { ctl.abort(); setLive(false); };
  }, [jobId]);

  useEffect(() => {
    const ctl = new AbortController();
    const signal = ctl.signal;
    if (shown.current !== jobId) {
      // Another job: start clean. A reload of the same job keeps what is
      // on screen until the new answer replaces it.
      shown.current = jobId;
      want.current = 0n;
      setState(null); setEvents(null); setError(null); setFallback(false);
    }
    const timeline = get("/v1/events", { jobIds: [jobId], pageSize: 200, orderBy: "sequence" }, { signal }).then((r) => r.events || []);
    timeline.then(setEvents, (e) => e.name !== "AbortError" && setError(e));
    (async () => {
      try {
        const r = await get("/v1/jobs/" + encodeURIComponent(jobId), {}, { signal });
        const st = r.jobState || r;
        setState(st);
        setFallback(false);
        if (BigInt(st.lastSequence || 0) < want.current && retries.current++ < 20) {
          setTimeout(() => !signal.aborted && setVersion((v) => v + 1), 150);
        }
      } catch (e) {
        if (e.name === "AbortError") return;
        if (e.kind !== "missing") { setError(e); return; }
        try {
          if (await jobsAPI(signal)) { setState({ missing: true }); return; }
        } catch (e2) { if (e2.name !== "AbortError") setError(e2); return; }
        // No Jobs API: fold what the events say, latest status wins.
        setFallback(true);
        const evs = await timeline.catch(() => []);
        if (!evs.length) { setState({ missing: true }); return; }
        const lastEv = evs[evs.length - 1];
        const withOutputs = [...evs].reverse().find((x) => Object.values(x.job || {}).some((v) => Array.isArray(v) && v.length));
        setState({
          jobId, webhookId: lastEv.webhookId, lastEventType: lastEv.type, lastSequence: lastEv.sequence, eventCount: evs.length,
          firstSeenTime: evs[0].receivedAt, updateTime: lastEv.receivedAt,
          job: { ...(withOutputs?.job || {}), ...lastEv.job, ...outputsOf(withOutputs?.job) },
        });
      }
    })();
    return () => ctl.abort();
  }, [jobId, version]);

  const head = html`<div class="page-head"><h1>Job <code>${jobId}</code></h1>
    <span class=${"conn " + (live ? "live" : "")} role="status" data-testid="job-live">${live ? "live" : "not following"}</span>
    <a class="button" href="#/jobs">All jobs</a></div>`;
  return html`<main class="page" id="main" tabindex="-1">
    ${head}
    <${ErrorBox} error=${error} what=${"load job " + jobId} />
    ${fallback ? html`<div class="notice" role="status"><strong>The Jobs API is not available on this server.</strong> This page shows what the job's events say.</div>` : null}
    ${!state && !error ? html`<p class="muted" role="status">Loading…</p>` : null}
    ${state?.missing ? html`<p class="empty">klingfan has not seen job <code>${jobId}</code>.</p>` : null}
    ${state && !state.missing ? html`<${JobState} s=${state} />` : null}
    ${events?.length ? html`<section aria-labelledby="timeline-h"><h2 id="timeline-h">Timeline</h2>
      <ol class="timeline">${events.map((ev) => html`<li key=${ev.sequence}>
        <a href=${"#/events/" + ev.sequence}>#${ev.sequence}</a>
        <${Badge} value=${ev.type || ev.rawType} prefix="EVENT_TYPE_VIDEO_" />
        ${ev.job?.progressPercent ? html`<span class="muted">${ev.job.progressPercent}%</span>` : null}
        ${ev.job?.statusMessage ? html`<span>${ev.job.statusMessage}</span>` : null}
        <${Time} value=${ev.receivedAt} />
      </li>`)}</ol></section>` : null}
  </main>`;
}

// outputsOf picks the lists of outputs (videos, images, audios…) from a job.
function outputsOf(job) {
  const out = {};
  for (const [k, v] of Object.entries(job || {})) if (Array.isArray(v) && v.length && typeof v[0] === "object") out[k] = v;
  return out;
}

function JobState({ s }) {
  const job = s.job || {};
  return html`<dl class="facts" data-testid="job-state">
      <dt>Status</dt><dd data-testid="job-status"><${Badge} value=${job.status} prefix="JOB_STATUS_" />${job.statusMessage ? " " + job.statusMessage : ""}</dd>
      ${job.progressPercent ? html`<dt>Progress</dt><dd><progress max="100" value=${job.progressPercent}>${job.progressPercent}%</progress> ${job.progressPercent}%</dd>` : null}
      ${job.kind || job.model ? html`<dt>Kind / model</dt><dd>${label(job.kind, "JOB_KIND_")} ${job.model || ""}</dd>` : null}
      ${job.prompt ? html`<dt>Prompt</dt><dd>${job.prompt}</dd>` : null}
      <dt>Webhook</dt><dd>${s.webhookId}</dd>
      <dt>Events</dt><dd>${s.eventCount} (last <a href=${"#/events/" + s.lastSequence}>#${s.lastSequence}</a>)</dd>
      <dt>First seen</dt><dd><${Time} value=${s.firstSeenTime} /></dd>
      <dt>Updated</dt><dd><${Time} value=${s.updateTime} /></dd>
      ${job.externalId ? html`<dt>External id</dt><dd><code>${job.externalId}</code></dd>` : null}
      ${job.createEndpoint ? html`<dt>Created on</dt><dd><code>${job.createEndpoint}</code></dd>` : null}
      ${job.unitsDeducted ? html`<dt>Units</dt><dd>${job.unitsDeducted}</dd>` : null}
    </dl>
    <${Outputs} job=${job} />`;
}

// urlsOf lists the https URLs an output item carries (url, mp3Url, …).
function urlsOf(item) {
  return Object.entries(item).filter(([k, v]) => /url$/i.test(k) && typeof v === "string" && /^https?:\/\//.test(v));
}

// Preview shows an output's media only when asked: its URL comes from the
// payload, and loading it by itself would make the browser call whatever
// host a sender named.
function Preview({ media, name }) {
  const [shown, setShown] = useState(false);
  if (shown) return media();
  return html`<button type="button" class="small preview" data-testid="preview" onClick=${() => setShown(true)}
    aria-label=${"Show " + name}>Show preview</button>`;
}

function Outputs({ job }) {
  const lists = outputsOf(job);
  const items = [];
  for (const [kind, list] of Object.entries(lists)) {
    if (kind === "billing") continue;
    list.forEach((item, i) => {
      for (const [field, url] of urlsOf(item)) {
        if (kind === "videos" && field === "thumbnailUrl" && item.url) continue; // the video's poster
        const name = `${kind.replace(/s$/, "")} ${item.id || item.index || i + 1}${field === "url" ? "" : " (" + field.replace(/Url$/, "") + ")"}`;
        let media = null;
        if (kind === "videos" && field !== "thumbnailUrl") media = () => html`<video controls preload="metadata" src=${url} poster=${item.thumbnailUrl || undefined} aria-label=${name}></video>`;
        else if (kind === "images" || field === "thumbnailUrl") media = () => html`<img src=${url} alt=${name} />`;
        else if (kind === "audios" || kind === "voices") media = () => html`<audio controls preload="none" src=${url} aria-label=${name}></audio>`;
        items.push(html`<figure class="output">${media ? html`<${Preview} media=${media} name=${name} />` : null}<figcaption><a href=${url} target="_blank" rel="noopener noreferrer">${name}</a></figcaption></figure>`);
      }
    });
  }
  if (!items.length) return null;
  return html`<section aria-labelledby="outputs-h"><h2 id="outputs-h">Outputs</h2><div class="outputs">${items}</div></section>`;
}
