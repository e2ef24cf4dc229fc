package v3rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-db/cairn/internal/auth"
	"github.com/cairn-db/cairn/internal/server"
	"github.com/cairn-db/cairn/internal/version"
)

// HTTPHandler serves the client URL's plain HTTP endpoints, in etcd's
// formats: /health, /livez, /readyz, /version, /metrics and /debug/vars.
// It registers its own metrics on reg (the handler's requests, health
// checks). CORS and the Host check (--cors, --host-whitelist) are the
// caller's, in front.
func HTTPHandler(s *server.Server, reg *prometheus.Registry) http.Handler {
	healthy := prometheus.NewCounter(prometheus.CounterOpts{Namespace: "etcd", Subsystem: "server",
		Name: "health_success", Help: "The total number of successful health checks"})
	unhealthy := prometheus.NewCounter(prometheus.CounterOpts{Namespace: "etcd", Subsystem: "server",
		Name: "health_failures", Help: "The total number of failed health checks"})
	reg.MustRegister(healthy, unhealthy)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	mux.HandleFunc("/debug/vars", getOnly(func(w http.ResponseWriter, r *http.Request) { debugVars(w, r, s) }))
	mux.HandleFunc("/health", getOnly(func(w http.ResponseWriter, r *http.Request) {
		ok, reason := health(r.Context(), s, r.URL.Query().Get("serializable") == "true", r.URL.Query()["exclude"])
		if ok {
			healthy.Inc()
		} else {
			unhealthy.Inc()
		}
		body, _ := json.Marshal(struct {
			Health string `json:"health"`
			Reason string `json:"reason"`
		}{fmt.Sprint(ok), reason})
		if !ok {
			// As etcd: through http.Error (text/plain, a newline).
			http.Error(w, string(body), http.StatusServiceUnavailable)
			return
		}
		w.Write(body)
	}))
	livez := []check{{"serializable_read", func(ctx context.Context) error { return readCheck(ctx, s, true) }}}
	readyz := []check{
		{"data_corruption", func(context.Context) error { return alarmCheck(s, pb.AlarmType_CORRUPT) }},
		{"serializable_read", func(ctx context.Context) error { return readCheck(ctx, s, true) }},
		{"linearizable_read", func(ctx context.Context) error { return readCheck(ctx, s, false) }},
		{"non_learner", func(context.Context) error {
			if s.Status().IsLearner {
				return fmt.Errorf("not supported for learner")
			}
			return nil
		}},
	}
	for path, cs := range map[string][]check{"/livez": livez, "/readyz": readyz} {
		mux.HandleFunc(path, getOnly(checks(cs)))
		for _, c := range cs {
			mux.HandleFunc(path+"/"+c.name, getOnly(checks([]check{c})))
		}
	}
	mux.HandleFunc("/version", getOnly(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"etcdserver":"%s","etcdcluster":"%s","storage":"%s"}`, version.Etcd, version.Cluster, version.Storage)
	}))
	return mux
}

// debugVars serves what etcd serves on /debug/vars (Go's expvar format):
// the command line, the memory statistics, and etcd's own variables, the
// descriptor limit and raft's status; as a JSON object, keys sorted.
func debugVars(w http.ResponseWriter, r *http.Request, s *server.Server) {
	vars := map[string]any{
		"cmdline":               os.Args,
		"file_descriptor_limit": server.FDLimit(),
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	vars["memstats"] = ms
	if st, err := s.RaftStatusJSON(r.Context()); err == nil {
		vars["raft.status"] = json.RawMessage(st)
	}
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	var entries []string
	for _, k := range keys {
		if v, err := json.Marshal(vars[k]); err == nil {
			entries = append(entries, fmt.Sprintf("%q: %s", k, v))
		}
	}
	fmt.Fprintf(w, "{\n%s\n}\n", strings.Join(entries, ",\n"))
}

func getOnly(fn http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
			return
		}
		fn(w, r)
	}
}

// health is etcd's /health check, in its order: no alarm (unless its
// type is excluded), a leader (unless serializable), and a read that
// succeeds.
func health(ctx context.Context, s *server.Server, serializable bool, exclude []string) (bool, string) {
	for _, a := range s.Alarms() {
		if slices.Contains(exclude, a.Alarm.String()) {
			continue
		}
		switch a.Alarm {
		case pb.AlarmType_NOSPACE, pb.AlarmType_CORRUPT:
			return false, "ALARM " + a.Alarm.String()
		}
		return false, "ALARM UNKNOWN"
	}
	if !serializable && s.Leader() == 0 {
		return false, "RAFT NO LEADER"
	}
	if err := readCheck(ctx, s, serializable); err != nil {
		return false, "RANGE ERROR:" + err.Error()
	}
	return true, ""
}

// alarmCheck is etcd's check that no alarm of type at is active. /readyz's
// data_corruption fails on CORRUPT only: a member over its quota (NOSPACE)
// is still ready, as in etcd (its /health fails).
func alarmCheck(s *server.Server, at pb.AlarmType) error {
	for _, a := range s.Alarms() {
		if a.Alarm == at {
			return fmt.Errorf("alarm activated: %s", at)
		}
	}
	return nil
}

// readCheck reads a key as a client would. With auth enabled the read,
// which names no user, is refused after its linearizable wait: as etcd's,
// that refusal counts as healthy (the wait is what the check is for).
func readCheck(ctx context.Context, s *server.Server, serializable bool) error {
	_, err := s.Range(ctx, &pb.RangeRequest{Key: []byte("health"), Serializable: serializable, KeysOnly: true, Limit: 1})
	if errors.Is(err, auth.ErrUserEmpty) || errors.Is(err, auth.ErrPermissionDenied) {
		return nil
	}
	return err
}

type check struct {
	name string
	fn   func(ctx context.Context) error
}

// checks serves etcd's /livez and /readyz: "ok" when every check passes,
// and with ?verbose one line per check first; on a failure, 503 and every
// check's line; ?exclude=name skips a check.
func checks(cs []check) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		excluded := map[string]bool{}
		for _, e := range r.URL.Query()["exclude"] {
			excluded[strings.TrimSpace(e)] = true
		}
		var b strings.Builder
		failed := false
		for _, c := range cs {
			if excluded[c.name] {
				fmt.Fprintf(&b, "[+]%s excluded: ok\n", c.name)
				continue
			}
			if err := c.fn(r.Context()); err != nil {
				failed = true
				fmt.Fprintf(&b, "[-]%s failed: %v\n", c.name, err)
			} else {
				fmt.Fprintf(&b, "[+]%s ok\n", c.name)
			}
		}
		if failed {
			http.Error(w, b.String(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if _, verbose := r.URL.Query()["verbose"]; verbose {
			fmt.Fprint(w, b.String())
		}
		fmt.Fprint(w, "ok\n")
	}
}
