package grpcproxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// health is the body of /health and /proxy/health, etcd's.
type health struct {
	Health string `json:"health"`
	Reason string `json:"reason"`
}

// HandleHealth serves /health: the cluster's health as the proxy sees it,
// a read through c within a second (a permission denied counts as an
// answer), as etcd's proxy checks it.
func HandleHealth(mux *http.ServeMux, c *clientv3.Client, lg *zap.Logger) {
	mux.HandleFunc("/health", healthHandler(lg, func() health { return checkHealth(c) }))
}

// HandleProxyHealth serves /proxy/health: the proxy's own health, checked
// through self (a client of the proxy itself; nil when it advertises no
// URL): a read, then a watch created within 3 seconds.
func HandleProxyHealth(mux *http.ServeMux, self *clientv3.Client, lg *zap.Logger) {
	mux.HandleFunc("/proxy/health", healthHandler(lg, func() health {
		if self == nil {
			return health{Health: "false", Reason: "no connection to proxy"}
		}
		h := checkHealth(self)
		if h.Health != "true" {
			return h
		}
		ctx, cancel := context.WithTimeout(self.Ctx(), 3*time.Second)
		defer cancel()
		select {
		case <-self.Watch(ctx, "a", clientv3.WithCreatedNotify()):
		case <-ctx.Done():
			return health{Health: "false", Reason: "WATCH TIMEOUT"}
		}
		return h
	}))
}

func checkHealth(c *clientv3.Client) health {
	ctx, cancel := context.WithTimeout(c.Ctx(), time.Second)
	_, err := c.Get(ctx, "a")
	cancel()
	if err == nil || errors.Is(err, rpctypes.ErrPermissionDenied) {
		return health{Health: "true"}
	}
	return health{Health: "false", Reason: fmt.Sprintf("GET ERROR:%s", err)}
}

func healthHandler(lg *zap.Logger, check func() health) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
			return
		}
		h := check()
		if h.Health != "true" {
			lg.Warn("serving /health false", zap.String("reason", h.Reason))
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		b, _ := json.Marshal(h)
		w.Write(b)
	}
}

// HandleMetrics serves /metrics: the metrics of the cluster's first
// endpoint, fetched with hc, as etcd's proxy serves them.
func HandleMetrics(mux *http.ServeMux, hc *http.Client, c *clientv3.Client) {
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		eps := c.Endpoints()
		if len(eps) == 0 {
			http.Error(w, "Internal server error", http.StatusInternalServerError)
			return
		}
		target := eps[0] + "/metrics"
		if !strings.Contains(target, "://") {
			scheme := "http"
			if r.TLS != nil {
				scheme = "https"
			}
			target = scheme + "://" + target
		}
		resp, err := hc.Get(target)
		if err != nil {
			http.Error(w, "Internal server error", http.StatusInternalServerError)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		io.Copy(w, resp.Body)
	})
}
