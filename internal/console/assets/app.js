// The console's shell: sign-in, the hash router, navigation and the status
// bar. Pages live in pages/*.js.
import { html, render, useEffect, useState } from "./vendor/htm-preact-standalone.mjs";
import { acceptOfferedToken, declineOfferedToken, get, onTokenOffered, onUnauthenticated, takeTokenFromURL, token } from "./api.js";
import { ErrorBox } from "./ui.js";
import { StatusBar } from "./status.js";
import { Tail } from "./pages/tail.js";
import { EventPage } from "./pages/event.js";
import { JobsPage, JobPage } from "./pages/jobs.js";
import { WebhooksPage } from "./pages/webhooks.js";
import { GroupsPage } from "./pages/groups.js";

takeTokenFromURL();

// parseRoute splits "#/jobs/X?status=..." into its parts.
function parseRoute() {
  const hash = location.hash.replace(/^#/, "");
  const [path, q = ""] = hash.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(q) };
}

function useRoute() {
  const [route, setRoute] = useState(parseRoute());
  useEffect(() => {
    const on = () => { takeTokenFromURL(); setRoute(parseRoute()); };
    addEventListener("hashchange", on);
    // The fragment may have changed between the first render and this
    // effect (effects run after paint): catch up with it now.
    on();
    return () => removeEventListener("hashchange", on);
  }, []);
  return route;
}

const NAV = [
  ["Live tail", "#/", (p) => p.length === 0 || p[0] === "events"],
  ["Jobs", "#/jobs", (p) => p[0] === "jobs"],
  ["Webhooks", "#/webhooks", (p) => p[0] === "webhooks"],
  ["Groups", "#/groups", (p) => p[0] === "groups"],
];

function SignIn({ reason, onSignedIn }) {
  const [value, setValue] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  async function submit(e) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    token.set(value.trim());
    try {
      // Any token that may read the log may use the console; pages that
      // need admin say so when they are refused.
      await get("/v1/events", { pageSize: 1 });
      onSignedIn();
    } catch (err) {
      token.clear();
      setError(err);
    } finally {
      setBusy(false);
    }
  }
  return html`<main class="signin" id="main">
    <form onSubmit=${submit} aria-labelledby="signin-title">
      <h1 id="signin-title">Sign in to klingfan</h1>
      ${reason ? html`<p class="notice" role="status">${reason}</p>` : null}
      <label for="token">API token</label>
      <input id="token" name="token" type="password" autocomplete="off" required value=${value}
        onInput=${(e) => setValue(e.target.value)} aria-describedby="token-help" />
      <p id="token-help" class="muted">An <code>admin</code> or <code>subscribe</code> token. It is kept in this tab only
        (sessionStorage) and sent as <code>Authorization: Bearer</code>.
        The first start prints one and saves it as <code>data/admin-token</code>.</p>
      <button type="submit" class="primary" disabled=${busy}>${busy ? "Checking…" : "Sign in"}</button>
      <${ErrorBox} error=${error} what="sign in" />
    </form>
  </main>`;
}

// LinkToken asks before a token from a link replaces the one this tab is
// signed in with.
function LinkToken({ onDone }) {
  function use() { acceptOfferedToken(); onDone(); location.reload(); }
  function keep() { declineOfferedToken(); onDone(); }
  return html`<div class="notice link-token" role="alertdialog" aria-labelledby="link-token-text" data-testid="link-token">
    <p id="link-token-text">This link carries an API token other than the one this tab is signed in with.
      Whoever made the link chose it: use it only if you trust them, since what you do next is done as that token.</p>
    <button type="button" class="small" data-testid="link-token-use" onClick=${use}>Use the link's token</button>
    <button type="button" class="small ghost" data-testid="link-token-keep" onClick=${keep}>Keep my token</button>
  </div>`;
}

function App() {
  const route = useRoute();
  const [signedIn, setSignedIn] = useState(!!token.get());
  const [reason, setReason] = useState("");
  const [offer, setOffer] = useState(false);
  useEffect(() => onTokenOffered(() => setOffer(true)), []);
  useEffect(() => onUnauthenticated(() => {
    token.clear();
    setReason("Your token was refused or has expired. Sign in again.");
    setSignedIn(false);
  }), []);

  // A token can also arrive later in the fragment (#/route?token=T) of a
  // link opened in this tab.
  useEffect(() => { if (!signedIn && token.get()) { setReason(""); setSignedIn(true); } }, [route]);

  if (!signedIn) return html`<${SignIn} reason=${reason} onSignedIn=${() => { setReason(""); setSignedIn(true); }} />`;

  const [section, arg] = route.parts;
  let page;
  switch (section) {
    case undefined: page = html`<${Tail} />`; break;
    case "events": page = arg ? html`<${EventPage} sequence=${arg} />` : html`<${Tail} />`; break;
    case "jobs": page = arg ? html`<${JobPage} jobId=${arg} />` : html`<${JobsPage} params=${route.params} />`; break;
    case "webhooks": page = html`<${WebhooksPage} />`; break;
    case "groups": page = html`<${GroupsPage} />`; break;
    default: page = html`<main class="page" id="main"><h1>Not found</h1><p>No page at <code>${location.hash}</code>. <a href="#/">Open the live tail</a>.</p></main>`;
  }
  function signOut() { token.clear(); setReason(""); setSignedIn(false); }
  return html`
    <a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); document.getElementById("main")?.focus(); }}>Skip to content</a>
    <header class="top">
      <a class="brand" href="#/" aria-label="klingfan console home">klingfan</a>
      <nav aria-label="Sections">
        ${NAV.map(([name, href, active]) => html`<a href=${href} aria-current=${active(route.parts) ? "page" : undefined}>${name}</a>`)}
      </nav>
      <button type="button" class="small ghost" onClick=${signOut}>Sign out</button>
    </header>
    ${offer ? html`<${LinkToken} onDone=${() => setOffer(false)} />` : null}
    ${page}
    <${StatusBar} />`;
}

render(html`<${App} />`, document.getElementById("app"));
