package gaia

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/gaia/fsm"
)

// handleWatch serves one long poll of the directive stream (see
// api/directive/stream.go for the protocol). It records what the request
// says (the version the proxy runs, a NACK) through the report batcher,
// then answers as soon as the proxy's target differs from what it runs, or
// the reporting interval it should use changed, or the wait ended.
func (n *Node) handleWatch(w http.ResponseWriter, r *http.Request, _ Principal) {
	var req directive.WatchRequest
	if !decode(w, r, &req) {
		return
	}
	if err := req.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, directive.ErrorBody{Error: err.Error()})
		return
	}
	if !n.IsLeader() {
		n.notLeader(w, r)
		return
	}
	if !n.sameCluster(w, req.Proxy, req.Cluster, req.Version) {
		return
	}
	lost := n.leaderDone()
	n.observe(&req)

	wait := n.opts.WatchWait
	if req.WaitMs > 0 && time.Duration(req.WaitMs)*time.Millisecond < wait {
		wait = time.Duration(req.WaitMs) * time.Millisecond
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		var (
			resp   directive.WatchResponse
			send   bool
			notify <-chan struct{}
		)
		n.fsm.read(func(m *fsm.Machine) {
			target, canary := m.Target(req.Proxy)
			resp = directive.WatchResponse{Version: target, Cluster: m.Cluster, Canary: canary, Leader: n.URL()}
			if m.Canary != nil {
				resp.ReportIntervalMs = n.opts.ReportInterval.Milliseconds()
			}
			if target != 0 && target != req.Version && target != req.Rejected {
				resp.Directive = m.Versions[target]
			}
			send = resp.Directive != nil || resp.ReportIntervalMs != req.ReportIntervalMs
			notify = n.fsm.notify
		})
		if send {
			resp.Nonce = n.newNonce()
			if resp.Directive != nil {
				n.metrics.pushes.Inc()
			}
			writeJSON(w, http.StatusOK, resp)
			return
		}
		select {
		case <-notify:
			continue
		case <-timer.C:
			resp.Nonce = n.newNonce()
			writeJSON(w, http.StatusOK, resp)
			return
		case <-lost:
			n.notLeader(w, r)
			return
		case <-r.Context().Done():
			return
		}
	}
}

// sameCluster refuses (409, with this cluster's ID) a proxy that runs a
// version of another cluster: version numbers restart in a rebuilt cluster,
// so its version N is not this cluster's N, and counting it would report a
// proxy live on content it does not run. The proxy's operator resets its
// agent to move it here (docs/coordinator.md, "Cluster identity").
func (n *Node) sameCluster(w http.ResponseWriter, proxy, cluster string, version uint64) bool {
	var mine string
	n.fsm.read(func(m *fsm.Machine) { mine = m.Cluster })
	if cluster == "" || mine == "" || cluster == mine {
		return true
	}
	writeError(w, http.StatusConflict, directive.ErrorBody{Cluster: mine, Error: fmt.Sprintf(
		"proxy %s runs version %d of coordinator cluster %s; this is cluster %s, where version numbers mean other content: it keeps serving its directive and is not counted here. To move it to this cluster, stop it, run `lbsys coordinator reset-agent --state-file <its state file>` and start it again",
		proxy, version, cluster, mine)})
	return false
}

// observe queues a report when the request tells the leader something its
// state does not know yet, or the proxy was not heard from for a third of
// its TTL. Repeated polls with nothing new cost no log entry.
func (n *Node) observe(req *directive.WatchRequest) {
	now := time.Now()
	need := false
	n.fsm.read(func(m *fsm.Machine) {
		p := m.Proxies[req.Proxy]
		need = p == nil || p.Version != req.Version ||
			(req.Rejected != 0 && (p.Rejected != req.Rejected || p.RejectError != req.Error)) ||
			now.Sub(p.SeenAt) > m.Policy.ProxyTTL.Std()/3
	})
	if need {
		n.enqueueReport(fsm.ProxyReport{Proxy: req.Proxy, Version: req.Version, Nonce: req.Nonce, Rejected: req.Rejected, Error: req.Error})
	}
}

func (n *Node) newNonce() string {
	return n.opts.ID + "-" + strconv.FormatUint(n.raft.CurrentTerm(), 10) + "-" + strconv.FormatUint(n.nonce.Add(1), 10)
}

// handleReport takes a proxy's canary-window statistics.
func (n *Node) handleReport(w http.ResponseWriter, r *http.Request, _ Principal) {
	var rep directive.Report
	if !decode(w, r, &rep) {
		return
	}
	if err := rep.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, directive.ErrorBody{Error: err.Error()})
		return
	}
	if !n.IsLeader() {
		n.notLeader(w, r)
		return
	}
	if !n.sameCluster(w, rep.Proxy, rep.Cluster, rep.Version) {
		return
	}
	n.enqueueReport(fsm.ProxyReport{Proxy: rep.Proxy, Version: rep.Version, Stats: &rep})
	w.WriteHeader(http.StatusNoContent)
}
