package main

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/mirror"

	"github.com/cairn-db/cairn/internal/tool"
)

// mirrorOptions are make-mirror's flags.
type mirrorOptions struct {
	cacert, cert, key    string
	insecure             bool
	user, password       string
	prefix, destPrefix   string
	noDestPrefix         bool
	maxTxnOps            uint
	rev                  int64
	progressEvery        time.Duration
	destinationEndpoints []string
}

// newMakeMirrorCommand is etcdctl's make-mirror: copy the keys under
// --prefix to the destination cluster, then keep applying every later
// change there, a source revision's changes in one destination txn (at
// most --max-txn-ops operations each), until interrupted. The number of
// keys copied so far is printed every 30 seconds.
func newMakeMirrorCommand(g *globals) *cobra.Command {
	o := mirrorOptions{progressEvery: 30 * time.Second}
	cmd := &cobra.Command{
		Use:   "make-mirror [options] <destination>",
		Short: "Makes a mirror at the destination etcd cluster",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return tool.BadArgs("make-mirror takes one destination argument")
			}
			if o.noDestPrefix && o.destPrefix != "" {
				return tool.BadArgs("`--dest-prefix` and `--no-dest-prefix` cannot be set at the same time, choose one")
			}
			// The destination prefix is the source's unless told otherwise.
			// (etcdctl forgets this default when --rev is given, and strips
			// the prefix then; Cairn keeps it.)
			if !o.noDestPrefix && o.destPrefix == "" {
				o.destPrefix = o.prefix
			}
			o.destinationEndpoints = args
			dst, err := g.mirrorDestination(&o)
			if err != nil {
				return err
			}
			defer dst.Close()
			return g.withClient(func(src *clientv3.Client) error {
				return tool.ExitErr{Code: tool.ExitError, Err: g.mirror(context.Background(), src, dst, &o)}
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.cacert, "dest-cacert", "", "Verify certificates of TLS enabled secure servers using this CA bundle")
	f.StringVar(&o.cert, "dest-cert", "", "Identify secure client using this TLS certificate file for the destination cluster")
	f.StringVar(&o.key, "dest-key", "", "Identify secure client using this TLS key file")
	f.BoolVar(&o.insecure, "dest-insecure-transport", true, "Disable transport security for client connections")
	f.StringVar(&o.user, "dest-user", "", "Destination username[:password] for authentication (prompt if password is not supplied)")
	f.StringVar(&o.password, "dest-password", "", "Destination password for authentication (if this option is used, --user option shouldn't include password)")
	f.StringVar(&o.prefix, "prefix", "", "Key-value prefix to mirror")
	f.StringVar(&o.destPrefix, "dest-prefix", "", "destination prefix to mirror a prefix to a different prefix in the destination cluster")
	f.BoolVar(&o.noDestPrefix, "no-dest-prefix", false, "mirror key-values to the root of the destination cluster")
	f.UintVar(&o.maxTxnOps, "max-txn-ops", 128, "Maximum number of operations permitted in a transaction during syncing updates.")
	f.Int64Var(&o.rev, "rev", 0, "Specify the kv revision to start to mirror")
	return cmd
}

// mirrorDestination connects to the destination cluster with the
// --dest-* flags and the global connection settings.
func (g *globals) mirrorDestination(o *mirrorOptions) (*clientv3.Client, error) {
	dg := *g
	dg.endpoints = o.destinationEndpoints
	dg.cacert, dg.cert, dg.key, dg.insecure = o.cacert, o.cert, o.key, o.insecure
	dg.skipVerify = false
	dg.discoverySRV = ""
	dg.user, dg.password = o.user, o.password
	if o.user != "" && !strings.Contains(o.user, ":") && o.password == "" {
		fmt.Fprint(g.stdout, "Destination Password: ")
		dg.password = g.readSecret()
		fmt.Fprintln(g.stdout)
	}
	return dg.client()
}

// mirror copies and then follows the source; it returns only with an
// error (a compacted start is one).
func (g *globals) mirror(ctx context.Context, src, dst *clientv3.Client, o *mirrorOptions) error {
	var total atomic.Int64
	done := make(chan struct{})
	defer close(done)
	go func() { // owned by mirror: ends when it returns
		t := time.NewTicker(o.progressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintln(g.stdout, total.Load())
			}
		}
	}()
	rename := func(key []byte) string { return o.destPrefix + string(key[len(o.prefix):]) }

	startRev := max(o.rev-1, 0)
	s := mirror.NewSyncer(src, o.prefix, startRev)
	if startRev == 0 {
		pages, errc := s.SyncBase(ctx)
		for page := range pages {
			for _, kv := range page.Kvs {
				if _, err := dst.Put(ctx, rename(kv.Key), string(kv.Value)); err != nil {
					return err
				}
				total.Add(1)
			}
		}
		if err := <-errc; err != nil {
			return err
		}
	}
	for wr := range s.SyncUpdates(ctx) {
		if wr.CompactRevision != 0 {
			return rpctypes.ErrCompacted
		}
		if err := wr.Err(); err != nil {
			return err
		}
		var ops []clientv3.Op
		flush := func() error {
			if len(ops) == 0 {
				return nil
			}
			_, err := dst.Txn(ctx).Then(ops...).Commit()
			ops = ops[:0]
			return err
		}
		var lastRev int64
		for _, ev := range wr.Events {
			if (lastRev != 0 && ev.Kv.ModRevision != lastRev) || len(ops) == int(o.maxTxnOps) {
				if err := flush(); err != nil {
					return err
				}
			}
			lastRev = ev.Kv.ModRevision
			if ev.Type == mvccpb.DELETE {
				ops = append(ops, clientv3.OpDelete(rename(ev.Kv.Key)))
			} else {
				ops = append(ops, clientv3.OpPut(rename(ev.Kv.Key), string(ev.Kv.Value)))
			}
			total.Add(1)
		}
		if err := flush(); err != nil {
			return err
		}
	}
	return fmt.Errorf("watch is canceled by the server")
}
