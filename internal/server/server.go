package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/internal/apply"
	"github.com/cairn-db/cairn/internal/auth"
	"github.com/cairn-db/cairn/internal/backend"
	"github.com/cairn-db/cairn/internal/discovery"
	"github.com/cairn-db/cairn/internal/lograte"
	"github.com/cairn-db/cairn/internal/member"
	"github.com/cairn-db/cairn/internal/membership"
	"github.com/cairn-db/cairn/internal/raft"
	"github.com/cairn-db/cairn/internal/raft/raftpb"
	"github.com/cairn-db/cairn/internal/raftnode"
	"github.com/cairn-db/cairn/internal/transport"
	"github.com/cairn-db/cairn/internal/vfs"
	"github.com/cairn-db/cairn/internal/wal"
)

// Server is one running member.
type Server struct {
	cfg    Config
	logger *zap.Logger
	st     *member.Storage
	rn     *raftnode.Node
	// pipeline is owned by the apply loop.
	pipeline *member.Pipeline
	images   *member.Images
	tr       *transport.Transport
	applier  *apply.Applier
	metrics  *metrics
	wait     *waitRegistry
	reqIDs   requestIDs

	// inflight counts the proposals waited on; timeouts limits the
	// warnings about those that time out (timeout.go).
	inflight inflight
	timeouts lograte.Limit
	// admission bounds the bytes of proposals in flight (admission.go).
	admission *admission

	// ready is closed once this start's attributes are published: the
	// member is in the cluster, has a leader and has applied the log up to
	// its own entry (etcd's ReadyNotify).
	ready chan struct{}
	// stopping is closed by Stop; done when every goroutine has ended.
	stopping chan struct{}
	done     chan struct{}
	wg       sync.WaitGroup
	stopOnce sync.Once
	// handOverOnce: a stopping leader hands leadership over once, however
	// often Stop is called.
	handOverOnce sync.Once
	// fatal is the error that stopped the member on its own, if any.
	fatal atomic.Pointer[error]

	applied struct {
		sync.Mutex
		index uint64
		// changed is closed and replaced each time index moves.
		changed chan struct{}
	}
	// members is the membership as last applied, for the raft loop's
	// ConfState hook: reading the applier there could wait on a snapshot
	// restore, which holds the applier across closing and reopening the
	// database, and stop ticks and heartbeats meanwhile.
	members atomic.Pointer[[]membership.Member]
	// peers guards the transport's peer set, which both the raft loop
	// (configurations) and the apply loop (members) change; conf is
	// raft's latest configuration.
	peers struct {
		sync.Mutex
		conf raftpb.ConfState
	}
	// removed are the IDs removed from the cluster, as last applied: the
	// transport asks for every frame it receives, so not of the applier
	// (whose lock a restore holds).
	removed atomic.Pointer[map[uint64]bool]
	// learner is whether this member's record says learner.
	learner atomic.Bool

	reads readBatcher

	// raisingNoSpace is set while a goroutine raises this member's
	// NOSPACE alarm for a write applied over the quota (one at a time).
	raisingNoSpace atomic.Bool

	// defragMu makes defragmentations one at a time.
	defragMu sync.Mutex

	// reconfigMu makes the leader's membership changes one at a time,
	// each checked against the membership the one before left.
	reconfigMu sync.Mutex
	// removedOnce is set when this member learns it was removed.
	removedOnce atomic.Bool

	// leaseClears are leases renewed with a checkpoint to clear: the lease
	// loop proposes the clears, in batches.
	leaseClears chan int64

	// restarted is whether the member had data before this start (the
	// initial corruption check only runs then, as etcd's).
	restarted bool
	// corrupt is the corruption checks' state (see corrupt.go).
	corrupt corruptChecker

	// backups numbers the backup files being written (backup.go).
	backups atomic.Uint64
}

// maxAppliedLag is how far the applied index may fall behind the commit
// index before proposals are refused with "too many requests" (etcd's
// maxGapBetweenApplyAndCommitIndex).
const maxAppliedLag = 5000

