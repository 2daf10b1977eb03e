package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// CI is a configuration item: a service, component, API, database, host…
// IDs carry their source so that sources never collide: "sn:<sys_id>" for
// ServiceNow, "bs:<kind>:<namespace>/<name>" for Backstage.
type CI struct {
	ID   string
	Name string
	// Class is the source's type: cmdb_ci_service, component, api, …
	Class string
	// Service is the lbsys service name this item stands for ("" when it is
	// not a routed service: a database, a host). CIs of different sources
	// with the same Service are one node of the dependency graph.
	Service string
	Source  string
	Attrs   map[string]string
	Updated time.Time
}

// Relation kinds. DependsOn and ConsumesAPI/ProvidesAPI shape the
// dependency graph; the others are structure kept for display.
const (
	// KindDependsOn: Parent needs Child to work (ServiceNow "Depends on::Used
	// by", "Runs on::Runs", …; Backstage dependsOn/dependencyOf).
	KindDependsOn = "depends_on"
	// KindConsumesAPI: Parent (a component) calls Child (an API).
	KindConsumesAPI = "consumes_api"
	// KindProvidesAPI: Parent (a component) implements Child (an API); in
	// the graph the API depends on its provider.
	KindProvidesAPI = "provides_api"
	// KindPartOf: Parent belongs to Child (component → system → domain).
	KindPartOf = "part_of"
)

// Relation is a typed edge between two CIs.
type Relation struct {
	ID     string
	Parent string
	Child  string
	// Kind is normalized (KindDependsOn, …); Type keeps the source's label
	// (for example "Depends on::Used by").
	Kind    string
	Type    string
	Source  string
	Updated time.Time
}

// UpsertResult counts what an upsert did.
type UpsertResult struct {
	Inserted, Updated, Unchanged int
}

// Add accumulates o into r.
func (r *UpsertResult) Add(o UpsertResult) {
	r.Inserted += o.Inserted
	r.Updated += o.Updated
	r.Unchanged += o.Unchanged
}

func encodeAttrs(a map[string]string) string {
	if len(a) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(a) // map[string]string always encodes; keys are sorted
	return string(b)
}

func decodeAttrs(s string) map[string]string {
	var m map[string]string
	if s == "" || s == "{}" {
		return nil
	}
	if json.Unmarshal([]byte(s), &m) != nil {
		return nil
	}
	return m
}

