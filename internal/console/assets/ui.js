// Small components shared by the pages: times, copy buttons, errors,
// confirmation dialogs.
import { html, useEffect, useRef, useState } from "./vendor/htm-preact-standalone.mjs";

// A clock every relative time re-renders from, once every 15 seconds.
const ticks = new Set();
setInterval(() => ticks.forEach((fn) => fn(Date.now())), 15000);
export function useNow() {
  const [now, setNow] = useState(Date.now());
  useEffect(() => { ticks.add(setNow); return () => ticks.delete(setNow); }, []);
  return now;
}

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto", style: "short" });
export function relative(ms, now) {
  const s = Math.round((ms - now) / 1000);
  const a = Math.abs(s);
  if (a < 45) return a < 5 ? "just now" : rtf.format(s, "second");
  if (a < 2700) return rtf.format(Math.round(s / 60), "minute");
  if (a < 64800) return rtf.format(Math.round(s / 3600), "hour");
  return rtf.format(Math.round(s / 86400), "day");
}

// Time shows a relative time; the absolute one (local and UTC) is its
// tooltip and its machine-readable datetime.
export function Time({ value }) {
  const now = useNow();
  if (!value) return html`<span class="muted">—</span>`;
  const d = new Date(value);
  if (isNaN(d)) return html`<span>${value}</span>`;
  const abs = d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" }) + " (" + d.toISOString() + ")";
  return html`<time datetime=${d.toISOString()} title=${abs}>${relative(d.getTime(), now)}</time>`;
}

// CopyButton copies text to the clipboard and says so; where the clipboard
// is refused it selects the target element so the user can copy by hand.
export function CopyButton({ text, what, target }) {
  const [state, setState] = useState("");
  async function copy() {
    try {
      await navigator.clipboard.writeText(text);
      setState("Copied");
    } catch {
      const el = target && document.getElementById(target);
      if (el) {
        const range = document.createRange();
        range.selectNodeContents(el);
        const sel = getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
      }
      setState("Selected: press Ctrl+C");
    }
    setTimeout(() => setState(""), 2500);
  }
  return html`<button type="button" class="small" onClick=${copy} aria-label=${"Copy " + what}>
    ${state || "Copy"}</button><span class="sr-only" aria-live="polite">${state}</span>`;
}

// ErrorBox explains a failed call in words a person can act on.
export function ErrorBox({ error, what }) {
  if (!error) return null;
  let text = error.message || String(error);
  if (error.kind === "forbidden") {
    const m = /needs scope "([a-z]+)"/.exec(text);
    text = m ? `Your token lacks the "${m[1]}" scope needed to ${what || "do this"}. (${text})` : `Permission denied: ${text}`;
  } else if (error.kind === "unauthenticated") {
    text = "Your token was not accepted; sign in again.";
  } else if (error.status === 0) {
    text = "The server cannot be reached. Is klingfan running?";
  }
  return html`<div class="error" role="alert">${what ? html`<strong>Could not ${what}. </strong>` : ""}${text}</div>`;
}

// Unavailable is shown where this server does not have an API yet (the
// Jobs or Consumer groups API on an older build).
export function Unavailable({ name, path }) {
  return html`<div class="notice" role="status">
    <strong>${name} are not available on this server.</strong> It does not serve <code>${path}</code> yet; upgrade klingfan to a version with the ${name} API.
  </div>`;
}

// Dialog is a modal <dialog>: focus moves into it, Escape closes it and
// focus returns where it was.
export function Dialog({ open, title, onClose, children }) {
  const ref = useRef();
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  return html`<dialog ref=${ref} aria-label=${title} onClose=${onClose} onCancel=${onClose}>
    <h2>${title}</h2>
    ${open ? children : null}
  </dialog>`;
}

// Pretty shows JSON indented in a scrollable block with a copy button.
export function Pretty({ id, value, what }) {
  const text = typeof value === "string" ? value : JSON.stringify(value, null, 2);
  return html`<div class="code-block">
    <div class="code-actions"><${CopyButton} text=${text} what=${what} target=${id} /></div>
    <pre id=${id} tabindex="0" aria-label=${what}>${text}</pre>
  </div>`;
}

// StatusBadge colours a job status or event type.
export function Badge({ value, prefix }) {
  if (!value) return html`<span class="badge">unknown</span>`;
  const short = value.startsWith(prefix) ? value.slice(prefix.length).toLowerCase() : value.toLowerCase();
  const tone = /completed|succeeded/.test(short) ? "ok" : /failed/.test(short) ? "bad" : /cancelled/.test(short) ? "warn" : /processing/.test(short) ? "busy" : "";
  return html`<span class=${"badge " + tone}>${short.replace(/^video_/, "").replace(/_/g, " ")}</span>`;
}