// New recovers or bootstraps the member's storage. Start runs it.
func New(cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m := newMetrics()
	// An unreadable WAL directory: bootstrap says why.
	restarted, _ := wal.Exists(vfs.OS(), cfg.walDir())
	st, err := bootstrap(&cfg, m)
	if err != nil {
		return nil, err
	}
	if st.Applier.IsRemoved(st.MemberID) {
		st.Close()
		return nil, fmt.Errorf("%w: member %s; the data-dir used by this member (%s) must be removed before it is added again",
			ErrMemberRemoved, membership.IDString(st.MemberID), cfg.DataDir)
	}
	s := &Server{
		cfg: cfg, logger: cfg.Logger, st: st, applier: st.Applier, wait: newWaitRegistry(),
		ready: make(chan struct{}), stopping: make(chan struct{}), done: make(chan struct{}),
		images:  member.NewImages(st, m.backendSnapshot),
		metrics: m, restarted: restarted, admission: newAdmission(maxProposalBytes),
	}
	as, err := auth.New(auth.Options{Token: cfg.AuthToken, TokenTTL: cfg.AuthTokenTTL, BcryptCost: cfg.BcryptCost, Logger: cfg.Logger})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("creating the auth store (--auth-token %q): %w", cfg.AuthToken, err)
	}
	st.Applier.SetAuth(as)
	s.refreshMembers()
	s.removeStaleBackups()
	s.pipeline = member.NewPipeline(st, member.PipelineConfig{
		SnapshotCount: cfg.SnapshotCount,
		SnapshotBytes: snapshotBytes,
		// No deadline: the loop answers even while it waits for this
		// applier, and Stop ends it (ErrStopped) before anything waits on
		// the apply goroutine.
		TakeSnapshot: func(index uint64, cs raftpb.ConfState) error {
			return s.rn.TakeSnapshot(context.Background(), index, cs)
		},
		Applied:        s.entryApplied,
		Proposed:       s.wait.claim,
		MembersChanged: s.membersChanged,
		Logger:         cfg.Logger,
	})
	s.reqIDs.init(st.MemberID)
	if cfg.BootstrapDefragThresholdMegabytes != 0 {
		if err := s.maybeDefragment(); err != nil {
			st.Close()
			return nil, err
		}
	}
	s.applied.index = st.Applier.ConsistentIndex()
	s.applied.changed = make(chan struct{})
	s.reads.init()
	s.leaseClears = make(chan int64, maxCheckpointsPerEntry)
	m.register(cfg.Registry, s)
	return s, nil
}

// bootstrap opens the member's storage on the real disk, creating it on a
// first start; it counts into m.
func bootstrap(cfg *Config, m *metrics) (*member.Storage, error) {
	return member.Open(member.Config{
		Name: cfg.Name, Dir: cfg.memberDir(),
		InitialCluster: cfg.InitialCluster, InitialClusterToken: cfg.InitialClusterToken,
		InitialClusterState: cfg.InitialClusterState, AdvertisePeerURLs: cfg.AdvertisePeerURLs,
		MinLeaseTTL: cfg.MinLeaseTTL(), Backend: backend.Options{Logger: cfg.Logger, CommitSeconds: m.backendCommit},
		Logger: cfg.Logger, Metrics: m.storage,
		DedicatedWALDir: cfg.WALDir, MaxWALs: cfg.MaxWALs, WALSegmentBytes: cfg.WALSegmentBytes, UnsafeNoFsync: cfg.UnsafeNoFsync,
		ForceNewCluster: cfg.ForceNewCluster,
		Join:            func() (member.JoinInfo, error) { return joinInfo(*cfg) },
		Discover:        discoverFunc(cfg),
	})
}

// discoverFunc is member.Config.Discover for cfg: nil without a discovery
// service. The wait for the other members has no deadline, as etcd's.
func discoverFunc(cfg *Config) func(uint64, string) (string, error) {
	if cfg.Discovery == nil {
		return nil
	}
	dc := *cfg.Discovery
	if dc.Logger == nil {
		dc.Logger = cfg.Logger
	}
	return func(id uint64, self string) (string, error) {
		return discovery.Join(context.Background(), dc, id, self)
	}
}

// ID is the member's ID.
func (s *Server) ID() uint64 { return s.st.MemberID }

// ClusterID is the cluster's ID.
func (s *Server) ClusterID() uint64 { return s.st.ClusterID }

// Term is the current raft term.
func (s *Server) Term() uint64 { return s.rn.Term() }

