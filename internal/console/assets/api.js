// The REST API as the console uses it: one place that attaches the bearer
// token, turns error bodies into ApiError, and reads NDJSON streams.

const TOKEN_KEY = "klingfan.token";

// The token lives in sessionStorage only: gone when the tab closes, never
// in a cookie, never in the address bar after it has been read.
export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) || "",
  set: (t) => sessionStorage.setItem(TOKEN_KEY, t),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

// takeTokenFromURL reads #token=T or #/route?token=T and rewrites the
// address bar without it (history.replaceState, so the token is not left
// in the history either). A tab with no token adopts it: that is signing
// in by link. A tab signed in with another token does not: whoever made
// the link chose it, and a crafted link must not quietly sign the tab in
// as its sender. The token is offered instead (onTokenOffered), and only
// acceptOfferedToken adopts it. It returns true when it found one.
export function takeTokenFromURL() {
  const hash = location.hash.slice(1);
  let route = hash, query = "";
  const q = hash.indexOf("?");
  if (q >= 0) { route = hash.slice(0, q); query = hash.slice(q + 1); }
  if (!route.startsWith("/")) { query = route; route = ""; }
  const params = new URLSearchParams(query);
  const t = params.get("token");
  if (!t) return false;
  params.delete("token");
  const rest = params.toString();
  const clean = location.pathname + location.search + (route || rest ? "#" + route + (rest ? "?" + rest : "") : "");
  history.replaceState(null, "", clean);
  const current = token.get();
  if (!current || current === t) {
    token.set(t);
  } else {
    offered = t;
    offerListeners.forEach((fn) => fn(t));
  }
  return true;
}

// offered is a token from a link waiting for the user's word.
let offered = null;
const offerListeners = new Set();

// onTokenOffered registers fn, called with a token a link offered; it
// returns the function that unregisters it.
export function onTokenOffered(fn) {
  offerListeners.add(fn);
  if (offered) fn(offered);
  return () => offerListeners.delete(fn);
}

// acceptOfferedToken signs the tab in with the offered token; declining
// forgets it.
export function acceptOfferedToken() {
  if (offered) token.set(offered);
  offered = null;
}
export function declineOfferedToken() { offered = null; }

// ApiError carries the HTTP status and the server's message. kind says what
// the console should do about it.
export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
  get kind() {
    if (this.status === 401) return "unauthenticated";
    if (this.status === 403) return "forbidden";
    if (this.status === 404 || this.status === 501) return "missing";
    return "error";
  }
}

// Listeners told when the server rejects the token, so the app can send the
// user to sign in.
const unauthenticated = new Set();
export function onUnauthenticated(fn) { unauthenticated.add(fn); return () => unauthenticated.delete(fn); }

// errorFrom turns a failed response into an ApiError. A 401 signs the user
// out only when the request carried the token still in use: a late answer
// to a request made with an older token must not throw away a new one.
async function errorFrom(resp, sentToken) {
  let message = resp.statusText || `HTTP ${resp.status}`, code;
  try {
    const body = await resp.json();
    const e = body.error && typeof body.error === "object" ? body.error : body;
    if (typeof e.message === "string" && e.message) message = e.message;
    else if (typeof body.error === "string") message = body.error;
    code = e.code;
  } catch { /* not JSON: keep the status text */ }
  const err = new ApiError(resp.status, message, code);
  if (resp.status === 401 && sentToken === token.get()) unauthenticated.forEach((fn) => fn(err));
  return err;
}

function headers(extra) {
  const h = { Accept: "application/json", ...extra };
  const t = token.get();
  if (t) h.Authorization = "Bearer " + t;
  return h;
}

// query builds a query string from an object; arrays repeat the key and
// empty values are left out, so parameters an older server does not know
// (jobKinds, filter) are only sent when the user set them.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === "") continue;
    if (Array.isArray(v)) v.filter((x) => x !== "").forEach((x) => q.append(k, x));
    else q.append(k, String(v));
  }
  const s = q.toString();
  return s ? "?" + s : "";
}

// call sends one request and returns the decoded JSON body.
export async function call(method, path, body, opts = {}) {
  const init = { method, headers: headers(body !== undefined ? { "Content-Type": "application/json" } : {}), signal: opts.signal, cache: "no-store" };
  if (body !== undefined) init.body = JSON.stringify(body);
  const sent = token.get();
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "the server cannot be reached");
  }
  if (!resp.ok) throw await errorFrom(resp, sent);
  const text = await resp.text();
  return text ? JSON.parse(text) : {};
}

export const get = (path, params, opts) => call("GET", path + query(params), undefined, opts);
export const post = (path, body, opts) => call("POST", path, body ?? {}, opts);
export const patch = (path, body, opts) => call("PATCH", path, body, opts);
export const del = (path, opts) => call("DELETE", path, undefined, opts);

// stream reads a newline-delimited JSON response (grpc-gateway wraps each
// message as {"result": ...} or {"error": ...}). onOpen runs once the
// response headers arrived, which the server sends only when the
// subscription is live. It resolves when the stream ends and rejects with
// an ApiError on an error line or status.
export async function stream(path, params, { signal, onOpen, onMessage }) {
  const sent = token.get();
  let resp;
  try {
    resp = await fetch(path + query(params), { headers: headers({ Accept: "application/x-ndjson" }), signal, cache: "no-store" });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "the server cannot be reached");
  }
  if (!resp.ok) throw await errorFrom(resp, sent);
  onOpen?.(resp);
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!line) continue;
      const msg = JSON.parse(line);
      if (msg.error) {
        const st = { 5: 404, 7: 403, 16: 401, 3: 400, 11: 400, 8: 429, 14: 503 }[msg.error.code] || 500;
        throw new ApiError(st, msg.error.message || "stream failed", msg.error.code);
      }
      if (msg.result) onMessage(msg.result);
    }
  }
}

// decodeBase64 turns a protojson bytes field into text (UTF-8).
export function decodeBase64(b64) {
  if (!b64) return "";
  const bin = atob(b64);
  const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

// Enum helpers: protojson names enums with their type prefix.
export const EVENT_TYPES = ["EVENT_TYPE_VIDEO_CREATED", "EVENT_TYPE_VIDEO_PROCESSING", "EVENT_TYPE_VIDEO_COMPLETED", "EVENT_TYPE_VIDEO_FAILED", "EVENT_TYPE_VIDEO_CANCELLED"];
export const JOB_KINDS = ["JOB_KIND_VIDEO", "JOB_KIND_IMAGE", "JOB_KIND_AUDIO", "JOB_KIND_VOICE", "JOB_KIND_ELEMENT", "JOB_KIND_SUBTITLE"];
export const JOB_STATUSES = ["JOB_STATUS_SUBMITTED", "JOB_STATUS_PROCESSING", "JOB_STATUS_SUCCEEDED", "JOB_STATUS_FAILED", "JOB_STATUS_CANCELLED"];
export const SCHEMES = ["SIGNATURE_SCHEME_KLING_SIGNATURE", "SIGNATURE_SCHEME_STANDARD_WEBHOOKS", "SIGNATURE_SCHEME_URL_TOKEN"];

// label turns EVENT_TYPE_VIDEO_COMPLETED into "video completed".
export function label(enumName, prefix) {
  if (!enumName) return "";
  const p = prefix || enumName.replace(/^([A-Z]+_[A-Z]+)_.*/, "$1_");
  return enumName.startsWith(p) ? enumName.slice(p.length).toLowerCase().replace(/_/g, " ") : enumName;
}
