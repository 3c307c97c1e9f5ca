// Package kling embeds the Kling contract corpus: the query answers under
// queries/, hand-written from Kling's own API pages (queries/SOURCES.md says
// which page each follows). klingsim answers with these files, ids, statuses
// and times substituted, so the simulator cannot answer a shape the corpus
// does not hold; the tests read the same files.
package kling

import "embed"

// Queries holds queries/*.json: whole HTTP answer bodies of Kling's task
// query API, named <family>.<call>.<status>.json.
//
//go:embed queries/*.json
var Queries embed.FS
