// One event: the normalized Event and the exact raw body Kling sent.
import { html, useEffect, useState } from "../vendor/htm-preact-standalone.mjs";
import { decodeBase64, get, label } from "../api.js";
import { Badge, ErrorBox, Pretty, Time } from "../ui.js";

// prettyBody indents a JSON body and leaves anything else as it came.
function prettyBody(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

export function EventPage({ sequence }) {
  const [ev, setEv] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    setEv(null);
    setError(null);
    const ctl = new AbortController();
    get("/v1/events/" + encodeURIComponent(sequence), { view: "EVENT_VIEW_FULL" }, { signal: ctl.signal })
      .then((r) => setEv(r.event), (e) => e.name !== "AbortError" && setError(e));
    return () => ctl.abort();
  }, [sequence]);

  const head = html`<div class="page-head"><h1>Event #${sequence}</h1><a href="#/" class="button">Back to the live tail</a></div>`;
  if (error) return html`<main class="page" id="main" tabindex="-1">${head}<${ErrorBox} error=${error} what=${"load event " + sequence} /></main>`;
  if (!ev) return html`<main class="page" id="main" tabindex="-1">${head}<p class="muted" role="status">Loading…</p></main>`;

  const { rawBody, ...normalized } = ev;
  const raw = prettyBody(decodeBase64(rawBody));
  const job = ev.job || {};
  return html`<main class="page" id="main" tabindex="-1">
    ${head}
    <dl class="facts">
      <dt>Type</dt><dd><${Badge} value=${ev.type || ev.rawType} prefix="EVENT_TYPE_VIDEO_" />${ev.rawType ? html` <code>${ev.rawType}</code>` : null}${ev.test ? " (test event)" : ""}</dd>
      <dt>Job</dt><dd>${job.jobId ? html`<a href=${"#/jobs/" + encodeURIComponent(job.jobId)}>${job.jobId}</a>` : "—"}${job.status ? html` <${Badge} value=${job.status} prefix="JOB_STATUS_" />` : null}</dd>
      <dt>Webhook</dt><dd><a href="#/webhooks">${ev.webhookId}</a></dd>
      <dt>Received</dt><dd><${Time} value=${ev.receivedAt} /></dd>
      <dt>Occurred</dt><dd><${Time} value=${ev.occurredAt} /></dd>
      <dt>Format</dt><dd>${label(ev.sourceFormat, "SOURCE_FORMAT_")}</dd>
      <dt>Id</dt><dd><code>${ev.id}</code></dd>
      <dt>Delivery</dt><dd><code>${ev.deliveryId || "—"}</code></dd>
    </dl>
    <div class="two">
      <section aria-labelledby="norm-h">
        <h2 id="norm-h">Normalized event</h2>
        <${Pretty} id="normalized" value=${normalized} what="normalized event" />
      </section>
      <section aria-labelledby="raw-h">
        <h2 id="raw-h">Raw body <span class="muted">(as received, ${rawBody ? atob(rawBody).length : 0} bytes)</span></h2>
        ${rawBody ? html`<${Pretty} id="raw-body" value=${raw} what="raw body" />` : html`<p class="muted">This event has no raw body.</p>`}
      </section>
    </div>
  </main>`;
}
