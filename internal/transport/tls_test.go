package transport

import (
	"context"
	"net"
	"testing"

	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/tlsutil"
	"github.com/cairn-db/cairn/internal/tlsutil/certtest"
)

// serveTLSNode starts member id on an https:// peer URL: its listener
// requires a peer certificate signed by the CA in server, and it dials
// its peers with client.
func serveTLSNode(t *testing.T, id uint64, server, client tlsutil.Info) *node {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lis, err := tlsutil.NewListener(raw, server, tlsutil.ListenerOptions{CheckSAN: true})
	if err != nil {
		t.Fatal(err)
	}
	ccfg, err := client.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	n := newNode(id, testCluster, nil, Config{TLS: ccfg, Cluster: func() ([]byte, error) { return []byte("cluster"), nil }})
	return serveNodeWith(t, n, lis, "https://"+raw.Addr().String())
}

// Members on https:// peer URLs with --peer-client-cert-auth reach each
// other with certificates of the peer CA (messages, FetchCluster), and a
// member whose certificate another CA signed reaches nobody.
func TestTLSPeers(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, dir, "peer")
	spec := certtest.Localhost
	spec.Name, spec.CN = "peer", "peer"
	pair := ca.Issue(t, spec)
	info := tlsutil.Info{CertFile: pair.CertFile, KeyFile: pair.KeyFile, TrustedCAFile: ca.CertFile, ClientCertAuth: true}
	a := serveTLSNode(t, 1, info, info)
	b := serveTLSNode(t, 2, info, info)
	connect(a, b)
	a.tr.Send([]raftpb.Message{app(1, 2, 1)})
	b.tr.Send([]raftpb.Message{app(2, 1, 1)})
	waitFor(t, "a message each way over TLS", func() bool {
		return len(b.raft.received(1)) == 1 && len(a.raft.received(2)) == 1
	})
	ccfg, err := info.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if got, err := FetchCluster(ctx, a.url(), ccfg); err != nil || string(got) != "cluster" {
		t.Fatalf("FetchCluster over TLS: %q, %v", got, err)
	}
	if _, err := FetchCluster(ctx, a.url(), nil); err == nil {
		t.Fatal("FetchCluster dialled an https:// URL without TLS")
	}

	other := certtest.NewCA(t, dir, "other")
	spec.Name = "intruder"
	bad := other.Issue(t, spec)
	// The intruder trusts the cluster's CA, so only its own certificate
	// is at fault.
	intruder := serveTLSNode(t, 3, info, tlsutil.Info{CertFile: bad.CertFile, KeyFile: bad.KeyFile, TrustedCAFile: ca.CertFile})
	intruder.tr.SetPeer(1, []string{a.url()})
	intruder.tr.Send([]raftpb.Message{app(3, 1, 1)})
	waitFor(t, "the intruder's message reported unreachable", func() bool { return intruder.raft.unreachableCount(1) > 0 })
	if got := a.raft.received(3); len(got) != 0 {
		t.Fatalf("a member with another CA's certificate delivered %d messages", len(got))
	}
}
