package mangen

import (
	"flag"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Usage is a usage text taken apart, as ParseUsage reads it.
type Usage struct {
	Synopsis []string // the command lines after "usage:", one per form
	Blocks   []Block
}

// Block is a paragraph (Para) or a list of terms with their
// descriptions (Items, under Heading when a line such as "Verbs:" came
// right before the list).
type Block struct {
	Para    string
	Heading string
	Items   []Item
}

// Item is one entry of a list: "  restart UNIT [--wait]    restart
// without dropping connections".
type Item struct{ Term, Text string }

var columnGap = regexp.MustCompile(`\s{2,}`)

// ParseUsage reads a usage text in the layout of sockd's and sockctl's:
// "usage: " and the synopsis, one form per line (the later ones
// indented); then, after a blank line, paragraphs (lines at the left
// margin) and lists (indented lines: the term, two or more spaces, the
// text; deeper indented lines continue the text). A blank line ends a
// paragraph or a list; an indented line right after a paragraph starts
// a list, which takes a one-line paragraph ending in ":" as its heading.
func ParseUsage(text string) Usage {
	var u Usage
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	i := 0
	if len(lines) > 0 && strings.HasPrefix(lines[0], "usage: ") {
		u.Synopsis = append(u.Synopsis, strings.TrimPrefix(lines[0], "usage: "))
		for i = 1; i < len(lines) && strings.HasPrefix(lines[i], " ") && strings.TrimSpace(lines[i]) != ""; i++ {
			u.Synopsis = append(u.Synopsis, strings.TrimSpace(lines[i]))
		}
	}
	var cur *Block
	termIndent := 0
	flush := func() {
		if cur != nil {
			u.Blocks = append(u.Blocks, *cur)
			cur = nil
		}
	}
	for ; i < len(lines); i++ {
		line := strings.TrimRight(lines[i], " ")
		if line == "" {
			flush()
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " "))
		text := strings.TrimSpace(line)
		switch {
		case indent == 0:
			if cur != nil && cur.Items != nil {
				flush()
			}
			if cur == nil {
				cur = &Block{}
			}
			cur.Para = strings.TrimSpace(cur.Para + " " + text)
		case cur != nil && cur.Items != nil && indent > termIndent:
			it := &cur.Items[len(cur.Items)-1]
			it.Text = strings.TrimSpace(it.Text + " " + text)
		default:
			if cur == nil || cur.Items == nil {
				heading := ""
				if cur != nil {
					if p := cur.Para; strings.HasSuffix(p, ":") && !strings.Contains(p, ". ") {
						heading = strings.TrimSuffix(p, ":")
						cur = nil
					}
				}
				flush()
				cur = &Block{Heading: heading, Items: []Item{}}
				termIndent = indent
			}
			term, desc, _ := strings.Cut(columnGap.ReplaceAllString(text, "\x00"), "\x00")
			cur.Items = append(cur.Items, Item{Term: term, Text: desc})
		}
	}
	flush()
	return u
}

// Option is one command-line option: Flag is its name with dashes
// ("--units"), Arg what its value is called ("DIR", "" for a switch),
// Text what it does.
type Option struct{ Flag, Arg, Text string }

var synopsisArg = regexp.MustCompile(`--([a-z0-9-]+)[ =]([A-Za-z|_.-]+)`)

// FlagOptions lists the flags of fs in order of name. A value's name is
// the one the synopsis gives it ("--units DIR"), else the last word of
// the flag's name in capitals (--api-mode: MODE). A default that is not
// the zero value is added to the text, unless the text already speaks
// of its default.
func FlagOptions(fs *flag.FlagSet, synopsis []string) []Option {
	args := map[string]string{}
	for _, s := range synopsis {
		for _, m := range synopsisArg.FindAllStringSubmatch(s, -1) {
			if m[2] != "false" && m[2] != "true" {
				args[m[1]] = m[2]
			}
		}
	}
	var opts []Option
	fs.VisitAll(func(f *flag.Flag) {
		_, text := flag.UnquoteUsage(f)
		o := Option{Flag: "--" + f.Name, Text: text}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			if f.DefValue == "true" {
				o.Text += "; on by default, " + o.Flag + "=false turns it off"
			}
		} else {
			o.Arg = args[f.Name]
			if o.Arg == "" {
				parts := strings.Split(f.Name, "-")
				o.Arg = strings.ToUpper(parts[len(parts)-1])
			}
			if f.DefValue != "" && f.DefValue != "0" && !strings.Contains(text, "default") {
				o.Text += " (default " + f.DefValue + ")"
			}
		}
		opts = append(opts, o)
	})
	sort.Slice(opts, func(i, j int) bool { return opts[i].Flag < opts[j].Flag })
	return opts
}

// Options writes opts as tagged paragraphs.
func (p *Page) Options(opts []Option) {
	for _, o := range opts {
		tag := Bold(Literally(o.Flag))
		if o.Arg != "" {
			tag += " " + Italic(Literally(o.Arg))
		}
		p.Tagged(tag, Text(o.Text))
	}
}

// Synopsis writes the SYNOPSIS section: each form on a line of its own,
// the program's name in bold.
func (p *Page) Synopsis(forms []string) {
	p.Section("SYNOPSIS")
	for i, f := range forms {
		if i > 0 {
			p.Break()
		}
		name, rest, _ := strings.Cut(f, " ")
		p.lines(Bold(Literally(name)) + " " + Literally(rest))
	}
}

// Date is the date a page carries: SOURCE_DATE_EPOCH's (reproducible
// builds) if set, else none.
func Date() string {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return ""
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return ""
	}
	return time.Unix(n, 0).UTC().Format("2006-01-02")
}