// Leader is the current leader's ID (0 for none).
func (s *Server) Leader() uint64 { return s.rn.Lead() }

// Config is the configuration the server runs with (defaults filled in).
func (s *Server) Config() Config { return s.cfg }

// RegisterPeerService adds the peer transport's service to a gRPC server
// built with PeerServerOptions.
func (s *Server) RegisterPeerService(g *grpc.Server) { s.tr.Register(g) }

// ServePeers serves peer traffic on l until l is closed: raft's messages
// itself, and the rest through g, a gRPC server built with
// PeerServerOptions and registered with RegisterPeerService.
func (s *Server) ServePeers(l net.Listener, g *grpc.Server) error { return s.tr.Serve(l, g) }

// PeerServerOptions are the options the peer gRPC server needs.
func PeerServerOptions() []grpc.ServerOption { return transport.ServerOptions() }

// Start starts the member. The peer service must be registered (see
// RegisterPeerService) right after, before peers can reach it.
func (s *Server) Start() error {
	s.tr = transport.New(transport.Config{
		LocalID: s.st.MemberID, ClusterID: s.st.ClusterID,
		Raft: (*raftAdapter)(s), Snapshots: s.images, Calls: s, Logger: s.logger, Metrics: s.metrics.transport,
		Removed: s.isRemoved, OnRemoved: s.removedByPeer, Cluster: s.describeCluster, TLS: s.cfg.PeerTLS,
		LocalAddr: s.cfg.PeerLocalAddr,
	})
	tick := s.cfg.HeartbeatInterval
	rn, err := raftnode.New(raftnode.Config{
		ID:             s.st.MemberID,
		ElectionTicks:  int(s.cfg.ElectionTimeout / tick),
		HeartbeatTicks: 1,
		TickInterval:   tick,
		Storage:        s.st.Raft,
		Applied:        s.applier.ConsistentIndex(),
		WAL:            s.st.WAL,
		Snap:           s.st.Snap,
		MaxSnapshots:   s.cfg.MaxSnapshots,
		Transport:      s.tr,
		Logger:         s.logger,
		Hooks: raftnode.Hooks{
			ConfState:     s.onConfState,
			LeaderChanged: s.leaderChanged,
		},
		Refused:         s.wait.refuse,
		CampaignOnStart: s.soleVoter(),
		DisablePreVote:  s.cfg.DisablePreVote,
		// The other limits are raftnode.DefaultLimits, checked against
		// MaxRequestBytes by Config.validate.
		Limits: raftnode.Limits{SnapshotCatchUpEntries: s.cfg.SnapshotCatchUpEntries},
	})
	if err != nil {
		s.tr.Stop()
		return err
	}
	// The transport reports to s.rn: set it before any peer runs.
	s.rn = rn
	for _, m := range s.st.Peers {
		s.tr.SetPeer(m.ID, m.PeerURLs)
	}
	if s.cfg.InitialCorruptCheck && s.restarted {
		// Before raft runs or peers are served, as etcd's.
		if err := s.initialCorruptCheck(); err != nil {
			s.logger.Error("checkInitialHashKV failed", zap.Error(err))
			s.tr.Stop()
			s.rn = nil // never started: Stop must not wait for it
			return err
		}
	}
	rn.Start()
	s.goAttached(s.applyLoop)
	s.goAttached(s.readLoop)
	s.goAttached(s.publishAttributes)
	s.goAttached(s.watchRaft)
	s.goAttached(s.leaseLoop)
	s.goAttached(s.advanceTicks)
	s.goAttached(s.promoteLoop)
	if c := newAutoCompactor(s); c != nil {
		s.goAttached(c.run)
	}
	if s.cfg.CorruptCheckTime > 0 || s.cfg.CompactHashCheck {
		s.goAttached(s.corruptCheckLoop)
	}
	go func() {
		s.wg.Wait()
		close(s.done)
	}()
	return nil
}

// soleVoter reports whether this member is the only voter in the
// configuration raft starts with, so need not wait an election timeout
// to lead (etcd fast-forwards a one-member cluster's election ticks).
func (s *Server) soleVoter() bool {
	voters := s.st.ConfState.Voters
	return len(voters) == 1 && voters[0] == s.st.MemberID
}

// goAttached runs fn in a goroutine that Stop waits for.
func (s *Server) goAttached(fn func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
}

