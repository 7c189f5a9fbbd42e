package juxta_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// libp2pPaths are the module paths whose types must stay off the main API.
var libp2pPaths = []string{"github.com/libp2p/", "github.com/multiformats/", "github.com/ipfs/"}

// escapeHatch names the one place libp2p types may appear: peer.Libp2p and
// the Peer.Libp2p method that returns it.
var escapeHatch = map[string]bool{"peer.Libp2p": true, "peer.Peer.Libp2p": true}

// leaks lists the exported identifiers of the package in dir whose
// declarations mention a type from a libp2p module, as "pkg.Name" or
// "pkg.Type.Method" with the offending type.
func leaks(t *testing.T, fset *token.FileSet, files map[string]*ast.File, pkg string) []string {
	t.Helper()
	var out []string
	for _, f := range files {
		imports := map[string]string{} // local name → path
		for _, im := range f.Imports {
			path, _ := strconv.Unquote(im.Path.Value)
			name := path[strings.LastIndex(path, "/")+1:]
			if im.Name != nil {
				name = im.Name.Name
			}
			imports[name] = path
		}
		check := func(what string, n ast.Node) {
			if n == nil || escapeHatch[what] {
				return
			}
			ast.Inspect(n, func(n ast.Node) bool {
				if sel, ok := n.(*ast.SelectorExpr); ok {
					if id, ok := sel.X.(*ast.Ident); ok {
						for _, p := range libp2pPaths {
							if strings.HasPrefix(imports[id.Name], p) {
								out = append(out, what+": "+id.Name+"."+sel.Sel.Name)
							}
						}
					}
				}
				return true
			})
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if !d.Name.IsExported() {
					continue
				}
				what := pkg + "." + d.Name.Name
				if d.Recv != nil {
					recv := d.Recv.List[0].Type
					if s, ok := recv.(*ast.StarExpr); ok {
						recv = s.X
					}
					if ix, ok := recv.(*ast.IndexExpr); ok {
						recv = ix.X
					}
					id, ok := recv.(*ast.Ident)
					if !ok || !id.IsExported() {
						continue
					}
					what = pkg + "." + id.Name + "." + d.Name.Name
				}
				check(what, d.Type)
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						if s.Name.IsExported() {
							check(pkg+"."+s.Name.Name, exportedPart(s.Type))
						}
					case *ast.ValueSpec:
						for _, n := range s.Names {
							if n.IsExported() {
								check(pkg+"."+n.Name, s.Type)
								if s.Type == nil {
									for _, v := range s.Values {
										if c, ok := v.(*ast.CallExpr); ok {
											check(pkg+"."+n.Name, c.Fun) // a conversion, e.g. protocol.ID("...")
										}
									}
								}
							}
						}
					}
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// exportedPart drops a struct's unexported fields and an interface's
// unexported methods, which are not API.
func exportedPart(e ast.Expr) ast.Node {
	switch e := e.(type) {
	case *ast.StructType:
		var keep []*ast.Field
		for _, f := range e.Fields.List {
			if len(f.Names) == 0 || f.Names[0].IsExported() {
				keep = append(keep, f)
			}
		}
		return &ast.FieldList{List: keep}
	case *ast.InterfaceType:
		var keep []*ast.Field
		for _, f := range e.Methods.List {
			if len(f.Names) == 0 || f.Names[0].IsExported() {
				keep = append(keep, f)
			}
		}
		return &ast.FieldList{List: keep}
	}
	return e
}

func parseDir(t *testing.T, fset *token.FileSet, dir string) map[string]*ast.File {
	t.Helper()
	files := map[string]*ast.File{}
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = f
	}
	return files
}

// TestNoLibp2pTypesInAPI: no exported identifier of the main packages has a
// libp2p type in its declaration, except the escape hatch peer.Libp2p.
func TestNoLibp2pTypesInAPI(t *testing.T) {
	fset := token.NewFileSet()
	for _, pkg := range []string{"peer", "discovery", "pipes", "groups", "event", "."} {
		name := pkg
		if pkg == "." {
			name = "juxta"
		}
		for _, l := range leaks(t, fset, parseDir(t, fset, pkg), name) {
			t.Errorf("libp2p type in the API: %s", l)
		}
	}
}

// TestAPICheckCatchesALeak plants a leak and expects the check to find it.
func TestAPICheckCatchesALeak(t *testing.T) {
	dir := t.TempDir()
	src := `package planted

import (
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
)

type Fine struct{ hidden lpeer.ID }
type Leaky struct{ Addr ma.Multiaddr }
func Who() lpeer.ID { return "" }
func (Fine) Proto() protocol.ID { return "" }
const ProtocolID = protocol.ID("/x")
func private() lpeer.ID { return "" }
`
	if err := os.WriteFile(filepath.Join(dir, "planted.go"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	got := strings.Join(leaks(t, fset, parseDir(t, fset, dir), "planted"), "\n")
	for _, want := range []string{"planted.Leaky: ma.Multiaddr", "planted.Who: lpeer.ID", "planted.Fine.Proto: protocol.ID", "planted.ProtocolID: protocol.ID"} {
		if !strings.Contains(got, want) {
			t.Errorf("missed %q; found:\n%s", want, got)
		}
	}
	if strings.Contains(got, "hidden") || strings.Contains(got, "private") || strings.Contains(got, "planted.Fine:") {
		t.Errorf("flagged unexported parts:\n%s", got)
	}
}
