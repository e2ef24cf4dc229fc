package v3rpc

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-db/cairn/internal/server"
)

// HTTPHandler serves the client URL's plain HTTP endpoints, in etcd's
// formats: /health, /livez, /readyz, /version and /metrics.
func HTTPHandler(s *server.Server, reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
			return
		}
		serializable := r.URL.Query().Get("serializable") == "true"
		ok, reason := health(r.Context(), s, serializable)
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		body, _ := json.Marshal(struct {
			Health string `json:"health"`
			Reason string `json:"reason"`
		}{fmt.Sprint(ok), reason})
		w.Write(body)
	})
	mux.HandleFunc("/livez", checks(s, []check{{"serializable_read", func(ctx context.Context) error {
		return readCheck(ctx, s, true)
	}}}))
	mux.HandleFunc("/readyz", checks(s, []check{
		{"data_corruption", func(context.Context) error { return nil }},
		{"serializable_read", func(ctx context.Context) error { return readCheck(ctx, s, true) }},
		{"linearizable_read", func(ctx context.Context) error { return readCheck(ctx, s, false) }},
	}))
	mux.HandleFunc("/version", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"etcdserver":"%s","etcdcluster":"%s","storage":"%s"}`, APIVersion, APIVersion, APIVersion)
	})
	return mux
}

// health is etcd's /health check: a leader, no alarm, and a read that
// succeeds (linearizable unless asked otherwise).
func health(ctx context.Context, s *server.Server, serializable bool) (bool, string) {
	st := s.Status()
	if len(st.Errors) > 0 {
		return false, "ALARM NOSPACE"
	}
	if st.Leader == 0 {
		return false, "RAFT NO LEADER"
	}
	if err := readCheck(ctx, s, serializable); err != nil {
		return false, "QGET ERROR:" + err.Error()
	}
	return true, ""
}

func readCheck(ctx context.Context, s *server.Server, serializable bool) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := s.Range(ctx, &pb.RangeRequest{Key: []byte("health"), Serializable: serializable})
	return err
}

type check struct {
	name string
	fn   func(ctx context.Context) error
}

// checks serves etcd's /livez and /readyz: "ok" when every check passes,
// and with ?verbose one line per check; ?exclude=name skips a check.
func checks(s *server.Server, cs []check) http.HandlerFunc {
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
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, verbose := r.URL.Query()["verbose"]
		if failed {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "%s%s check failed\n", b.String(), strings.TrimPrefix(r.URL.Path, "/"))
			return
		}
		if verbose {
			fmt.Fprintf(w, "%s%s check passed\n", b.String(), strings.TrimPrefix(r.URL.Path, "/"))
			return
		}
		fmt.Fprint(w, "ok\n")
	}
}
