// Package diff runs the same KV operations against cairn and against
// stock etcd and requires the same responses, ignoring the identity in
// headers (cluster and member IDs, raft term). It runs when
// REFERENCE_ETCD_BINARY names a stock etcd binary (see
// ../shared/tools/etcd-reference.sh); otherwise it is skipped, and says so.
package diff

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/internal/porttest"
)

// startServer runs binary as a one-member cluster and returns a
// connection to it, once it serves. The test's end kills it.
func startServer(t *testing.T, binary string, extra ...string) *grpc.ClientConn {
	p := porttest.Free(t, 2)
	cport, pport := p[0], p[1]
	curl, purl := fmt.Sprintf("http://127.0.0.1:%d", cport), fmt.Sprintf("http://127.0.0.1:%d", pport)
	cmd := exec.Command(binary, "--name", "d", "--data-dir", filepath.Join(t.TempDir(), "data"),
		"--listen-client-urls", curl, "--advertise-client-urls", curl,
		"--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
		"--initial-cluster", "d="+purl, "--log-level", "error")
	cmd.Args = append(cmd.Args, extra...)
	cmd.Env = cleanEnv()
	srv := startChild(t, cmd)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s:\n%s", srv, srv.output())
		}
	})
	conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", cport), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	kv := pb.NewKVClient(conn)
	deadline := time.Now().Add(waitDeadline)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("x")}, grpc.WaitForReady(true))
		cancel()
		if err == nil {
			return conn
		}
		if srv.done() || time.Now().After(deadline) {
			t.Fatalf("%s not serving within %v: %v\n%s", srv, waitDeadline, err, srv.output())
		}
		time.Sleep(50 * time.Millisecond) // polling a starting process
	}
}

// cleanEnv is the environment without CAIRN_ and ETCD_ variables, which
// both servers would read as flags.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CAIRN_") && !strings.HasPrefix(kv, "ETCD_") &&
			!strings.HasPrefix(kv, "CAIRNCTL_") && !strings.HasPrefix(kv, "ETCDCTL_") {
			env = append(env, kv)
		}
	}
	return env
}

// cairnBinary and ctlBinary are the server and cairnctl (named etcdctl:
// installed as etcdctl, as a drop-in replacement is, it names itself
// etcdctl in its messages), built once for the package's tests.
var cairnBinary, ctlBinary, utlBinary string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "cairn-diff-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	cairnBinary, ctlBinary, utlBinary = filepath.Join(dir, "cairn"), filepath.Join(dir, "etcdctl"), filepath.Join(dir, "cairnutl")
	for _, b := range []struct{ out, pkg string }{{cairnBinary, "cairn"}, {ctlBinary, "cairnctl"}, {utlBinary, "cairnutl"}} {
		build := exec.Command("go", "build", "-o", b.out, "../../cmd/"+b.pkg)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building", b.pkg+":", err)
			return 1
		}
	}
	return m.Run()
}

// binaries returns the cairn binary and the stock etcd binary, or skips
// the test if there is none.
func binaries(t *testing.T) (cairn, etcd string) {
	etcd = os.Getenv("REFERENCE_ETCD_BINARY")
	if etcd == "" {
		t.Skip("REFERENCE_ETCD_BINARY is not set: no stock etcd to compare with " +
			"(set it to the etcd binary that ETCD_REF_VERSION=v3.7.3 ../shared/tools/etcd-reference.sh builds)")
	}
	return cairnBinary, etcd
}

