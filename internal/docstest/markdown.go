package docstest

import (
	"fmt"
	"regexp"
	"strings"
)

// A Block is one fenced code block of a page.
type Block struct {
	Line      int    // 1-based line of the opening fence
	Lang      string // the fence's info string: "sh", "json", ""
	Text      string // the block's content
	Directive string // the docs-test comment just before it, without the prefix: "skip (blocks)"
	Section   string // the heading it is under
}

// Shell reports whether the block is a shell session to run.
func (b Block) Shell() bool { return b.Lang == "sh" || b.Lang == "bash" || b.Lang == "console" }

// A Page is a Markdown file's blocks and tables in order.
type Page struct {
	Path   string
	Blocks []Block
	// NotRun is the reason a page gives for not being run, if it does.
	NotRun string
	Tables []Table
}

// A Table is a Markdown table: its header cells and rows of cells.
type Table struct {
	Line    int
	Section string
	Header  []string
	Rows    [][]string
}

var (
	directiveRE = regexp.MustCompile(`^<!--\s*docs-test:\s*(.*?)\s*-->$`)
	notRunRE    = regexp.MustCompile(`^not run \((.+)\)$`)
)

// Parse splits a Markdown page into its fenced blocks and tables.
func Parse(path, text string) (*Page, error) {
	p := &Page{Path: path}
	lines := strings.Split(text, "\n")
	var (
		directive string // pending, for the next fence
		section   string
	)
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		trimmed := strings.TrimSpace(line)
		if m := directiveRE.FindStringSubmatch(trimmed); m != nil {
			if nr := notRunRE.FindStringSubmatch(m[1]); nr != nil {
				p.NotRun = nr[1]
				continue
			}
			directive = m[1]
			continue
		}
		if strings.HasPrefix(trimmed, "#") && !strings.HasPrefix(trimmed, "#!") {
			section = strings.TrimSpace(strings.TrimLeft(trimmed, "#"))
		}
		if strings.HasPrefix(trimmed, "```") {
			indent := line[:len(line)-len(strings.TrimLeft(line, " "))]
			b := Block{Line: i + 1, Lang: strings.TrimSpace(strings.TrimPrefix(trimmed, "```")), Directive: directive, Section: section}
			directive = ""
			var body []string
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
				body = append(body, strings.TrimPrefix(lines[i], indent))
			}
			if i == len(lines) {
				return nil, fmt.Errorf("%s:%d: fence never closed", path, b.Line)
			}
			b.Text = strings.Join(body, "\n") + "\n"
			p.Blocks = append(p.Blocks, b)
			continue
		}
		if strings.HasPrefix(trimmed, "|") && i+1 < len(lines) && isSeparator(lines[i+1]) {
			t := Table{Line: i + 1, Section: section, Header: cells(trimmed)}
			for i += 2; i < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i]), "|"); i++ {
				t.Rows = append(t.Rows, cells(strings.TrimSpace(lines[i])))
			}
			i--
			p.Tables = append(p.Tables, t)
			continue
		}
		if trimmed != "" {
			directive = "" // a directive belongs to the fence right after it
		}
	}
	return p, nil
}

func isSeparator(line string) bool {
	t := strings.TrimSpace(line)
	return strings.HasPrefix(t, "|") && strings.Trim(t, "|-: ") == ""
}

// cells splits a table row, keeping `a | b` inside backquotes together.
func cells(row string) []string {
	row = strings.TrimSuffix(strings.TrimPrefix(row, "|"), "|")
	var (
		out  []string
		cur  strings.Builder
		code bool
	)
	for _, r := range row {
		switch {
		case r == '`':
			code = !code
			cur.WriteRune(r)
		case r == '|' && !code:
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	return append(out, strings.TrimSpace(cur.String()))
}

// TableAfter returns the first table of the page whose header starts with
// the given cells, in the section named, or nil.
func (p *Page) TableAfter(section string, header ...string) *Table {
	for i := range p.Tables {
		t := &p.Tables[i]
		if section != "" && t.Section != section {
			continue
		}
		if len(t.Header) >= len(header) && equalFold(t.Header[:len(header)], header) {
			return t
		}
	}
	return nil
}

func equalFold(a, b []string) bool {
	for i := range a {
		if !strings.EqualFold(a[i], b[i]) {
			return false
		}
	}
	return true
}
