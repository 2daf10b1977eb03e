package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Event is one occurrence of a calendar event (recurring events are stored
// expanded, one row per occurrence): campaigns, holidays, releases, sports
// fixtures — the "cultural events" signal of the pipeline.
type Event struct {
	Calendar string
	UID      string
	// Start and End (exclusive) of this occurrence. All-day events span
	// local midnight to midnight of the calendar's time zone; an instant
	// (no DTEND) has End == Start.
	Start, End time.Time
	AllDay     bool
	Summary    string
	// Categories are lower-case (campaign, holiday, release, sports, …).
	Categories []string
	Location   string
	// Services the event is about, when the calendar says so
	// (X-LBSYS-SERVICES); empty means "everything".
	Services []string
}

func joinList(l []string) string { return strings.Join(l, ",") }

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// ReplaceEvents makes evs the complete set of calendar's occurrences that
// start in [from, to): occurrences no longer produced (an event deleted from
// the .ics file, a recurrence shortened) are deleted; others are inserted,
// updated or left unchanged. Occurrences outside the window are untouched.
func (s *Store) ReplaceEvents(ctx context.Context, calendar string, from, to time.Time, evs []Event) (UpsertResult, int, error) {
	var res UpsertResult
	var deleted int
	if calendar == "" {
		return res, 0, fmt.Errorf("store: events need a calendar name")
	}
	type key struct {
		uid   string
		start int64
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, deleted = UpsertResult{}, 0
		old := map[key]Event{}
		rows, err := tx.QueryContext(ctx, `SELECT `+eventCols+` FROM events WHERE calendar = ? AND start_ms >= ? AND start_ms < ?`,
			calendar, ms(from), ms(to))
		if err != nil {
			return err
		}
		for rows.Next() {
			e, err := scanEvent(rows)
			if err != nil {
				rows.Close()
				return err
			}
			old[key{e.UID, ms(e.Start)}] = e
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		seen := map[key]bool{}
		for _, e := range evs {
			if e.Calendar != calendar {
				return fmt.Errorf("store: event %s belongs to calendar %q, not %q", e.UID, e.Calendar, calendar)
			}
			if e.UID == "" || e.Start.IsZero() || e.End.Before(e.Start) {
				return fmt.Errorf("store: event %q: uid, start and an end not before start are required", e.UID)
			}
			k := key{e.UID, ms(e.Start)}
			seen[k] = true
			cats := slices.Clone(e.Categories)
			slices.Sort(cats)
			cats = slices.Compact(cats)
			e.Categories = cats
			if o, ok := old[k]; ok {
				if eventsEqual(o, e) {
					res.Unchanged++
					continue
				}
				res.Updated++
			} else {
				res.Inserted++
			}
			if err := putEvent(ctx, tx, e); err != nil {
				return err
			}
		}
		for k := range old {
			if seen[k] {
				continue
			}
			if err := deleteEvent(ctx, tx, calendar, k.uid, k.start); err != nil {
				return err
			}
			deleted++
		}
		return nil
	})
	return res, deleted, err
}

func eventsEqual(a, b Event) bool {
	return a.UID == b.UID && a.Start.Equal(b.Start) && a.End.Equal(b.End) && a.AllDay == b.AllDay &&
		a.Summary == b.Summary && slices.Equal(a.Categories, b.Categories) && a.Location == b.Location &&
		slices.Equal(a.Services, b.Services)
}

func putEvent(ctx context.Context, tx *sql.Tx, e Event) error {
	if err := deleteEvent(ctx, tx, e.Calendar, e.UID, ms(e.Start)); err != nil {
		return err
	}
	allDay := 0
	if e.AllDay {
		allDay = 1
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO events (calendar, uid, start_ms, end_ms, all_day, summary, categories, location, services)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, e.Calendar, e.UID, ms(e.Start), ms(e.End), allDay, e.Summary,
		joinList(e.Categories), e.Location, joinList(e.Services)); err != nil {
		return fmt.Errorf("store: event %s: %w", e.UID, err)
	}
	for _, c := range e.Categories {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO event_categories (calendar, uid, start_ms, category) VALUES (?, ?, ?, ?)`,
			e.Calendar, e.UID, ms(e.Start), c); err != nil {
			return err
		}
	}
	return nil
}

func deleteEvent(ctx context.Context, tx *sql.Tx, calendar, uid string, start int64) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM events WHERE calendar = ? AND uid = ? AND start_ms = ?`, calendar, uid, start); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM event_categories WHERE calendar = ? AND uid = ? AND start_ms = ?`, calendar, uid, start)
	return err
}

const eventCols = `calendar, uid, start_ms, end_ms, all_day, summary, categories, location, services`

func scanEvent(r scanner) (Event, error) {
	var e Event
	var start, end int64
	var allDay int
	var cats, services string
	if err := r.Scan(&e.Calendar, &e.UID, &start, &end, &allDay, &e.Summary, &cats, &e.Location, &services); err != nil {
		return e, err
	}
	e.Start, e.End, e.AllDay = fromMs(start), fromMs(end), allDay != 0
	e.Categories, e.Services = splitList(cats), splitList(services)
	return e, nil
}

// EventQuery selects occurrences overlapping [From, To). Empty Calendars or
// Categories match any; several values match any of them.
type EventQuery struct {
	From, To   time.Time
	Calendars  []string
	Categories []string
}

// Events returns the occurrences matching q, by start.
func (s *Store) Events(ctx context.Context, q EventQuery) ([]Event, error) {
	// Occurrences are at most a few days long in practice; the start index
	// bounds the scan, the end condition is checked per row.
	sqlq := `SELECT ` + eventCols + ` FROM events e WHERE start_ms < ? AND end_ms > ?`
	args := []any{ms(q.To), ms(q.From)}
	if len(q.Calendars) > 0 {
		sqlq += ` AND calendar IN (?` + strings.Repeat(",?", len(q.Calendars)-1) + `)`
		for _, c := range q.Calendars {
			args = append(args, c)
		}
	}
	if len(q.Categories) > 0 {
		sqlq += ` AND EXISTS (SELECT 1 FROM event_categories c WHERE c.calendar = e.calendar AND c.uid = e.uid
			AND c.start_ms = e.start_ms AND c.category IN (?` + strings.Repeat(",?", len(q.Categories)-1) + `))`
		for _, c := range q.Categories {
			args = append(args, strings.ToLower(c))
		}
	}
	rows, err := s.db.QueryContext(ctx, sqlq+` ORDER BY start_ms, calendar, uid`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
