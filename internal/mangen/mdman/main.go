// Command mdman writes a man page made from a Markdown file of docs/:
//
//	go run ./internal/mangen/mdman -name sockd.units -section 5 \
//		-what "unit files of sockd" -see "sockd(8), sockctl(1)" docs/units.md
//
// The page is NAME, then DESCRIPTION with the file's text up to its
// first "##" heading, then a section per "##" heading, then SEE ALSO.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"

	"github.com/sockd/sockd/internal/mangen"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mdman:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("mdman", flag.ContinueOnError)
	name := fs.String("name", "", "the page's name (sockd.units)")
	section := fs.String("section", "", "its manual section (5)")
	what := fs.String("what", "", "the one line of NAME after the name")
	source := fs.String("source", "sockd", "the page's source (footer)")
	manual := fs.String("manual", "", "the manual's title (header; default: the section's)")
	see := fs.String("see", "", "SEE ALSO's text")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *name == "" || *section == "" || *what == "" {
		return fmt.Errorf("usage: mdman -name NAME -section N -what TEXT [-see TEXT] FILE.md")
	}
	src, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("read markdown: %w", err)
	}
	out := bufio.NewWriter(os.Stdout)
	p := mangen.NewPage(out, *name, *section, mangen.Date(), *source, *manual)
	p.Name(*name, *what)
	p.Section("DESCRIPTION")
	p.Markdown(string(src))
	if *see != "" {
		p.Section("SEE ALSO")
		p.Para(mangen.Text(*see))
	}
	if err := p.Err(); err != nil {
		return fmt.Errorf("write page: %w", err)
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("write page: %w", err)
	}
	return nil
}
