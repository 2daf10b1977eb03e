package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/lbsys/lbsys/internal/store"
	"github.com/lbsys/lbsys/internal/yamlstrict"
)

// Backstage catalog descriptors (catalog-info.yaml): the entity envelope
// apiVersion/kind/metadata/spec and the well-known relations of the
// Component, API, Resource, System and Domain kinds
// (backstage.io/docs/features/software-catalog/descriptor-format).

// bsEntity is the part of an entity lbsys reads; other fields are allowed
// (catalogs carry many) and ignored.
type bsEntity struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name        string            `yaml:"name"`
		Namespace   string            `yaml:"namespace"`
		Title       string            `yaml:"title"`
		Description string            `yaml:"description"`
		Annotations map[string]string `yaml:"annotations"`
		Tags        []string          `yaml:"tags"`
	} `yaml:"metadata"`
	Spec struct {
		Type           string   `yaml:"type"`
		Lifecycle      string   `yaml:"lifecycle"`
		Owner          string   `yaml:"owner"`
		System         string   `yaml:"system"`
		Domain         string   `yaml:"domain"`
		SubcomponentOf string   `yaml:"subcomponentOf"`
		DependsOn      []string `yaml:"dependsOn"`
		DependencyOf   []string `yaml:"dependencyOf"`
		ProvidesAPIs   []string `yaml:"providesApis"`
		ConsumesAPIs   []string `yaml:"consumesApis"`
	} `yaml:"spec"`
}

// modelledKinds become CIs; skippedKinds are valid Backstage kinds lbsys
// does not use (ownership, locations, templates): counted as skipped.
var modelledKinds = map[string]bool{"component": true, "api": true, "resource": true, "system": true, "domain": true}
var skippedKinds = map[string]bool{"group": true, "user": true, "location": true, "template": true}

// MaxCatalogBytes bounds one catalog file (a catalog of thousands of
// entities is a few megabytes).
const MaxCatalogBytes = 16 << 20

// ServiceAnnotation maps a catalog entity to an lbsys service name when it
// differs from the entity's name.
const ServiceAnnotation = "lbsys.io/service"

// entityName is Backstage's rule for metadata.name: 1–63 characters of
// [a-zA-Z0-9-_.], starting and ending with a letter or digit.
var entityName = regexp.MustCompile(`^[a-zA-Z0-9](?:[a-zA-Z0-9._-]{0,61}[a-zA-Z0-9])?$`)

// goStructType hides Go type names in yaml.v3's type errors.
var goStructType = regexp.MustCompile(`into struct \{.*\}`)

// CatalogEntity is a validated entity with its outgoing references.
type CatalogEntity struct {
	Ref      EntityRef
	Title    string
	Service  string
	Attrs    map[string]string
	Location string
	Refs     []CatalogRef
}

// EntityRef is kind:namespace/name, lower-cased (references are
// case-insensitive).
type EntityRef struct{ Kind, Namespace, Name string }

func (r EntityRef) String() string { return r.Kind + ":" + r.Namespace + "/" + r.Name }

// CIID is the store ID of the entity.
func (r EntityRef) CIID() string { return "bs:" + r.String() }

// CatalogRef is one declared relation: Field is the spec field, From
// depends on (or is part of) To according to Kind.
type CatalogRef struct {
	Field    string
	From, To EntityRef
	Kind     string
}

// parseEntityRef reads [kind:][namespace/]name with Backstage's defaults:
// defaultKind "" means the kind must be written.
func parseEntityRef(s, defaultKind, defaultNamespace string) (EntityRef, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return EntityRef{}, errors.New("empty entity reference")
	}
	ref := EntityRef{Kind: defaultKind, Namespace: defaultNamespace}
	if k, rest, ok := strings.Cut(s, ":"); ok {
		ref.Kind, s = k, rest
	}
	if ns, rest, ok := strings.Cut(s, "/"); ok {
		ref.Namespace, s = ns, rest
	}
	ref.Name = s
	switch {
	case ref.Kind == "":
		return EntityRef{}, fmt.Errorf("%q has no kind: write it as kind:name (for example resource:orders-db)", s)
	case !entityName.MatchString(ref.Name):
		return EntityRef{}, fmt.Errorf("%q is not a valid entity name", ref.Name)
	case !entityName.MatchString(ref.Namespace):
		return EntityRef{}, fmt.Errorf("%q is not a valid namespace", ref.Namespace)
	case strings.ContainsAny(ref.Kind, "/: "):
		return EntityRef{}, fmt.Errorf("%q is not a valid kind", ref.Kind)
	}
	ref.Kind, ref.Namespace, ref.Name = strings.ToLower(ref.Kind), strings.ToLower(ref.Namespace), strings.ToLower(ref.Name)
	return ref, nil
}

