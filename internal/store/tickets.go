package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Ticket kinds.
const (
	Incident = "incident"
	Change   = "change"
)

// Ticket is an ITIL incident or change request.
type Ticket struct {
	// ID is source-qualified: "sn:incident:<sys_id>".
	ID     string
	Kind   string // Incident or Change
	Number string // INC0010001, CHG0030001
	Source string
	// CI is the affected item's ID (ServiceNow cmdb_ci) and Service the
	// service it maps to (business_service, else the CI's service).
	CI, Service string
	Summary     string
	// Priority 1 (critical) … 5 (planning); 0 when unknown.
	Priority int
	State    string
	// Category is the incident category or the change type (normal,
	// standard, emergency).
	Category string
	// Start and End bound the ticket in time: an incident from Opened to
	// Resolved (else Closed); a change over its planned window (else its
	// actual work window). End is zero while the ticket is open.
	Start, End               time.Time
	Opened, Resolved, Closed time.Time
	Updated                  time.Time
	Attrs                    map[string]string
}

// UpsertTickets inserts or replaces tickets by ID; identical ones count as
// Unchanged.
func (s *Store) UpsertTickets(ctx context.Context, ts []Ticket) (UpsertResult, error) {
	var res UpsertResult
	err := s.write(ctx, func(tx *sql.Tx) error {
		res = UpsertResult{}
		for _, t := range ts {
			if t.ID == "" || (t.Kind != Incident && t.Kind != Change) || t.Start.IsZero() || t.Source == "" {
				return fmt.Errorf("store: ticket %q: id, kind (incident or change), start and source are required", t.ID)
			}
			old, err := ticketByID(ctx, tx, t.ID)
			switch {
			case errors.Is(err, ErrNotFound):
				res.Inserted++
			case err != nil:
				return err
			case ticketsEqual(old, t):
				res.Unchanged++
				continue
			default:
				res.Updated++
			}
			upd := t.Updated
			if upd.IsZero() {
				upd = s.now()
			}
			_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO tickets (id, kind, number, source, ci, service, summary,
				priority, state, category, start_ms, end_ms, opened_ms, resolved_ms, closed_ms, updated_ms, attrs)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				t.ID, t.Kind, t.Number, t.Source, t.CI, t.Service, t.Summary, t.Priority, t.State, t.Category,
				ms(t.Start), nullMs(t.End), nullMs(t.Opened), nullMs(t.Resolved), nullMs(t.Closed), ms(upd), encodeAttrs(t.Attrs))
			if err != nil {
				return fmt.Errorf("store: ticket %s: %w", t.ID, err)
			}
		}
		return nil
	})
	return res, err
}

func ticketsEqual(a, b Ticket) bool {
	return a.Kind == b.Kind && a.Number == b.Number && a.Source == b.Source && a.CI == b.CI && a.Service == b.Service &&
		a.Summary == b.Summary && a.Priority == b.Priority && a.State == b.State && a.Category == b.Category &&
		ms0(a.Start) == ms0(b.Start) && ms0(a.End) == ms0(b.End) && ms0(a.Opened) == ms0(b.Opened) &&
		ms0(a.Resolved) == ms0(b.Resolved) && ms0(a.Closed) == ms0(b.Closed) && encodeAttrs(a.Attrs) == encodeAttrs(b.Attrs)
}

const ticketCols = `id, kind, number, source, ci, service, summary, priority, state, category,
	start_ms, end_ms, opened_ms, resolved_ms, closed_ms, updated_ms, attrs`

type scanner interface{ Scan(dest ...any) error }

func scanTicket(r scanner) (Ticket, error) {
	var t Ticket
	var start, upd int64
	var end, opened, resolved, closed sql.NullInt64
	var attrs string
	if err := r.Scan(&t.ID, &t.Kind, &t.Number, &t.Source, &t.CI, &t.Service, &t.Summary, &t.Priority, &t.State,
		&t.Category, &start, &end, &opened, &resolved, &closed, &upd, &attrs); err != nil {
		return t, err
	}
	t.Start, t.End = fromMs(start), fromNullMs(end)
	t.Opened, t.Resolved, t.Closed = fromNullMs(opened), fromNullMs(resolved), fromNullMs(closed)
	t.Updated = fromMs(upd)
	t.Attrs = decodeAttrs(attrs)
	return t, nil
}

func ticketByID(ctx context.Context, q querier, id string) (Ticket, error) {
	t, err := scanTicket(q.QueryRowContext(ctx, `SELECT `+ticketCols+` FROM tickets WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("ticket %s: %w", id, ErrNotFound)
	}
	return t, err
}

// Ticket returns one ticket; ErrNotFound when absent.
func (s *Store) Ticket(ctx context.Context, id string) (Ticket, error) {
	return ticketByID(ctx, s.db, id)
}

// TicketQuery selects tickets of one kind that overlap [From, To): started
// before To and not ended before From (open tickets overlap everything after
// their start). Service, when set, keeps that service's tickets only.
type TicketQuery struct {
	From, To time.Time
	Service  string
}

// Incidents returns the incidents overlapping the window, by start.
func (s *Store) Incidents(ctx context.Context, q TicketQuery) ([]Ticket, error) {
	return s.tickets(ctx, Incident, q)
}

// Changes returns the change requests overlapping the window, by start.
func (s *Store) Changes(ctx context.Context, q TicketQuery) ([]Ticket, error) {
	return s.tickets(ctx, Change, q)
}

func (s *Store) tickets(ctx context.Context, kind string, q TicketQuery) ([]Ticket, error) {
	sqlq := `SELECT ` + ticketCols + ` FROM tickets WHERE kind = ? AND start_ms < ? AND (end_ms IS NULL OR end_ms > ?)`
	args := []any{kind, ms(q.To), ms(q.From)}
	if q.Service != "" {
		sqlq += ` AND service = ?`
		args = append(args, q.Service)
	}
	rows, err := s.db.QueryContext(ctx, sqlq+` ORDER BY start_ms, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: %s tickets: %w", kind, err)
	}
	defer rows.Close()
	var out []Ticket
	for rows.Next() {
		t, err := scanTicket(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}
