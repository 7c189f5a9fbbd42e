package juxta_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// Layout limits (issue 10, acceptance 4): a non-test .go file has at most
// maxFileLines lines, and a function at most maxFuncLines lines unless a
// `// long: <reason>` line heads it (in its doc comment or as the first line
// of its body).
const (
	maxFileLines = 600
	maxFuncLines = 100
	longMarker   = "// long:"
	// internalPrefix is the module's internal tree, closed to examples.
	internalPrefix = "github.com/juxta-p2p/juxta/internal/"
)

// layoutProblems walks the Go files under root (skipping tests, testdata,
// hidden and underscore folders) and lists each file over the line limit and
// each function over the limit without a reason, as "path: what".
func layoutProblems(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if n := strings.Count(string(src), "\n"); n > maxFileLines {
			out = append(out, fmt.Sprintf("%s: %d lines (limit %d): split it by concern", rel, n, maxFileLines))
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, src, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		// An example shows what a user of the module can write, and a user
		// cannot import the module's internal packages.
		if strings.HasPrefix(filepath.ToSlash(rel), "examples/") {
			for _, im := range f.Imports {
				if strings.HasPrefix(strings.Trim(im.Path.Value, `"`), internalPrefix) {
					out = append(out, fmt.Sprintf("%s: imports %s, which a user's program cannot", rel, im.Path.Value))
				}
			}
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			start, end := fset.Position(fn.Pos()).Line, fset.Position(fn.End()).Line
			if n := end - start + 1; n > maxFuncLines && !hasLongReason(fset, f, fn) {
				out = append(out, fmt.Sprintf("%s:%d: func %s is %d lines (limit %d): split it or give a one-line %q reason at its top",
					rel, start, funcName(fn), n, maxFuncLines, longMarker+" <reason>"))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// hasLongReason reports whether fn carries a non-empty `// long: reason` in
// its doc comment or as the first comment inside its body.
func hasLongReason(fset *token.FileSet, f *ast.File, fn *ast.FuncDecl) bool {
	reason := func(c *ast.Comment) bool {
		return strings.HasPrefix(c.Text, longMarker) && strings.TrimSpace(strings.TrimPrefix(c.Text, longMarker)) != ""
	}
	if fn.Doc != nil {
		for _, c := range fn.Doc.List {
			if reason(c) {
				return true
			}
		}
	}
	open := fset.Position(fn.Body.Lbrace).Line
	for _, g := range f.Comments {
		if g.Pos() < fn.Body.Lbrace || g.End() > fn.Body.Rbrace {
			continue
		}
		// The first comment in the body, on the line after the brace.
		return fset.Position(g.Pos()).Line == open+1 && reason(g.List[0])
	}
	return false
}

func funcName(fn *ast.FuncDecl) string {
	if fn.Recv == nil || len(fn.Recv.List) == 0 {
		return fn.Name.Name
	}
	recv := fn.Recv.List[0].Type
	if s, ok := recv.(*ast.StarExpr); ok {
		recv = s.X
	}
	switch r := recv.(type) {
	case *ast.IndexExpr:
		recv = r.X
	case *ast.IndexListExpr:
		recv = r.X
	}
	if id, ok := recv.(*ast.Ident); ok {
		return id.Name + "." + fn.Name.Name
	}
	return fn.Name.Name
}

// TestLayout: no non-test .go file in the module is over 600 lines, no
// function over 100 lines lacks a `// long: <reason>` line at its top, and
// no example program imports the module's internal packages.
func TestLayout(t *testing.T) {
	for _, p := range layoutProblems(t, ".") {
		t.Error(p)
	}
}

// TestLayoutCheckCatchesProblems plants a long file, a long function without
// a reason and two with one, and an example importing internal/ (in its
// program, and harmlessly in its test), and expects the check to flag exactly the bad ones.
func TestLayoutCheckCatchesProblems(t *testing.T) {
	dir := t.TempDir()
	body := strings.Repeat("\tx++\n", maxFuncLines)
	src := "package planted\n\nvar x int\n\n" +
		"func Short() { x++ }\n\n" +
		"func TooLong() {\n" + body + "}\n\n" +
		"// long: a table that reads best in one piece\nfunc Documented() {\n" + body + "}\n\n" +
		"func Inside() {\n\t// long: one state machine\n" + body + "}\n\n" +
		"func EmptyReason() {\n\t// long:\n" + body + "}\n" +
		strings.Repeat("\n", maxFileLines)
	if err := os.WriteFile(filepath.Join(dir, "planted.go"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "planted_test.go"), []byte("package planted\n"+strings.Repeat("\n", 2*maxFileLines)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "testdata"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "testdata", "big.go"), []byte("package big\n"+strings.Repeat("\n", 2*maxFileLines)), 0o600); err != nil {
		t.Fatal(err)
	}
	ex := filepath.Join(dir, "examples", "app")
	if err := os.MkdirAll(ex, 0o700); err != nil {
		t.Fatal(err)
	}
	imp := "package main\n\nimport _ \"" + internalPrefix + "stats\"\n"
	if err := os.WriteFile(filepath.Join(ex, "main.go"), []byte(imp), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ex, "main_test.go"), []byte(strings.Replace(imp, "main", "main_test", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(layoutProblems(t, dir), "\n")
	for _, want := range []string{"planted.go: ", "func TooLong is", "func EmptyReason is", "main.go: imports"} {
		if !strings.Contains(got, want) {
			t.Errorf("missed %q; found:\n%s", want, got)
		}
	}
	for _, bad := range []string{"Short", "Documented", "Inside", "planted_test.go", "big.go", "main_test.go"} {
		if strings.Contains(got, bad) {
			t.Errorf("flagged %q wrongly:\n%s", bad, got)
		}
	}
}
