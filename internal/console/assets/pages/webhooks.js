// Webhook registrations: list, create (the secret is shown once), activate
// or deactivate, rotate the secret with a grace period, send a test event,
// delete with confirmation. All of it needs an admin token.
import { html, useEffect, useState } from "../vendor/htm-preact-standalone.mjs";
import { EVENT_TYPES, SCHEMES, del, get, label, patch, post } from "../api.js";
import { CopyButton, Dialog, ErrorBox, Time } from "../ui.js";

const GRACES = [["0s", "none: revoke the old secret now"], ["3600s", "1 hour"], ["86400s", "24 hours"], ["604800s", "7 days"]];

// SecretOnce shows a secret the server will never return again.
function SecretOnce({ result, onDone }) {
  const { webhook, secret, callbackUrl } = result;
  const url = callbackUrl || webhook?.ingestUrl;
  return html`<section class="secret-once" role="alert" aria-labelledby="secret-h" data-testid="secret-once">
    <h2 id="secret-h">${result.rotated ? "New secret" : "Registration created"}: <code>${webhook?.id}</code></h2>
    <p class="warning"><strong>Store this secret now.</strong> klingfan shows it only once; it cannot be read back later, only rotated.</p>
    <dl class="facts">
      <dt>Secret</dt><dd class="copyable"><code id="secret-value" data-testid="secret">${secret}</code> <${CopyButton} text=${secret} what="secret" target="secret-value" /></dd>
      <dt>Callback URL</dt><dd class="copyable"><code id="callback-url">${url}</code> <${CopyButton} text=${url} what="callback URL" target="callback-url" /></dd>
    </dl>
    ${result.rotated && webhook?.previousSecretExpireTime ? html`<p>The previous secret keeps verifying until <${Time} value=${webhook.previousSecretExpireTime} />.</p>` : null}
    <button type="button" class="primary" onClick=${onDone}>I have stored it</button>
  </section>`;
}

function CreateForm({ onCreated }) {
  const [f, setF] = useState({ id: "", name: "", scheme: SCHEMES[1] });
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  async function submit(e) {
    e.preventDefault();
    setBusy(true); setError(null);
    try {
      const body = { webhook: { displayName: f.name, signatureScheme: f.scheme } };
      if (f.id.trim()) body.webhookId = f.id.trim();
      onCreated(await post("/v1/webhooks", body));
      setF({ ...f, id: "", name: "" });
    } catch (err) { setError(err); } finally { setBusy(false); }
  }
  const set = (k) => (e) => setF({ ...f, [k]: e.target.value });
  return html`<form class="card create" onSubmit=${submit} aria-labelledby="create-h">
    <h2 id="create-h">New registration</h2>
    <div class="row">
      <label>Id<input name="webhook-id" value=${f.id} onInput=${set("id")} pattern="[a-z0-9][a-z0-9\\-]*" spellcheck="false" placeholder="optional: generated" /></label>
      <label>Display name<input name="display-name" value=${f.name} onInput=${set("name")} /></label>
      <label>Signature scheme<select name="scheme" value=${f.scheme} onChange=${set("scheme")}>
        ${SCHEMES.map((s) => html`<option value=${s}>${label(s, "SIGNATURE_SCHEME_")}</option>`)}</select></label>
      <button type="submit" class="primary" disabled=${busy}>Create</button>
    </div>
    <${ErrorBox} error=${error} what="create the registration" />
  </form>`;
}

export function WebhooksPage() {
  const [list, setList] = useState(null);
  const [error, setError] = useState(null);
  const [secret, setSecret] = useState(null);
  const [dialog, setDialog] = useState(null); // {kind: "rotate"|"delete", webhook}
  const [notice, setNotice] = useState(null);
  const [rowError, setRowError] = useState(null);

  async function load() {
    try {
      const all = [];
      let pageToken = "";
      do {
        const r = await get("/v1/webhooks", { pageSize: 100, pageToken });
        all.push(...(r.webhooks || []));
        pageToken = r.nextPageToken;
      } while (pageToken);
      setList(all); setError(null);
    } catch (e) { setError(e); }
  }
  useEffect(() => { load(); }, []);

  async function act(what, fn) {
    setRowError(null); setNotice(null);
    try { await fn(); await load(); } catch (e) { setRowError({ e, what }); }
  }
  const setActive = (w, active) => act(`${active ? "activate" : "deactivate"} ${w.id}`, () => patch("/v1/webhooks/" + encodeURIComponent(w.id), { active }));
  const sendTest = (w, eventType) => act(`send a test event to ${w.id}`, async () => {
    const r = await post(`/v1/webhooks/${encodeURIComponent(w.id)}:sendTestEvent`, { eventType });
    const ev = r.event || r;
    setNotice({ webhook: w.id, sequence: ev.sequence, type: ev.type });
  });

  return html`<main class="page" id="main" tabindex="-1">
    <div class="page-head"><h1>Webhooks</h1></div>
    ${secret ? html`<${SecretOnce} result=${secret} onDone=${() => setSecret(null)} />` : null}
    <${CreateForm} onCreated=${(r) => { setSecret(r); load(); }} />
    <${ErrorBox} error=${error} what="list registrations" />
    ${rowError ? html`<${ErrorBox} error=${rowError.e} what=${rowError.what} />` : null}
    ${notice ? html`<div class="notice ok" role="status" data-testid="test-sent">
      Test event <a href=${"#/events/" + notice.sequence}>#${notice.sequence}</a> (${label(notice.type, "EVENT_TYPE_VIDEO_")}) arrived in the log from <code>${notice.webhook}</code>.
      <a href="#/">See it in the live tail</a>.</div>` : null}
    ${list && list.length === 0 ? html`<p class="empty">No registrations yet. Create one above, or set <code>KLINGAI_WEBHOOK_SECRET</code> for <code>default</code>.</p>` : null}
    ${list?.length ? html`<ul class="hooks" aria-label="Registrations">${list.map((w) => html`<${HookCard} key=${w.id} w=${w}
        onActive=${setActive} onTest=${sendTest}
        onRotate=${() => setDialog({ kind: "rotate", webhook: w })} onDelete=${() => setDialog({ kind: "delete", webhook: w })} />`)}</ul>` : null}
    <${Dialog} open=${dialog?.kind === "rotate"} title=${"Rotate the secret of " + dialog?.webhook.id} onClose=${() => setDialog(null)}>
      <${RotateForm} webhook=${dialog?.webhook} onCancel=${() => setDialog(null)} onRotated=${(r) => { setDialog(null); setSecret({ ...r, rotated: true }); load(); }} />
    <//>
    <${Dialog} open=${dialog?.kind === "delete"} title=${"Delete " + dialog?.webhook.id + "?"} onClose=${() => setDialog(null)}>
      <${DeleteForm} webhook=${dialog?.webhook} onCancel=${() => setDialog(null)} onDeleted=${() => { setDialog(null); load(); }} />
    <//>
  </main>`;
}

