package ember_test

// This test enforces DESIGN.md's rule of who may import whom. Every package
// under internal/ must appear in the table; a new package needs a row.

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/emberfn/ember/"

// allowed lists, per package, the Ember packages it may import (tests
// excepted). DESIGN.md section 1: lambdaapi imports nothing of ours;
// sandbox knows nothing of Lambda; runtimeapi knows lambdaapi; worker uses
// sandbox and runtimeapi; workermanager uses placement and a worker client;
// frontend reaches counting and workermanager only through interfaces it
// defines; nothing imports frontend, controlapi or cmd. stagetime (the
// bench's timing probe, empty in the default build) imports nothing and
// is marked on the invoke path by frontend and runtimeapi.
var allowed = map[string][]string{
	"internal/lambdaapi":     {},
	"internal/natsd":         {},
	"internal/store":         {},
	"internal/codepkg":       {},
	"internal/auth":          {"internal/lambdaapi", "internal/store"},
	"internal/controlapi":    {"internal/auth", "internal/codepkg", "internal/lambdaapi", "internal/store"},
	"internal/invoke":        {},
	"internal/runtimes":      {},
	"internal/counting":      {"internal/lambdaapi"},
	"internal/placement":     {},
	"internal/sandbox":       {},
	"internal/runtimeapi":    {"internal/lambdaapi", "internal/stagetime"},
	"internal/stagetime":     {},
	"internal/workermanager": {"internal/invoke", "internal/lambdaapi", "internal/store"},
	"internal/worker": {"internal/codepkg", "internal/invoke", "internal/lambdaapi", "internal/runtimeapi",
		"internal/runtimes", "internal/sandbox", "internal/store"},
	"internal/logs":     {"internal/auth", "internal/lambdaapi"},
	"internal/metrics":  {},
	"internal/frontend": {"internal/auth", "internal/invoke", "internal/lambdaapi", "internal/stagetime", "internal/store"},
	"internal/async":    {"internal/auth", "internal/invoke", "internal/lambdaapi", "internal/store"},
	"cmd/ember":         {"*"},
}

// neverImported may not be imported by any package but cmd/ember, which
// wires the components together.
var neverImported = []string{"internal/frontend", "internal/controlapi", "cmd/ember"}

func TestImportRules(t *testing.T) {
	pkgs := map[string][]string{} // package dir -> Ember imports
	for _, root := range []string{"internal", "cmd"} {
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			dir := filepath.ToSlash(filepath.Dir(path))
			if _, ok := pkgs[dir]; !ok {
				pkgs[dir] = nil
			}
			for _, imp := range f.Imports {
				p := strings.Trim(imp.Path.Value, `"`)
				if strings.HasPrefix(p, module) {
					pkgs[dir] = append(pkgs[dir], strings.TrimPrefix(p, module))
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(pkgs) < 5 {
		t.Fatalf("found only %d packages; is the test running at the module root?", len(pkgs))
	}
	for dir, imps := range pkgs {
		if strings.Contains(dir, "/testdata") {
			continue
		}
		rule, ok := allowed[dir]
		if !ok {
			t.Errorf("package %s has no row in the import rules of deps_test.go; add one that follows DESIGN.md", dir)
			continue
		}
		for _, imp := range imps {
			if slices.Contains(neverImported, imp) && dir != "cmd/ember" {
				t.Errorf("%s imports %s, which nothing may import", dir, imp)
			}
			if !slices.Contains(rule, "*") && !slices.Contains(rule, imp) {
				t.Errorf("%s may not import %s (allowed: %v)", dir, imp, rule)
			}
		}
	}
}
