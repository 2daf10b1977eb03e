package sim

import (
	"fmt"
	"math"
	"testing"
	"time"
)

// TestNodeProvisioning: replicas the autoscaler adds take free pod slots
// first; the rest wait for the cluster autoscaler's new nodes (enough
// whole nodes for the waiting pods, asked once: pods already covered by
// nodes on the way ask for none), which come node_provisioning later; a
// pod is billed from the moment it gets a slot, and one removed while it
// waits is never billed. Scale plans drive the replica count so the
// timeline is exact: 2 replicas on nodes of 2 pods, pods ready 5s after
// they get a slot, nodes arriving 2 minutes after they are asked for.
func TestNodeProvisioning(t *testing.T) {
	type step struct {
		from time.Duration // from the window ending at this time on
		n    int           // replicas ready
	}
	cases := []struct {
		name     string
		cluster  string
		plan     string
		ready    []step
		hours    float64 // replica-hours over the 5 minutes
		freeLeft int     // pod slots free at the end
	}{
		{"pods wait for a new node", "{pods_per_node: 2, node_provisioning: 2m}", "[{service: a, at: 1m, min_replicas: 5}]",
			[]step{{0, 2}, {3*time.Minute + 10*time.Second, 5}}, (2*5 + 3*2) / 60.0, 1},
		{"spare room first", "{pods_per_node: 2, spare_nodes: 1, node_provisioning: 2m}", "[{service: a, at: 1m, min_replicas: 5}]",
			[]step{{0, 2}, {70 * time.Second, 4}, {3*time.Minute + 10*time.Second, 5}}, (2*5 + 2*4 + 1*2) / 60.0, 1},
		{"nodes on the way are not asked for twice", "{pods_per_node: 2, node_provisioning: 2m}",
			"[{service: a, at: 1m, min_replicas: 3}, {service: a, at: 90s, min_replicas: 4}]",
			[]step{{0, 2}, {3*time.Minute + 10*time.Second, 4}}, (2*5 + 2*2) / 60.0, 0},
		{"a pod given up while it waits is never billed", "{pods_per_node: 2, node_provisioning: 2m}",
			"[{service: a, at: 1m, min_replicas: 5}, {service: a, at: 2m, min_replicas: 2}]",
			[]step{{0, 2}}, 2 * 5 / 60.0, 4},
		{"unlimited room", "{pods_per_node: 0}", "[{service: a, at: 1m, min_replicas: 5}]",
			[]step{{0, 2}, {70 * time.Second, 5}}, (2*5 + 3*4) / 60.0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sc := mustParse(t, fmt.Sprintf(`
duration: 5m
window: 10s
clients: {mode: requests}
load: {rate: 1}
cluster: %s
scale_plan: %s
services:
  - {name: a, replicas: 2, autoscale: {max: 10, pod_start: 5s}, price_per_hour: 1}
`, tc.cluster, tc.plan))
			s, err := New(sc, Options{Policy: "round_robin"})
			if err != nil {
				t.Fatal(err)
			}
			pr := s.Run()
			var got, want []int
			for i, m := range pr.Minutes {
				end := time.Duration(i+1) * sc.Window
				n := 0
				for _, st := range tc.ready {
					if end >= st.from {
						n = st.n
					}
				}
				got = append(got, m.Services[0].Replicas)
				want = append(want, n)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("ready replicas per 10s\n got %v\nwant %v", got, want)
			}
			if math.Abs(pr.Totals.ReplicaHours-tc.hours) > 1e-4 || pr.Totals.Cost != pr.Totals.ReplicaHours {
				t.Errorf("replica-hours %.4f (cost %.4f), want %.4f", pr.Totals.ReplicaHours, pr.Totals.Cost, tc.hours)
			}
			if s.cluster.free != tc.freeLeft || s.cluster.provisioning != 0 || len(s.cluster.pending) != 0 {
				t.Errorf("at the end: %d slots free (want %d), %d on the way, %d pods waiting", s.cluster.free, tc.freeLeft, s.cluster.provisioning, len(s.cluster.pending))
			}
		})
	}
}