// Stop stops the member and waits for everything it started. A leader
// stopping normally first hands its leadership over (transferOnStop), so
// the peer server must still serve: the leader learns that the transferee
// leads from the transferee's messages (etcd likewise stops its server
// before its peer handlers).
func (s *Server) Stop() {
	if s.rn != nil && s.Err() == nil {
		s.handOverOnce.Do(s.transferOnStop)
	}
	s.stopOnce.Do(func() { close(s.stopping) })
	if s.rn != nil {
		s.rn.Stop()
		<-s.done
		s.tr.Stop()
	}
	if err := s.st.WAL.Close(); err != nil {
		s.logger.Warn("closing the WAL", zap.Error(err))
	}
	if err := s.applier.Close(); err != nil {
		s.logger.Warn("closing the backend", zap.Error(err))
	}
}

// ReadyNotify is closed when the member is ready to serve client requests:
// it has published its name and client URLs through raft in this start and
// applied that entry (so it is in the cluster, a leader exists, and its
// state is current up to then), as etcd's ReadyNotify.
func (s *Server) ReadyNotify() <-chan struct{} { return s.ready }

// Stopping is closed when the member starts stopping (on Stop or on a
// fatal error).
func (s *Server) Stopping() <-chan struct{} { return s.stopping }

// Err is the fatal error that stopped the member, or nil.
func (s *Server) Err() error {
	if p := s.fatal.Load(); p != nil {
		return *p
	}
	return nil
}

// failLocked records a fatal error and starts stopping.
func (s *Server) fail(err error) {
	if s.fatal.CompareAndSwap(nil, &err) {
		s.logger.Error("member stopping on a fatal error", zap.Error(err))
	}
	s.stopOnce.Do(func() { close(s.stopping) })
}

// watchRaft turns the raft loop stopping on its own (a storage error) into
// the member stopping.
func (s *Server) watchRaft() {
	select {
	case <-s.rn.Done():
		if err := s.rn.Err(); err != nil {
			s.fail(err)
		}
	case <-s.stopping:
	}
}

// leaderChanged is told of every leader change, from the raft loop. A
// member that stops leading stops keeping lease time at once; one that
// starts waits for its first entry to be applied (see applyAll).
func (s *Server) leaderChanged(lead uint64) {
	s.metrics.leaderChanged(lead)
	if lead != s.st.MemberID {
		s.applier.Lessor().Demote()
	}
}

// onConfState keeps the transport's peers in step with raft's
// configuration (called from the raft loop, before messages to new
// members are sent).
func (s *Server) onConfState(cs raftpb.ConfState) {
	s.peers.Lock()
	defer s.peers.Unlock()
	s.peers.conf = cs.Clone()
	s.syncPeersLocked()
}

// syncPeersLocked makes the transport's peers the members in raft's
// latest configuration and those in the applied membership, at their
// applied (or founding) URLs. A member that an uncommitted configuration
// removes keeps its peer until the removal is applied: if it leads, it
// needs the others' answers to commit its own removal (raft §4.2.2).
// REQUIRES: s.peers held.
func (s *Server) syncPeersLocked() {
	known := map[uint64]membership.Member{}
	for _, m := range s.st.Peers {
		known[m.ID] = m
	}
	in := map[uint64]bool{}
	for _, m := range *s.members.Load() {
		known[m.ID] = m
		in[m.ID] = true
	}
	for _, id := range append(append([]uint64(nil), s.peers.conf.Voters...), s.peers.conf.Learners...) {
		in[id] = true
	}
	if len(in) == 0 {
		// A joining member that has applied nothing yet: the members
		// the cluster described, so that it can answer the leader.
		for _, m := range s.st.Peers {
			in[m.ID] = true
		}
	}
	for id := range in {
		if m, ok := known[id]; ok {
			s.tr.SetPeer(id, m.PeerURLs)
		}
	}
	for _, id := range s.tr.Peers() {
		if !in[id] {
			s.tr.RemovePeer(id)
		}
	}
}

