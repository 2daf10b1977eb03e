package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/lbsys/lbsys/api/directive"
)

// persist writes d to path atomically and durably: a temporary file in the
// same directory, fsynced, renamed over the old one, then the directory
// fsynced. A crash at any point leaves either the old or the new file.
func persist(path string, d *directive.Directive) error {
	if path == "" {
		return nil
	}
	b, err := jsonIndent(d)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("persisting the directive: %w", err)
	}
	f, err := os.CreateTemp(dir, ".directive-*.tmp")
	if err != nil {
		return fmt.Errorf("persisting the directive: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("persisting the directive: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("persisting the directive: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("persisting the directive: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("persisting the directive: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// load reads a persisted directive (nil, nil when there is none).
func load(path string) (*directive.Directive, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the persisted directive: %w", err)
	}
	return parseState(b, path)
}

// parseState checks a state file's content: a valid directive with the
// version (and, since cluster IDs, the cluster) that committed it.
func parseState(b []byte, path string) (*directive.Directive, error) {
	d, err := directive.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("persisted directive %s: %w", path, err)
	}
	if d.Version == 0 {
		return nil, fmt.Errorf("persisted directive %s has no version; delete the file", path)
	}
	return d, nil
}