// UpsertCIs inserts or replaces items by ID. An item whose stored fields are
// identical counts as Unchanged and is not rewritten.
func (s *Store) UpsertCIs(ctx context.Context, cis []CI) (UpsertResult, error) {
	var res UpsertResult
	err := s.write(ctx, func(tx *sql.Tx) error {
		res = UpsertResult{}
		for _, c := range cis {
			if c.ID == "" || c.Name == "" || c.Source == "" {
				return fmt.Errorf("store: CI %q: id, name and source are required", c.ID)
			}
			attrs := encodeAttrs(c.Attrs)
			var name, class, service, source, oldAttrs string
			err := tx.QueryRowContext(ctx, `SELECT name, class, service, source, attrs FROM cis WHERE id = ?`, c.ID).
				Scan(&name, &class, &service, &source, &oldAttrs)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				res.Inserted++
			case err != nil:
				return err
			case name == c.Name && class == c.Class && service == c.Service && source == c.Source && oldAttrs == attrs:
				res.Unchanged++
				continue
			default:
				res.Updated++
			}
			upd := c.Updated
			if upd.IsZero() {
				upd = s.now()
			}
			if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO cis (id, name, class, service, source, attrs, updated_ms)
				VALUES (?, ?, ?, ?, ?, ?, ?)`, c.ID, c.Name, c.Class, c.Service, c.Source, attrs, ms(upd)); err != nil {
				return fmt.Errorf("store: CI %s: %w", c.ID, err)
			}
		}
		return nil
	})
	return res, err
}

// CIFilter selects CIs; empty fields match anything.
type CIFilter struct {
	Service, Class, Source string
}

// CIs lists items matching f, ordered by ID.
func (s *Store) CIs(ctx context.Context, f CIFilter) ([]CI, error) {
	q := `SELECT id, name, class, service, source, attrs, updated_ms FROM cis WHERE 1=1`
	var args []any
	for _, c := range []struct{ col, v string }{{"service", f.Service}, {"class", f.Class}, {"source", f.Source}} {
		if c.v != "" {
			q += ` AND ` + c.col + ` = ?`
			args = append(args, c.v)
		}
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list CIs: %w", err)
	}
	defer rows.Close()
	var out []CI
	for rows.Next() {
		var c CI
		var attrs string
		var upd int64
		if err := rows.Scan(&c.ID, &c.Name, &c.Class, &c.Service, &c.Source, &attrs, &upd); err != nil {
			return nil, err
		}
		c.Attrs = decodeAttrs(attrs)
		c.Updated = fromMs(upd)
		out = append(out, c)
	}
	return out, rows.Err()
}

// CI returns one item; ErrNotFound when absent.
func (s *Store) CI(ctx context.Context, id string) (CI, error) {
	var c CI
	var attrs string
	var upd int64
	err := s.db.QueryRowContext(ctx, `SELECT id, name, class, service, source, attrs, updated_ms FROM cis WHERE id = ?`, id).
		Scan(&c.ID, &c.Name, &c.Class, &c.Service, &c.Source, &attrs, &upd)
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("CI %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("store: CI %s: %w", id, err)
	}
	c.Attrs = decodeAttrs(attrs)
	c.Updated = fromMs(upd)
	return c, nil
}

// KnownCIs reports which of ids exist.
func (s *Store) KnownCIs(ctx context.Context, ids []string) (map[string]bool, error) {
	out := make(map[string]bool, len(ids))
	for i := 0; i < len(ids); i += 500 {
		chunk := ids[i:min(i+500, len(ids))]
		args := make([]any, len(chunk))
		for j, id := range chunk {
			args[j] = id
		}
		rows, err := s.db.QueryContext(ctx, `SELECT id FROM cis WHERE id IN (?`+strings.Repeat(",?", len(chunk)-1)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("store: look up CIs: %w", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, err
			}
			out[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// UpsertRelations inserts or replaces relations by ID.
func (s *Store) UpsertRelations(ctx context.Context, rels []Relation) (UpsertResult, error) {
	var res UpsertResult
	err := s.write(ctx, func(tx *sql.Tx) error {
		res = UpsertResult{}
		for _, r := range rels {
			r, err := upsertRelation(ctx, tx, r, s.now())
			if err != nil {
				return err
			}
			res.Add(r)
		}
		return nil
	})
	return res, err
}

func upsertRelation(ctx context.Context, tx *sql.Tx, r Relation, now time.Time) (UpsertResult, error) {
	var res UpsertResult
	if r.ID == "" || r.Parent == "" || r.Child == "" || r.Kind == "" || r.Source == "" {
		return res, fmt.Errorf("store: relation %q: id, parent, child, kind and source are required", r.ID)
	}
	var parent, child, kind, typ, source string
	err := tx.QueryRowContext(ctx, `SELECT parent, child, kind, type, source FROM relations WHERE id = ?`, r.ID).
		Scan(&parent, &child, &kind, &typ, &source)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		res.Inserted++
	case err != nil:
		return res, err
	case parent == r.Parent && child == r.Child && kind == r.Kind && typ == r.Type && source == r.Source:
		res.Unchanged++
		return res, nil
	default:
		res.Updated++
	}
	upd := r.Updated
	if upd.IsZero() {
		upd = now
	}
	_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO relations (id, parent, child, kind, type, source, updated_ms)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, r.ID, r.Parent, r.Child, r.Kind, r.Type, r.Source, ms(upd))
	if err != nil {
		return res, fmt.Errorf("store: relation %s: %w", r.ID, err)
	}
	return res, nil
}

// ReplaceRelations makes rels the complete set of relations whose ID starts
// with one of scopes: relations in those scopes that are no longer
// declared are deleted (a dependency removed from a catalog file
// disappears). Importers give each declaring record its own ID prefix. It
// returns the upsert counts and the number deleted.
func (s *Store) ReplaceRelations(ctx context.Context, scopes []string, rels []Relation) (UpsertResult, int, error) {
	var res UpsertResult
	var deleted int
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, deleted = UpsertResult{}, 0
		keep := map[string]bool{}
		for _, r := range rels {
			keep[r.ID] = true
			u, err := upsertRelation(ctx, tx, r, s.now())
			if err != nil {
				return err
			}
			res.Add(u)
		}
		for _, scope := range scopes {
			if scope == "" {
				return fmt.Errorf("store: empty relation scope would replace every relation")
			}
			rows, err := tx.QueryContext(ctx, `SELECT id FROM relations WHERE substr(id, 1, length(?1)) = ?1`, scope)
			if err != nil {
				return err
			}
			var stale []string
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return err
				}
				if !keep[id] {
					stale = append(stale, id)
				}
			}
			rows.Close()
			for _, id := range stale {
				if _, err := tx.ExecContext(ctx, `DELETE FROM relations WHERE id = ?`, id); err != nil {
					return err
				}
				deleted++
			}
		}
		return nil
	})
	return res, deleted, err
}

// Relations lists every relation, ordered by ID.
func (s *Store) Relations(ctx context.Context) ([]Relation, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, parent, child, kind, type, source, updated_ms FROM relations ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("store: list relations: %w", err)
	}
	defer rows.Close()
	var out []Relation
	for rows.Next() {
		var r Relation
		var upd int64
		if err := rows.Scan(&r.ID, &r.Parent, &r.Child, &r.Kind, &r.Type, &r.Source, &upd); err != nil {
			return nil, err
		}
		r.Updated = fromMs(upd)
		out = append(out, r)
	}
	return out, rows.Err()
}

// Graph loads the dependency graph over every CI and relation.
func (s *Store) Graph(ctx context.Context) (*Graph, error) {
	cis, err := s.CIs(ctx, CIFilter{})
	if err != nil {
		return nil, err
	}
	rels, err := s.Relations(ctx)
	if err != nil {
		return nil, err
	}
	return NewGraph(cis, rels), nil
}
