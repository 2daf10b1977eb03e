package clock

import (
	"testing"
	"time"
)

func TestScaled(t *testing.T) {
	base := NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	origin := time.Date(1995, 7, 13, 8, 0, 0, 0, time.UTC)
	s := NewScaled(base, origin, 60)
	if !s.Now().Equal(origin) {
		t.Fatalf("now %v, want the origin", s.Now())
	}
	base.Advance(2 * time.Second)
	if want := origin.Add(2 * time.Minute); !s.Now().Equal(want) {
		t.Errorf("two real seconds later: %v, want %v", s.Now(), want)
	}
	if r := s.Real(origin.Add(time.Hour)); !r.Equal(base.Now().Add(58 * time.Second)) {
		t.Errorf("real time of an hour in: %v", r)
	}
	if v := s.Virtual(base.Now()); !v.Equal(s.Now()) {
		t.Errorf("virtual of now %v != now %v", v, s.Now())
	}
	fired := false
	s.AfterFunc(15*time.Second, func() { fired = true }) // 250 ms of real time
	base.Advance(249 * time.Millisecond)
	if fired {
		t.Fatal("fired early")
	}
	base.Advance(time.Millisecond)
	if !fired {
		t.Fatal("did not fire after 15 virtual seconds")
	}
}