// applyLoop applies what raft committed, in order, and takes snapshots.
func (s *Server) applyLoop() {
	for {
		var ta raftnode.ToApply
		var ok bool
		select {
		case ta, ok = <-s.rn.Apply():
			if !ok {
				return
			}
		case <-s.pipeline.SnapshotFlushed():
			// The flush a snapshot waited for is done: take it now
			// rather than at the next entries, which may be long.
			if err := s.pipeline.FinishSnapshot(false); err != nil {
				s.fail(err)
				return
			}
			continue
		case <-s.stopping:
			return
		}
		if brokenStaleReads && !s.isLeader() {
			time.Sleep(brokenApplyDelay) // the broken build's fault (broken_on.go)
		}
		err := s.applyAll(ta)
		s.rn.ApplyDone(ta)
		if err != nil {
			s.fail(err)
			return
		}
	}
}

func (s *Server) applyAll(ta raftnode.ToApply) error {
	if !ta.Snapshot.IsEmpty() {
		s.metrics.snapshotApplying.Set(1)
		defer s.metrics.snapshotApplying.Set(0)
	}
	applied, err := s.pipeline.Apply(ta)
	if err != nil {
		return err
	}
	s.setApplied(applied)
	return nil
}

// entryApplied is told of each entry the pipeline applied.
func (s *Server) entryApplied(e raftpb.Entry, res apply.Result, took time.Duration) {
	s.metrics.observeApply(res, took)
	s.warnSlowApply(e, res, took)
	s.checkAppliedQuota(e, res)
	if res.ID != 0 {
		s.wait.trigger(res.ID, res)
	}
	if e.Type == raftpb.EntryNormal && len(e.Data) == 0 && e.Term == s.rn.Term() && s.isLeader() {
		// The leader's first entry of its term: everything before it
		// is applied, so the lessor is up to date and may keep time.
		// Leases start from their remaining TTLs, plus an election
		// timeout for keep-alives lost with the old leader.
		term := e.Term
		s.applier.Lessor().Promote(s.cfg.ElectionTimeout, func() bool {
			return s.isLeader() && s.rn.Term() == term
		})
	}
}

// membersChanged keeps the transport's peers and the raft loop's copy of
// the members in step with what was applied.
func (s *Server) membersChanged() {
	s.refreshMembers()
	s.checkRemoved()
	s.peers.Lock()
	defer s.peers.Unlock()
	s.syncPeersLocked()
}

func (s *Server) refreshMembers() {
	ms := s.applier.Members()
	s.members.Store(&ms)
	i := slices.IndexFunc(ms, func(m membership.Member) bool { return m.ID == s.st.MemberID })
	s.learner.Store(i >= 0 && ms[i].IsLearner)
	removed := map[uint64]bool{}
	for _, id := range s.applier.Removed() {
		removed[id] = true
	}
	s.removed.Store(&removed)
}

// isRemoved reports whether id was removed from the cluster (as applied).
func (s *Server) isRemoved(id uint64) bool { return (*s.removed.Load())[id] }

// IsLearner reports whether this member is a learner (as its member
// record says: a member added as a voter is not one, even while raft
// keeps it a learner until it has caught up).
func (s *Server) IsLearner() bool { return s.learner.Load() }

func (s *Server) setApplied(index uint64) {
	s.applied.Lock()
	defer s.applied.Unlock()
	if index > s.applied.index {
		s.applied.index = index
		close(s.applied.changed)
		s.applied.changed = make(chan struct{})
	}
}

// AppliedIndex is the index of the last entry applied.
func (s *Server) AppliedIndex() uint64 {
	s.applied.Lock()
	defer s.applied.Unlock()
	return s.applied.index
}

// waitApplied waits until index is applied.
func (s *Server) waitApplied(ctx context.Context, index uint64) error {
	for {
		s.applied.Lock()
		if s.applied.index >= index {
			s.applied.Unlock()
			return nil
		}
		ch := s.applied.changed
		s.applied.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.stopping:
			return ErrStopped
		}
	}
}