function HookCard({ w, onActive, onTest, onRotate, onDelete }) {
  const [type, setType] = useState("EVENT_TYPE_VIDEO_COMPLETED");
  const active = w.active !== false;
  return html`<li class="card hook" data-webhook=${w.id}>
    <div class="hook-head">
      <h3>${w.displayName || w.id} ${w.displayName ? html`<code class="muted">${w.id}</code>` : null}</h3>
      <span class=${"badge " + (active ? "ok" : "warn")}>${active ? "active" : "inactive"}</span>
    </div>
    <dl class="facts compact">
      <dt>Scheme</dt><dd>${label(w.signatureScheme, "SIGNATURE_SCHEME_")}</dd>
      <dt>Ingest URL</dt><dd class="copyable"><code id=${"ingest-" + w.id}>${w.ingestUrl}</code> <${CopyButton} text=${w.ingestUrl} what=${"ingest URL of " + w.id} target=${"ingest-" + w.id} /></dd>
      ${w.eventTypes?.length ? html`<dt>Types</dt><dd>${w.eventTypes.map((t) => label(t, "EVENT_TYPE_VIDEO_")).join(", ")}</dd>` : null}
      ${w.previousSecretExpireTime ? html`<dt>Old secret until</dt><dd><${Time} value=${w.previousSecretExpireTime} /></dd>` : null}
      <dt>Created</dt><dd><${Time} value=${w.createTime} /></dd>
    </dl>
    <div class="actions">
      <span class="test-group">
        <label class="sr-only" for=${"test-type-" + w.id}>Test event type for ${w.id}</label>
        <select id=${"test-type-" + w.id} value=${type} onChange=${(e) => setType(e.target.value)}>
          ${EVENT_TYPES.map((t) => html`<option value=${t}>${label(t, "EVENT_TYPE_VIDEO_")}</option>`)}</select>
        <button type="button" onClick=${() => onTest(w, type)} aria-label=${"Send a test event to " + w.id}>Send test</button>
      </span>
      <button type="button" onClick=${onRotate} aria-label=${"Rotate the secret of " + w.id}>Rotate secret</button>
      <button type="button" onClick=${() => onActive(w, !active)} aria-label=${(active ? "Deactivate " : "Activate ") + w.id}>${active ? "Deactivate" : "Activate"}</button>
      <button type="button" class="danger" onClick=${onDelete} aria-label=${"Delete " + w.id}>Delete</button>
    </div>
  </li>`;
}

function RotateForm({ webhook, onCancel, onRotated }) {
  const [grace, setGrace] = useState("86400s");
  const [error, setError] = useState(null);
  async function submit(e) {
    e.preventDefault();
    try { onRotated(await post(`/v1/webhooks/${encodeURIComponent(webhook.id)}:rotateSecret`, { gracePeriod: grace })); } catch (err) { setError(err); }
  }
  return html`<form onSubmit=${submit}>
    <p>A new secret is generated and shown once. Kling must be given it; until then the old one can keep verifying.</p>
    <label>Old secret keeps working for
      <select name="grace" value=${grace} onChange=${(e) => setGrace(e.target.value)}>
        ${GRACES.map(([v, t]) => html`<option value=${v}>${t}</option>`)}</select></label>
    <${ErrorBox} error=${error} what="rotate the secret" />
    <div class="actions"><button type="button" onClick=${onCancel}>Cancel</button><button type="submit" class="primary">Rotate</button></div>
  </form>`;
}

function DeleteForm({ webhook, onCancel, onDeleted }) {
  const [error, setError] = useState(null);
  async function submit(e) {
    e.preventDefault();
    try { await del("/v1/webhooks/" + encodeURIComponent(webhook.id)); onDeleted(); } catch (err) { setError(err); }
  }
  return html`<form onSubmit=${submit}>
    <p>Deliveries to <code>${webhook.ingestUrl}</code> will be refused with 404. Events already logged stay in the log. This cannot be undone.</p>
    <${ErrorBox} error=${error} what="delete the registration" />
    <div class="actions"><button type="button" onClick=${onCancel} autofocus>Cancel</button><button type="submit" class="danger">Delete ${webhook.id}</button></div>
  </form>`;
}
