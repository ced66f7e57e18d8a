package main

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// sockd __man is made from the flag set run defines: every flag that
// sockd's source defines (read here from the source, not from the flag
// set) has its entry in OPTIONS, and the page is made again, not kept.
func TestManPageHasEveryFlag(t *testing.T) {
	t.Setenv("SOCKD_API", "/from/the/environment.sock")
	var out, errb bytes.Buffer
	code, err := run([]string{manVerb}, &out, &errb)
	if code != 0 || err != nil || errb.Len() > 0 {
		t.Fatalf("sockd __man: %d %v %s", code, err, errb.String())
	}
	page := out.String()
	for _, h := range []string{".TH \"SOCKD\" \"8\"", ".SH \"NAME\"", ".SH \"SYNOPSIS\"", ".SH \"OPTIONS\"", ".SH \"SIGNALS\""} {
		if !strings.Contains(page, h) {
			t.Errorf("no %s in sockd.8", h)
		}
	}
	if strings.Contains(page, "/from/the/environment.sock") {
		t.Error("sockd.8 shows the default $SOCKD_API of the shell that made it")
	}
	names := sourceFlags(t)
	if len(names) < 10 {
		t.Fatalf("found only %d flags in the source: %v", len(names), names)
	}
	for _, name := range names {
		if !strings.Contains(page, ".TP\n\\fB"+strings.ReplaceAll("--"+name, "-", `\-`)+`\fR`) {
			t.Errorf("flag --%s is not an option of sockd.8", name)
		}
	}
}

// sourceFlags are the names of the flags that cmd/sockd's files define
// on a flag set (fs.String("units", …), fs.Var(&x, "api-admin-uid", …)),
// but for sockd verify's.
func sourceFlags(t *testing.T) []string {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			if fn, ok := n.(*ast.FuncDecl); ok && fn.Name.Name == "verify" {
				return false // sockd verify's own flags: its COMMANDS entry
			}
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "fs" {
				return true
			}
			i := 0 // the name is the first argument, or the second of …Var
			if strings.HasSuffix(sel.Sel.Name, "Var") {
				i = 1
			}
			switch strings.TrimSuffix(sel.Sel.Name, "Var") {
			case "String", "Bool", "Int", "Int64", "Uint", "Uint64", "Duration", "Float64", "Func", "BoolFunc", "Text", "":
			default:
				return true
			}
			if len(call.Args) <= i {
				return true
			}
			if lit, ok := call.Args[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				name, _ := strconv.Unquote(lit.Value)
				names = append(names, name)
			}
			return true
		})
	}
	return names
}