// publishAttributes proposes this member's name and client URLs until
// they are applied, so MemberList shows them, and then says the member is
// ready. As etcd, it does so on every start, even when the attributes
// are unchanged: the applied entry is what shows the member is in the
// cluster and caught up.
func (s *Server) publishAttributes() {
	req := &pb.InternalRaftRequest{ClusterMemberAttrSet: &membershippb.ClusterMemberAttrSetRequest{
		Member_ID:        s.st.MemberID,
		MemberAttributes: &membershippb.Attributes{Name: s.cfg.Name, ClientUrls: s.cfg.AdvertiseClientURLs},
	}}
	// etcd's fields: the attributes as Go prints its membership.Attributes.
	fields := []zap.Field{
		zap.String("local-member-id", membership.IDString(s.ID())),
		zap.String("local-member-attributes", fmt.Sprintf("{Name:%s ClientURLs:%v}", s.cfg.Name, s.cfg.AdvertiseClientURLs)),
	}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
		_, err := s.propose(ctx, req)
		cancel()
		if err == nil {
			// Logged before ready is closed: "ready" must follow it.
			s.logger.Info("published local member to cluster through raft", append(fields,
				zap.String("cluster-id", membership.IDString(s.ClusterID())), zap.Duration("publish-timeout", s.cfg.RequestTimeout))...)
			close(s.ready)
			return
		}
		select {
		case <-s.stopping:
			s.logger.Warn("stopped publish because server is stopping", append(fields, zap.Duration("publish-timeout", s.cfg.RequestTimeout))...)
			return
		default:
		}
		if !errors.Is(err, ErrNoLeader) { // no leader yet: the usual start, not worth a warning
			s.logger.Warn("failed to publish local member to cluster through raft", append(fields,
				zap.Duration("publish-timeout", s.cfg.RequestTimeout), zap.Error(err))...)
		}
		select {
		case <-s.stopping:
			return
		case <-time.After(s.cfg.HeartbeatInterval * 5):
		}
	}
}

// propose proposes req and waits for its entry to be applied.
func (s *Server) propose(ctx context.Context, req *pb.InternalRaftRequest) (apply.Result, error) {
	return s.proposeAs(ctx, req, 0)
}

// proposeAs is propose; a proposal with a leader term fails with
// raftnode.ErrNotLeader unless this member leads in that term when raft
// takes it.
func (s *Server) proposeAs(ctx context.Context, req *pb.InternalRaftRequest, leaderTerm uint64) (res apply.Result, err error) {
	start := time.Now()
	defer func() { s.metrics.observeRequest(apply.RequestType(req), start, err) }()
	id := s.reqIDs.next()
	req.Header = &pb.RequestHeader{ID: id}
	if req.Authenticate == nil {
		// Who asks, for the applier's permission checks (etcd's).
		ai, err := s.AuthInfo(ctx)
		if err != nil {
			return apply.Result{}, err
		}
		req.Header.Username, req.Header.AuthRevision = ai.User, ai.Revision
	}
	data, err := proto.Marshal(req)
	if err != nil {
		return apply.Result{}, err
	}
	if len(data) > s.cfg.MaxRequestBytes {
		return apply.Result{}, ErrRequestTooLarge
	}
	// The request timeout starts once admitted: a burst of large
	// requests waits here rather than timing out in the raft log.
	if err := s.admission.acquire(ctx, s.stopping, len(data)); err != nil {
		err = s.proposalError(err)
		if err == ErrTimeout {
			s.warnTimeout(apply.RequestType(req), len(data), time.Since(start), stageNotAdmitted)
		}
		return apply.Result{}, err
	}
	defer s.admission.release(len(data))
	if s.rn.CommitIndex() > s.AppliedIndex()+maxAppliedLag {
		// The applier is far behind what raft commits: more proposals
		// would only queue, as etcd refuses them.
		return apply.Result{}, ErrTooManyRequests
	}
	ch := s.wait.register(id, req, len(data))
	// The request timeout, as a pooled timer rather than a context with
	// a deadline (see raftnode.Node.ProposeTagged).
	timeout := requestTimers.get(s.cfg.RequestTimeout)
	defer requestTimers.put(timeout)
	s.inflight.add(len(data))
	defer s.inflight.done(len(data))
	// raft's refusal, if any, comes back on ch (wait.refuse).
	if err := s.rn.ProposeTagged(ctx, timeout.C, data, leaderTerm, id); err != nil {
		s.wait.cancel(id)
		return apply.Result{}, s.notProposed(req, len(data), start, err, stageNotProposed)
	}
	r, err := s.awaitApplied(ctx, timeout.C, id, ch)
	if ref, ok := r.Err.(refused); ok && err == nil {
		stage := stageNotProposed
		if errors.Is(ref.err, raft.ErrProposalDropped) {
			stage = stageDropped
		}
		return apply.Result{}, s.notProposed(req, len(data), start, ref.err, stage)
	}
	if err != nil {
		if !errors.Is(err, ErrStopped) {
			s.metrics.proposalsFailed.Inc()
		}
		if err == ErrTimeout {
			stage := stageProposed
			if !s.rn.Taken(id) {
				stage = stageNotProposed // still in the raft loop's queue
			}
			s.warnTimeout(apply.RequestType(req), len(data), time.Since(start), stage)
		}
		return apply.Result{}, err
	}
	return r, r.Err
}

