package mangen

import (
	"regexp"
	"strings"
)

// Markdown writes the Markdown of sockd's docs (docs/units.md) to the
// page: "#" headings are left out (the page's NAME says it), "##"
// headings become sections, deeper ones subsections; paragraphs,
// "-"/"*"/"1." list items, indented and fenced code blocks, and tables,
// each row as a tagged paragraph (the first cell the tag, the others
// below it, each after its column's header). Inline: `code` and
// **strong** in bold, *emphasis* in italics, a link as its text.
// Anything else (HTML, nested lists) reads as text.
func (p *Page) Markdown(src string) {
	lines := strings.Split(strings.ReplaceAll(src, "\r\n", "\n"), "\n")
	for i := 0; i < len(lines); {
		line := lines[i]
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "":
			i++
		case strings.HasPrefix(line, "#"):
			level := len(line) - len(strings.TrimLeft(line, "#"))
			title := strings.TrimSpace(line[level:])
			switch {
			case level == 2:
				p.Section(plain(title))
			case level > 2:
				p.Subsection(plain(title))
			}
			i++
		case strings.HasPrefix(trimmed, "```"):
			var code []string
			for i++; i < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[i]), "```"); i++ {
				code = append(code, lines[i])
			}
			i++ // the closing fence
			p.Literal(code)
		case strings.HasPrefix(line, "    ") || strings.HasPrefix(line, "\t"):
			var code []string
			for ; i < len(lines) && (strings.HasPrefix(lines[i], "    ") || strings.HasPrefix(lines[i], "\t") || strings.TrimSpace(lines[i]) == ""); i++ {
				code = append(code, strings.TrimPrefix(strings.TrimPrefix(lines[i], "    "), "\t"))
			}
			for len(code) > 0 && strings.TrimSpace(code[len(code)-1]) == "" {
				code = code[:len(code)-1]
			}
			p.Literal(code)
		case strings.HasPrefix(trimmed, "|"):
			var rows []string
			for ; i < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i]), "|"); i++ {
				rows = append(rows, strings.TrimSpace(lines[i]))
			}
			p.table(rows)
		case listItem.MatchString(line):
			text := listItem.ReplaceAllString(line, "")
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "" && !listItem.MatchString(lines[i]) && !startsBlock(lines[i]); i++ {
				text += "\n" + strings.TrimSpace(lines[i])
			}
			p.Bullet(Inline(text))
		default:
			text := trimmed
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "" && !listItem.MatchString(lines[i]) && !startsBlock(lines[i]); i++ {
				text += "\n" + strings.TrimSpace(lines[i])
			}
			text = strings.TrimPrefix(text, "> ")
			p.Para(Inline(text))
		}
	}
}

var listItem = regexp.MustCompile(`^\s{0,3}([-*]|[0-9]+\.)\s+`)

// startsBlock reports whether line starts a heading, a fence or a table,
// which end a paragraph.
func startsBlock(line string) bool {
	t := strings.TrimSpace(line)
	return strings.HasPrefix(line, "#") || strings.HasPrefix(t, "```") || strings.HasPrefix(t, "|")
}

// table writes a Markdown table, a tagged paragraph per row.
func (p *Page) table(rows []string) {
	var header []string
	body := rows
	if len(rows) >= 2 && tableRule.MatchString(rows[1]) {
		header, body = cells(rows[0]), rows[2:]
	} else if len(rows) >= 1 && tableRule.MatchString(rows[0]) {
		body = rows[1:]
	}
	for _, r := range body {
		c := cells(r)
		if len(c) == 0 {
			continue
		}
		var text []string
		for j, cell := range c[1:] {
			if cell == "" {
				continue
			}
			if j+1 < len(header) && header[j+1] != "" {
				text = append(text, Italic(Inline(header[j+1])+":")+" "+Inline(cell))
			} else {
				text = append(text, Inline(cell))
			}
		}
		p.Tagged(Inline(c[0]), "")
		for j, t := range text {
			if j > 0 {
				p.Break()
			}
			p.lines(t)
		}
	}
}

var tableRule = regexp.MustCompile(`^\|?(\s*:?-+:?\s*\|)+\s*:?-*:?\s*$`)

// cells splits a table row at the pipes that are not escaped (\|) and
// not inside a code span.
func cells(row string) []string {
	row = strings.TrimSpace(row)
	row = strings.TrimPrefix(row, "|")
	if strings.HasSuffix(row, "|") && !strings.HasSuffix(row, `\|`) {
		row = row[:len(row)-1]
	}
	var out []string
	var b strings.Builder
	code := false
	for i := 0; i < len(row); i++ {
		c := row[i]
		switch {
		case c == '\\' && i+1 < len(row) && row[i+1] == '|':
			b.WriteByte('|')
			i++
		case c == '`':
			code = !code
			b.WriteByte(c)
		case c == '|' && !code:
			out = append(out, strings.TrimSpace(b.String()))
			b.Reset()
		default:
			b.WriteByte(c)
		}
	}
	return append(out, strings.TrimSpace(b.String()))
}

// plain is Markdown inline text without its markup: for headings, which
// are arguments of a request.
func plain(md string) string {
	md = link.ReplaceAllString(md, "$1")
	return strings.NewReplacer("`", "", "**", "").Replace(md)
}

var link = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)

// Inline turns Markdown inline text into roff: `code` and **strong** in
// bold, *emphasis* in italics, [text](target) as its text, backslash
// escapes as the character.
func Inline(md string) string {
	md = link.ReplaceAllString(md, "$1")
	var b strings.Builder
	bold, italic := false, false
	font := func() string {
		switch {
		case bold:
			return `\fB`
		case italic:
			return `\fI`
		}
		return `\fR`
	}
	for i := 0; i < len(md); {
		c := md[i]
		switch {
		case c == '`':
			n := 1
			for i+n < len(md) && md[i+n] == '`' {
				n++
			}
			fence := md[i : i+n]
			end := strings.Index(md[i+n:], fence)
			if end < 0 {
				b.WriteString(Text(fence))
				i += n
				continue
			}
			// As CommonMark: line ends are spaces, and one space at
			// each end goes when both ends have one.
			code := strings.ReplaceAll(md[i+n:i+n+end], "\n", " ")
			if len(code) > 2 && code[0] == ' ' && code[len(code)-1] == ' ' && strings.TrimSpace(code) != "" {
				code = code[1 : len(code)-1]
			}
			b.WriteString(`\fB` + Literally(code) + font())
			i += n + end + n
		case c == '*' && strings.HasPrefix(md[i:], "**"):
			bold = !bold
			b.WriteString(font())
			i += 2
		case c == '*' && (italic || i+1 < len(md) && md[i+1] != ' ' && strings.Contains(md[i+1:], "*")):
			italic = !italic
			b.WriteString(font())
			i++
		case c == '\\' && i+1 < len(md) && strings.ContainsRune("\\`*_{}[]()#+-.!|<>", rune(md[i+1])):
			b.WriteString(Text(md[i+1 : i+2]))
			i += 2
		default:
			j := i + 1
			for j < len(md) && !strings.ContainsRune("`*\\", rune(md[j])) {
				j++
			}
			b.WriteString(Text(md[i:j]))
			i = j
		}
	}
	if bold || italic {
		b.WriteString(`\fR`)
	}
	return b.String()
}
