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
	ccfg, err := client.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	return serveTLSNodeWith(t, id, server, Config{TLS: ccfg})
}

// serveTLSNodeWith is serveTLSNode with the member's transport
// configured by cfg (its IDs and hooks set by newNode; Cluster answers
// "cluster").
func serveTLSNodeWith(t *testing.T, id uint64, server tlsutil.Info, cfg Config) *node {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lis, err := tlsutil.NewListener(raw, server, tlsutil.ListenerOptions{CheckSAN: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Cluster = func() ([]byte, error) { return []byte("cluster"), nil }
	return serveNodeWith(t, newNode(id, testCluster, nil, cfg), lis, "https://"+raw.Addr().String())
}

// peerPKI is a peer CA in a temporary directory, and the TLS of a
// certificate for localhost it issued, with client certificates required.
func peerPKI(t *testing.T) (*certtest.CA, tlsutil.Info) {
	t.Helper()
	ca := certtest.NewCA(t, t.TempDir(), "peer")
	spec := certtest.Localhost
	spec.Name, spec.CN = "peer", "peer"
	pair := ca.Issue(t, spec)
	return ca, tlsutil.Info{CertFile: pair.CertFile, KeyFile: pair.KeyFile, TrustedCAFile: ca.CertFile, ClientCertAuth: true}
}

// Members on https:// peer URLs with --peer-client-cert-auth reach each
// other with certificates of the peer CA (messages, FetchCluster), and a
// member whose certificate another CA signed reaches nobody.
func TestTLSPeers(t *testing.T) {
	ca, info := peerPKI(t)
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
	if got, err := FetchCluster(ctx, a.url(), ccfg, nil); err != nil || string(got) != "cluster" {
		t.Fatalf("FetchCluster over TLS: %q, %v", got, err)
	}
	if _, err := FetchCluster(ctx, a.url(), nil, nil); err == nil {
		t.Fatal("FetchCluster dialled an https:// URL without TLS")
	}

	other := certtest.NewCA(t, t.TempDir(), "other")
	spec := certtest.Localhost
	spec.Name, spec.CN = "intruder", "peer"
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

// A member whose peer certificate names only one of its host's addresses
// reaches peers that check the certificate's addresses against the
// connection's source (--peer-client-cert-auth) only when it dials from
// that address (Config.LocalAddr, etcd's SetMemberLocalAddr): messages,
// and FetchCluster as a joining member asks it. Without it the kernel
// picks 127.0.0.1 to reach 127.0.0.1, and the peer refuses the
// certificate. (Linux routes all of 127/8 to the loopback device.)
func TestPeerLocalAddr(t *testing.T) {
	ca, info := peerPKI(t)
	spec2 := certtest.Spec{Name: "second-address", CN: "peer", IPs: []net.IP{net.ParseIP("127.0.0.2")}}
	pair2 := ca.Issue(t, spec2)
	info2 := tlsutil.Info{CertFile: pair2.CertFile, KeyFile: pair2.KeyFile, TrustedCAFile: ca.CertFile, ClientCertAuth: true}
	ccfg2, err := info2.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}

	a := serveTLSNode(t, 1, info, info)
	for _, tc := range []struct {
		id    uint64
		local net.IP
		want  bool
	}{{2, nil, false}, {3, net.ParseIP("127.0.0.2"), true}} {
		b := serveTLSNodeWith(t, tc.id, info, Config{TLS: ccfg2, LocalAddr: tc.local})
		b.tr.SetPeer(1, []string{a.url()})
		b.tr.Send([]raftpb.Message{app(tc.id, 1, 1)})
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		_, ferr := FetchCluster(ctx, a.url(), ccfg2, tc.local)
		cancel()
		if !tc.want {
			waitFor(t, "the message from 127.0.0.1 reported unreachable", func() bool { return b.raft.unreachableCount(1) > 0 })
			if got := a.raft.received(tc.id); len(got) != 0 {
				t.Fatalf("a member dialling from 127.0.0.1 with a certificate for 127.0.0.2 delivered %d messages", len(got))
			}
			if ferr == nil {
				t.Fatal("FetchCluster from 127.0.0.1 with a certificate for 127.0.0.2 was answered")
			}
			continue
		}
		waitFor(t, "the message from 127.0.0.2 delivered", func() bool { return len(a.raft.received(tc.id)) == 1 })
		if ferr != nil {
			t.Fatalf("FetchCluster from 127.0.0.2: %v", ferr)
		}
	}
}