// seeds is how many seeds to run: CAIRN_DIFF_SEEDS, default 3.
func seeds() int {
	n := 3
	if s := os.Getenv("CAIRN_DIFF_SEEDS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	return n
}

// op is one request and a printer of its outcome.
type op struct {
	desc string
	run  func(ctx context.Context, kv pb.KVClient) string
}

func result(resp fmt.Stringer, err error) string {
	if err != nil {
		st, _ := status.FromError(err)
		return fmt.Sprintf("error %s: %s", st.Code(), st.Message())
	}
	s := resp.String()
	// Identity differs between the two clusters; revisions must not.
	for _, field := range []string{"cluster_id", "member_id", "raft_term"} {
		for {
			i := strings.Index(s, field+":")
			if i < 0 {
				break
			}
			j := i + len(field) + 1
			for j < len(s) && (s[j] == ' ' || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			s = s[:i] + s[j:]
		}
	}
	return s
}

var keys = []string{"a", "b", "b1", "b2", "c", "d/1", "d/2", "d/3", "e"}

func randKey(r *rand.Rand) []byte { return []byte(keys[r.IntN(len(keys))]) }

func randRange(r *rand.Rand) (key, end []byte) {
	key = randKey(r)
	switch r.IntN(4) {
	case 0:
		return key, nil
	case 1:
		return key, []byte{0}
	case 2:
		return []byte("d/"), []byte("d0")
	}
	return key, randKey(r)
}

func randRangeRequest(r *rand.Rand, rev int64) *pb.RangeRequest {
	key, end := randRange(r)
	req := &pb.RangeRequest{Key: key, RangeEnd: end}
	if r.IntN(3) == 0 {
		req.Limit = int64(r.IntN(3))
	}
	if r.IntN(3) == 0 {
		req.Revision = r.Int64N(rev + 3)
	}
	if r.IntN(3) == 0 {
		req.SortOrder = pb.RangeRequest_SortOrder(r.IntN(3))
		req.SortTarget = pb.RangeRequest_SortTarget(r.IntN(5))
	}
	req.KeysOnly = r.IntN(5) == 0
	req.CountOnly = r.IntN(6) == 0
	if r.IntN(5) == 0 {
		req.MinModRevision = r.Int64N(rev + 1)
	}
	if r.IntN(5) == 0 {
		req.MaxCreateRevision = r.Int64N(rev + 1)
	}
	return req
}

func randPut(r *rand.Rand) *pb.PutRequest {
	req := &pb.PutRequest{Key: randKey(r), Value: []byte(strconv.Itoa(r.IntN(100))), PrevKv: r.IntN(2) == 0}
	switch r.IntN(8) {
	case 0:
		req.IgnoreValue, req.Value = true, nil
	case 1:
		req.Lease = 42 // no such lease
	case 2:
		req.Key = nil
	}
	return req
}

func randCompare(r *rand.Rand) *pb.Compare {
	c := &pb.Compare{Key: randKey(r), Result: pb.Compare_CompareResult(r.IntN(4))}
	switch r.IntN(4) {
	case 0:
		c.Target, c.TargetUnion = pb.Compare_VALUE, &pb.Compare_Value{Value: []byte(strconv.Itoa(r.IntN(100)))}
	case 1:
		c.Target, c.TargetUnion = pb.Compare_VERSION, &pb.Compare_Version{Version: r.Int64N(4)}
	case 2:
		c.Target, c.TargetUnion = pb.Compare_CREATE, &pb.Compare_CreateRevision{CreateRevision: r.Int64N(10)}
	default:
		c.Target, c.TargetUnion = pb.Compare_MOD, &pb.Compare_ModRevision{ModRevision: r.Int64N(10)}
	}
	return c
}

func randOps(r *rand.Rand, rev int64, depth int) []*pb.RequestOp {
	var ops []*pb.RequestOp
	for range r.IntN(4) {
		switch r.IntN(6) {
		case 5:
			if r.IntN(4) == 0 {
				ops = append(ops, &pb.RequestOp{}) // an empty op
			}
		case 0, 1:
			ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: randPut(r)}})
		case 2:
			key, end := randRange(r)
			ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{
				RequestDeleteRange: &pb.DeleteRangeRequest{Key: key, RangeEnd: end, PrevKv: r.IntN(2) == 0}}})
		case 3:
			ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: randRangeRequest(r, rev)}})
		case 4:
			if depth < 2 {
				ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: randTxn(r, rev, depth+1)}})
			}
		}
	}
	return ops
}

func randTxn(r *rand.Rand, rev int64, depth int) *pb.TxnRequest {
	t := &pb.TxnRequest{Success: randOps(r, rev, depth), Failure: randOps(r, rev, depth)}
	for range r.IntN(3) {
		t.Compare = append(t.Compare, randCompare(r))
	}
	return t
}

// TestDifferential sends the same seeded operations to cairn and to stock
// etcd, one at a time, and compares every response.
func TestDifferential(t *testing.T) {
	cairn, etcd := binaries(t)
	for seed := range seeds() {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			a, b := pb.NewKVClient(startServer(t, cairn)), pb.NewKVClient(startServer(t, etcd))
			r := rand.New(rand.NewPCG(uint64(seed), 0))
			var rev int64 = 1
			for i := range 400 {
				var o op
				switch k := r.IntN(20); {
				case k < 6:
					req := randPut(r)
					o = op{fmt.Sprintf("put %v", req), func(ctx context.Context, kv pb.KVClient) string {
						return result(kv.Put(ctx, req))
					}}
				case k < 9:
					req := randRangeRequest(r, rev)
					o = op{fmt.Sprintf("range %v", req), func(ctx context.Context, kv pb.KVClient) string {
						return result(kv.Range(ctx, req))
					}}
				case k < 11:
					key, end := randRange(r)
					req := &pb.DeleteRangeRequest{Key: key, RangeEnd: end, PrevKv: r.IntN(2) == 0}
					o = op{fmt.Sprintf("delete %v", req), func(ctx context.Context, kv pb.KVClient) string {
						return result(kv.DeleteRange(ctx, req))
					}}
				case k < 18:
					req := randTxn(r, rev, 0)
					o = op{fmt.Sprintf("txn %v", req), func(ctx context.Context, kv pb.KVClient) string {
						return result(kv.Txn(ctx, req))
					}}
				default:
					req := &pb.CompactionRequest{Revision: r.Int64N(rev + 2), Physical: r.IntN(2) == 0}
					o = op{fmt.Sprintf("compact %v", req), func(ctx context.Context, kv pb.KVClient) string {
						return result(kv.Compact(ctx, req))
					}}
				}
				ctx, cancel := context.WithTimeout(context.Background(), waitDeadline)
				got, want := o.run(ctx, a), o.run(ctx, b)
				cancel()
				if strings.Contains(got, "key not found") && strings.Contains(want, "Unavailable") {
					// The one documented difference (README): a txn that
					// deletes from a key on and then puts a later key with
					// ignore_value/ignore_lease makes etcd panic; Cairn
					// refuses it. etcd is down now: end this seed.
					t.Logf("op %d: %s: etcd crashed where Cairn refuses (documented difference)", i, o.desc)
					return
				}
				if got != want {
					t.Fatalf("op %d: %s\ncairn: %s\netcd:  %s", i, o.desc, got, want)
				}
				if i := strings.Index(want, "revision:"); i >= 0 {
					fmt.Sscan(strings.TrimLeft(want[i+len("revision:"):], " "), &rev)
				}
			}
		})
	}
}
