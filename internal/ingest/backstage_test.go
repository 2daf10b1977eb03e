package ingest

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lbsys/lbsys/internal/store"
)

func catalogFiles(t testing.TB, names ...string) map[string]io.Reader {
	t.Helper()
	out := map[string]io.Reader{}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "ingest", n))
		if err != nil {
			t.Fatal(err)
		}
		out[n] = strings.NewReader(string(b))
	}
	return out
}

func TestBackstageCatalog(t *testing.T) {
	ctx := context.Background()
	st := testStore(t)
	rep, err := runSource(t, st, "backstage", func(ctx context.Context, run *Run) error {
		return ImportBackstage(ctx, run, catalogFiles(t, "catalog-info.yaml", "catalog-payments.yaml"))
	})
	if err != nil {
		t.Fatal(err)
	}
	// Entities: domain, system, 5 components, 2 APIs, 3 resources = 12;
	// Group and Location are skipped.
	cis, _ := st.CIs(ctx, store.CIFilter{Source: "backstage"})
	if len(cis) != 12 || rep.Skipped != 2 || rep.Quarantined != 0 {
		t.Fatalf("%d CIs; report %s", len(cis), rep)
	}
	c, err := st.CI(ctx, "bs:component:default/catalog")
	if err != nil || c.Service != "catalog" || c.Attrs["tags"] != "java,read-heavy" || c.Attrs["lifecycle"] != "production" {
		t.Fatalf("catalog CI = %+v, %v", c, err)
	}
	if api, _ := st.CI(ctx, "bs:api:default/inventory-api"); api.Service != "" || api.Class != "api" {
		t.Errorf("an API is not a service node: %+v", api)
	}
	g, err := st.Graph(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, got, want []string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	// checkout → cart, payment, inventory-api; inventory-api → inventory;
	// payment dependsOn orders-db and (dependencyOf) checkout → payment.
	check("checkout depends on", g.DependsOn("checkout"), []string{"bs:api:default/inventory-api", "cart", "payment"})
	check("upstream(checkout)", g.Upstream("checkout"), []string{
		"bs:api:default/catalog-api", "bs:api:default/inventory-api", "bs:resource:default/orders-db",
		"bs:resource:default/redis-cache", "bs:resource:default/search-index", "cart", "catalog", "inventory", "payment"})
	check("downstream(orders-db)", g.Downstream("bs:resource:default/orders-db"), []string{"bs:api:default/inventory-api", "cart", "checkout", "inventory", "payment"})
	// redis-cache declares dependencyOf catalog: catalog depends on it.
	check("catalog depends on", g.DependsOn("catalog"), []string{"bs:resource:default/redis-cache", "bs:resource:default/search-index"})
	if len(g.Cycles()) != 0 {
		t.Errorf("cycles: %v", g.Cycles())
	}
	rels, _ := st.Relations(ctx)
	partOf := 0
	for _, r := range rels {
		if r.Kind == store.KindPartOf {
			partOf++
		}
	}
	// 5 components + 2 APIs + 2 resources in system shop, shop in commerce.
	if partOf != 10 {
		t.Errorf("%d part_of relations, want 10", partOf)
	}
	// Re-import: nothing changes. Then checkout stops depending on cart.
	rep, _ = runSource(t, st, "backstage", func(ctx context.Context, run *Run) error {
		return ImportBackstage(ctx, run, catalogFiles(t, "catalog-info.yaml", "catalog-payments.yaml"))
	})
	if rep.Inserted != 0 || rep.Updated != 0 || rep.Deleted != 0 {
		t.Errorf("re-import: %s", rep)
	}
	b, _ := os.ReadFile(filepath.Join("..", "..", "testdata", "ingest", "catalog-info.yaml"))
	edited := strings.Replace(string(b), "dependsOn: [component:cart, component:payment]", "dependsOn: [component:payment]", 1)
	rep, err = runSource(t, st, "backstage", func(ctx context.Context, run *Run) error {
		return ImportBackstage(ctx, run, map[string]io.Reader{"catalog-info.yaml": strings.NewReader(edited)})
	})
	if err != nil || rep.Deleted != 1 {
		t.Fatalf("edited import: %s %v", rep, err)
	}
	g, _ = st.Graph(ctx)
	check("checkout depends on, after the edit", g.DependsOn("checkout"), []string{"bs:api:default/inventory-api", "payment"})
}

func TestBackstageValidation(t *testing.T) {
	ctx := context.Background()
	st := testStore(t)
	// orders-db is known to the store from an earlier import.
	runSource(t, st, "backstage", func(ctx context.Context, run *Run) error {
		return ImportBackstage(ctx, run, catalogFiles(t, "catalog-info.yaml"))
	})
	rep, err := runSource(t, st, "backstage", func(ctx context.Context, run *Run) error {
		return ImportBackstage(ctx, run, catalogFiles(t, "catalog-bad.yaml"))
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[store.Reason]int64{
		store.ReasonUnknownReference: 1, // resource:nowhere-db
		store.ReasonInvalidValue:     4, // orders-db without a kind, bad name, foreign apiVersion, kind Widget
		store.ReasonMissingField:     3, // kind, metadata.name, apiVersion
		store.ReasonDuplicateID:      1, // good twice
		store.ReasonMalformed:        2, // spec: [list], the syntax error at the end
	}
	for r, n := range want {
		if rep.Reasons[r] != n {
			t.Errorf("%s: %d, want %d (%s)", r, rep.Reasons[r], n, rep)
		}
	}
	if rep.Quarantined != 11 {
		t.Errorf("report %s", rep)
	}
	// "good" is stored with its valid self-dependency (a cycle).
	g, _ := st.Graph(ctx)
	if cyc := g.Cycles(); len(cyc) != 1 || cyc[0][0] != "good" {
		t.Errorf("cycles = %v", cyc)
	}
	var details []string
	rows, _ := st.LatestQuarantined(ctx, 100)
	for _, q := range rows {
		details = append(details, string(q.Reason)+": "+q.Detail)
	}
	for _, want := range []string{"has no kind", "nowhere-db", "line 55: invalid YAML: did not find expected ',' or ']'", "rest of the file is not read", "already declared", "line 43: cannot unmarshal !!seq into a mapping"} {
		found := false
		for _, d := range details {
			found = found || strings.Contains(d, want)
		}
		if !found {
			t.Errorf("no quarantine detail mentions %q: %v", want, details)
		}
	}
}

func TestParseEntityRef(t *testing.T) {
	for _, tc := range []struct {
		in, defKind string
		want        string
		bad         bool
	}{
		{"component:cart", "", "component:team/cart", false},
		{"Component:Shop/Cart", "", "component:shop/cart", false},
		{"inventory-api", "api", "api:team/inventory-api", false},
		{"team2/inventory-api", "api", "api:team2/inventory-api", false},
		{"orders-db", "", "", true},
		{"resource:", "", "", true},
		{"resource:bad name", "", "", true},
		{"", "api", "", true},
	} {
		ref, err := parseEntityRef(tc.in, tc.defKind, "team")
		if tc.bad != (err != nil) || (!tc.bad && ref.String() != tc.want) {
			t.Errorf("parseEntityRef(%q) = %v, %v", tc.in, ref, err)
		}
	}
}

func TestCatalogSizeBound(t *testing.T) {
	big := strings.Repeat("# padding\n", MaxCatalogBytes/10+1)
	if _, _, _, err := ParseCatalog(strings.NewReader(big), "big.yaml"); err == nil || !strings.Contains(err.Error(), "big.yaml: larger than 16 MiB") {
		t.Fatalf("err = %v", err)
	}
}
