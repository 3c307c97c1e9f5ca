// Package docstest runs the documentation: the shell blocks of README.md's
// "Try it" and of the walkthroughs under docs/ are executed in order against
// a real klingfan built from this tree, their output is compared with what
// the page shows next to them, and the tables of status codes and scopes
// are checked against a server row by row. A page that drifts from the
// server fails `make test`.
//
// # What a page says to the test
//
// HTML comments, invisible on GitHub, placed on the line before a fence:
//
//   - <!-- docs-test: skip (reason) --> the block is not run; the reason is
//     required (it blocks, it needs certificates, ...).
//   - <!-- docs-test: background --> the block is started in the background
//     (a subscriber that waits for events) and the next block runs once the
//     server counts one more live subscription; it is stopped at the end of
//     the page.
//   - <!-- docs-test: output --> this fence is the expected output of the
//     block run just before it; <!-- docs-test: output (background) --> of
//     the last background block, waited for until it appears.
//   - <!-- docs-test: exit N --> the block must exit with status N.
//   - <!-- docs-test: synopsis klingctl SUBCOMMAND --> a usage block whose
//     flags must be exactly those of `klingctl SUBCOMMAND --help`.
//
// And anywhere in a page, <!-- docs-test: not run (reason) --> keeps the
// whole page from running (a NATS cluster, TLS certificates): every page
// with shell blocks either runs them or says why not.
//
// # How blocks run
//
// Each page gets a fresh server, started with the variables README's Try it
// puts before `make run` (port 0, a data directory of its own), and
// a working directory holding ./bin/klingfan, ./bin/klingctl and ./data, as
// after `make run`. Blocks run with bash (-e, -o pipefail); variables a block
// sets are kept for the next ones. localhost:8080 and localhost:9090 in a
// command become the server's addresses, and KLINGFAN_SERVER and
// KLINGFAN_HTTP_URL point klingctl at it. `curl` fails on an HTTP error
// (--fail-with-body is added), so a block that shows a refusal says so
// with an exit marker.
//
// # How output is compared
//
// Addresses, times, event ids, tokens, secrets and hashes are normalised on
// both sides. A JSON block matches when every field it shows is there with
// that value (a page may leave fields out; arrays have the length shown); a
// "…" inside a string matches anything. A text block matches line by line,
// runs of spaces compared as one, "…" matching anything.
package docstest
