// Package console serves klingfan's web console: static pages embedded in
// the binary that call the REST API from the browser with a bearer token.
//
// The console holds no state and no secret on the server side. The browser
// keeps the token in sessionStorage and sends it in the Authorization header
// of every API call, so no cookie exists that another site could ride on.
// The Content-Security-Policy allows only the console's own scripts and
// styles and API calls to this origin; media previews of job outputs are the
// one thing loaded from elsewhere (Kling's CDN, over https).
package console

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// Path is where the console is mounted on the HTTP listener.
const Path = "/console/"

//go:embed assets
var assets embed.FS

// CSP is the Content-Security-Policy of every console response. No inline
// script or style, no eval, API calls to this origin only. Images, video and
// audio may come from https origins because job outputs live on Kling's CDN,
// but the pages load them only when the user asks for a preview: the URLs
// come from payloads, so showing them by themselves would let a sender make
// the browser call any host.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self' https:; media-src 'self' https:; font-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// contentTypes are set explicitly rather than left to the mime package,
// whose answers depend on the host's /etc/mime.types: a module script
// served with the wrong type does not run.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".mjs":  "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// Handler serves the console under Path. Requests for /console (no slash)
// are redirected to it.
func Handler() http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix(Path, http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == strings.TrimSuffix(Path, "/") {
			http.Redirect(w, r, Path, http.StatusMovedPermanently)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		// The assets change only with the binary; revalidating is cheap
		// and an upgraded server never runs a stale script.
		h.Set("Cache-Control", "no-cache")
		name := strings.TrimPrefix(r.URL.Path, Path)
		switch {
		case name == "":
			name = "index.html"
		case strings.HasSuffix(name, "/"):
			http.NotFound(w, r) // no directory listings
			return
		}
		if ct, ok := contentTypes[path.Ext(name)]; ok {
			h.Set("Content-Type", ct)
		}
		files.ServeHTTP(w, r)
	})
}