// ParseCatalog reads a multi-document catalog file. It returns the entities
// to store, the problems (per document or per reference), and the number
// of documents of kinds lbsys skips. A YAML syntax error ends the file
// (quarantined as malformed); what came before it is kept.
//
// A file over MaxCatalogBytes is refused whole: yaml.v3 builds a node tree
// of every document, several times the file's size.
func ParseCatalog(r io.Reader, name string) ([]CatalogEntity, []Problem, int, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxCatalogBytes+1))
	if err != nil {
		return nil, nil, 0, fmt.Errorf("%s: %w", name, err)
	}
	if len(data) > MaxCatalogBytes {
		return nil, nil, 0, fmt.Errorf("%s: larger than %d MiB: split the catalog into several files", name, MaxCatalogBytes>>20)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var ents []CatalogEntity
	var problems []Problem
	skipped := 0
	seen := map[EntityRef]string{}
	for doc := 1; ; doc++ {
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			break
		}
		loc := fmt.Sprintf("%s#%d", name, doc)
		if err != nil {
			se := yamlstrict.SyntaxError(data, err) // yaml.v3's own line is the enclosing block's
			if se.Line > 0 {
				loc = fmt.Sprintf("%s:%d", name, se.Line)
			}
			problems = append(problems, Problem{Location: loc, Reason: store.ReasonMalformed, Detail: se.Error() + " (the rest of the file is not read)"})
			break
		}
		if node.Line > 0 {
			loc = fmt.Sprintf("%s:%d", name, node.Line)
		}
		if len(node.Content) == 0 || (node.Content[0].Kind == yaml.ScalarNode && node.Content[0].Tag == "!!null") {
			continue // an empty document (a trailing ---)
		}
		raw := nodeText(&node)
		var e bsEntity
		if err := node.Decode(&e); err != nil {
			msg := goStructType.ReplaceAllString(err.Error(), "into a mapping")
			problems = append(problems, Problem{loc, store.ReasonMalformed, "not an entity: " + msg, raw})
			continue
		}
		ent, refProblems, p := validateEntity(e, loc, raw)
		if p != nil {
			if p.Reason == "" {
				skipped++
				continue
			}
			problems = append(problems, *p)
			continue
		}
		if prev, dup := seen[ent.Ref]; dup {
			problems = append(problems, Problem{loc, store.ReasonDuplicateID, fmt.Sprintf("%s is already declared at %s", ent.Ref, prev), raw})
			continue
		}
		seen[ent.Ref] = loc
		problems = append(problems, refProblems...)
		ents = append(ents, ent)
	}
	return ents, problems, skipped, nil
}

func nodeText(n *yaml.Node) string {
	b, err := yaml.Marshal(n)
	if err != nil {
		return ""
	}
	return string(b)
}

// validateEntity checks the envelope and reads the references. A Problem
// with an empty Reason means "a kind lbsys skips".
func validateEntity(e bsEntity, loc, raw string) (CatalogEntity, []Problem, *Problem) {
	var ent CatalogEntity
	switch {
	case e.APIVersion == "":
		return ent, nil, &Problem{loc, store.ReasonMissingField, "apiVersion is missing", raw}
	case !strings.HasPrefix(e.APIVersion, "backstage.io/"):
		return ent, nil, &Problem{loc, store.ReasonInvalidValue, fmt.Sprintf("apiVersion %q is not backstage.io/…", e.APIVersion), raw}
	case e.Kind == "":
		return ent, nil, &Problem{loc, store.ReasonMissingField, "kind is missing", raw}
	case e.Metadata.Name == "":
		return ent, nil, &Problem{loc, store.ReasonMissingField, "metadata.name is missing", raw}
	case !entityName.MatchString(e.Metadata.Name):
		return ent, nil, &Problem{loc, store.ReasonInvalidValue, fmt.Sprintf("metadata.name %q: 1–63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", e.Metadata.Name), raw}
	}
	kind := strings.ToLower(e.Kind)
	if !modelledKinds[kind] {
		if skippedKinds[kind] {
			return ent, nil, &Problem{}
		}
		return ent, nil, &Problem{loc, store.ReasonInvalidValue, fmt.Sprintf("kind %q is not a Backstage kind lbsys reads (Component, API, Resource, System, Domain; Group, User, Location and Template are skipped)", e.Kind), raw}
	}
	ns := e.Metadata.Namespace
	if ns == "" {
		ns = "default"
	}
	if !entityName.MatchString(ns) {
		return ent, nil, &Problem{loc, store.ReasonInvalidValue, fmt.Sprintf("metadata.namespace %q is not valid", ns), raw}
	}
	ent.Ref = EntityRef{Kind: kind, Namespace: strings.ToLower(ns), Name: strings.ToLower(e.Metadata.Name)}
	ent.Title = e.Metadata.Title
	ent.Location = loc
	ent.Attrs = map[string]string{}
	for k, v := range map[string]string{"type": e.Spec.Type, "lifecycle": e.Spec.Lifecycle, "owner": e.Spec.Owner,
		"description": e.Metadata.Description, "tags": strings.Join(e.Metadata.Tags, ",")} {
		if v != "" {
			ent.Attrs[k] = v
		}
	}
	if kind == "component" {
		ent.Service = strings.ToLower(e.Metadata.Name)
	}
	if s := e.Metadata.Annotations[ServiceAnnotation]; s != "" {
		ent.Service = s
	}
	var problems []Problem
	add := func(field string, targets []string, defaultKind, relKind string, reverse bool) {
		for _, t := range targets {
			to, err := parseEntityRef(t, defaultKind, ent.Ref.Namespace)
			if err != nil {
				problems = append(problems, Problem{loc, store.ReasonInvalidValue, fmt.Sprintf("%s: spec.%s: %v", ent.Ref, field, err), t})
				continue
			}
			r := CatalogRef{Field: field, From: ent.Ref, To: to, Kind: relKind}
			if reverse {
				r.From, r.To = to, ent.Ref
			}
			ent.Refs = append(ent.Refs, r)
		}
	}
	one := func(s string) []string {
		if s == "" {
			return nil
		}
		return []string{s}
	}
	switch kind {
	case "component":
		add("dependsOn", e.Spec.DependsOn, "", store.KindDependsOn, false)
		add("dependencyOf", e.Spec.DependencyOf, "", store.KindDependsOn, true)
		add("providesApis", e.Spec.ProvidesAPIs, "api", store.KindProvidesAPI, false)
		add("consumesApis", e.Spec.ConsumesAPIs, "api", store.KindConsumesAPI, false)
		add("system", one(e.Spec.System), "system", store.KindPartOf, false)
		add("subcomponentOf", one(e.Spec.SubcomponentOf), "component", store.KindPartOf, false)
	case "resource":
		add("dependsOn", e.Spec.DependsOn, "", store.KindDependsOn, false)
		add("dependencyOf", e.Spec.DependencyOf, "", store.KindDependsOn, true)
		add("system", one(e.Spec.System), "system", store.KindPartOf, false)
	case "api":
		add("system", one(e.Spec.System), "system", store.KindPartOf, false)
	case "system":
		add("domain", one(e.Spec.Domain), "domain", store.KindPartOf, false)
	}
	return ent, problems, nil
}