// notProposed counts and returns the error of a request that never made
// it into the raft log (err: why), with a timeout's warning.
func (s *Server) notProposed(req *pb.InternalRaftRequest, size int, start time.Time, err error, stage string) error {
	s.metrics.proposalsFailed.Inc()
	err = s.proposalError(err)
	if err == ErrTimeout {
		s.warnTimeout(apply.RequestType(req), size, time.Since(start), stage)
	}
	return err
}

// awaitApplied waits for the result of request id, registered as ch, until
// ctx ends, expired delivers (nil: never; a timeout) or the member stops
// (then the registration is cancelled).
func (s *Server) awaitApplied(ctx context.Context, expired <-chan time.Time, id uint64, ch chan apply.Result) (apply.Result, error) {
	select {
	case r := <-ch:
		s.wait.release(ch)
		return r, nil
	case <-ctx.Done():
		s.wait.cancel(id)
		return apply.Result{}, s.proposalError(ctx.Err())
	case <-expired:
		s.wait.cancel(id)
		return apply.Result{}, ErrTimeout
	case <-s.stopping:
		s.wait.cancel(id)
		return apply.Result{}, ErrStopped
	}
}

func (s *Server) proposalError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNoLeader):
		return ErrNoLeader
	case errors.Is(err, raft.ErrTooManyRequests):
		return ErrTooManyRequests
	case errors.Is(err, raft.ErrProposalDropped):
		// A leadership transfer in progress, for instance: etcd
		// reports such drops as timeouts after waiting.
		return ErrTimeout
	case errors.Is(err, raftnode.ErrStopped):
		return ErrStopped
	case errors.Is(err, context.Canceled):
		return ErrCanceled
	case errors.Is(err, context.DeadlineExceeded):
		// Accepted and not applied in time: it may still commit, so
		// not "no leader" (which says it did not happen), as etcd.
		return ErrTimeout
	}
	return err
}

// requestIDs generates request IDs unique across members and restarts:
// the member ID's low 16 bits, then the start time in ms (40 bits), then
// a counter (8 bits that carry into the time part), as etcd does.
type requestIDs struct {
	next_ atomic.Uint64
}

func (g *requestIDs) init(memberID uint64) {
	prefix := (memberID & 0xffff) << 48
	ms := uint64(time.Now().UnixMilli()) & (1<<40 - 1)
	g.next_.Store(prefix | ms<<8)
}

func (g *requestIDs) next() uint64 { return g.next_.Add(1) }

// raftAdapter is the server as the transport's Raft.
type raftAdapter Server

func (a *raftAdapter) Process(ctx context.Context, m raftpb.Message) error {
	return a.rn.Process(ctx, m)
}
func (a *raftAdapter) ReportUnreachable(id uint64)       { a.rn.ReportUnreachable(id) }
func (a *raftAdapter) ReportSnapshot(id uint64, ok bool) { a.rn.ReportSnapshot(id, ok) }

// timerPool reuses stopped timers: since Go 1.23 a timer's channel holds
// no stale tick after Stop or Reset, so a timer put back stopped is as
// good as a new one.
type timerPool struct{ p sync.Pool }

// requestTimers time proposals out (Server.proposeAs).
var requestTimers timerPool

// get returns a timer that fires after d.
func (tp *timerPool) get(d time.Duration) *time.Timer {
	if t, ok := tp.p.Get().(*time.Timer); ok {
		t.Reset(d)
		return t
	}
	return time.NewTimer(d)
}

// put stops t and keeps it for a later get.
func (tp *timerPool) put(t *time.Timer) {
	t.Stop()
	tp.p.Put(t)
}