// relationID scopes a relation to the entity that declared it, so that
// re-importing the entity replaces exactly what it declares.
func relationID(declarer EntityRef, r CatalogRef) string {
	return relationScope(declarer) + r.Field + "|" + r.From.String() + "|" + r.To.String()
}

func relationScope(declarer EntityRef) string { return "bs:rel:" + declarer.String() + "|" }

// ImportBackstage reads catalog files (several may refer to each other) and
// stores their entities as CIs and their references as relations. A
// reference to an entity that is neither in these files nor already in the
// store is quarantined as unknown_reference; the entity itself is kept.
func ImportBackstage(ctx context.Context, run *Run, files map[string]io.Reader) error {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var ents []CatalogEntity
	declared := map[EntityRef]bool{}
	for _, n := range names {
		es, problems, skipped, err := ParseCatalog(files[n], n)
		if err != nil {
			return err
		}
		for _, p := range problems {
			run.Quarantine(p)
		}
		run.Skip(skipped)
		for _, e := range es {
			if declared[e.Ref] {
				run.Quarantine(Problem{e.Location, store.ReasonDuplicateID, fmt.Sprintf("%s is declared in another file too", e.Ref), ""})
				continue
			}
			declared[e.Ref] = true
			ents = append(ents, e)
		}
	}
	cis := make([]store.CI, 0, len(ents))
	var targets []string
	for _, e := range ents {
		name := e.Ref.Name
		cis = append(cis, store.CI{ID: e.Ref.CIID(), Name: name, Class: e.Ref.Kind, Service: e.Service, Source: "backstage", Attrs: e.Attrs})
		for _, r := range e.Refs {
			targets = append(targets, r.From.CIID(), r.To.CIID())
		}
	}
	u, err := run.st.UpsertCIs(ctx, cis)
	if err != nil {
		return err
	}
	run.CountUpsert(u)
	known, err := run.st.KnownCIs(ctx, targets)
	if err != nil {
		return err
	}
	var rels []store.Relation
	scopes := make([]string, 0, len(ents))
	for _, e := range ents {
		scopes = append(scopes, relationScope(e.Ref))
		for _, r := range e.Refs {
			other := r.To
			if other == e.Ref {
				other = r.From
			}
			if !known[other.CIID()] {
				run.Quarantine(Problem{e.Location, store.ReasonUnknownReference,
					fmt.Sprintf("%s: spec.%s refers to %s, which is in no catalog file given and not in the store", e.Ref, r.Field, other), other.String()})
				continue
			}
			rels = append(rels, store.Relation{ID: relationID(e.Ref, r), Parent: r.From.CIID(), Child: r.To.CIID(), Kind: r.Kind,
				Type: r.Field, Source: "backstage"})
		}
	}
	u, deleted, err := run.st.ReplaceRelations(ctx, scopes, rels)
	if err != nil {
		return err
	}
	run.CountUpsert(u)
	run.Deleted(deleted)
	return run.Flush(ctx)
}
