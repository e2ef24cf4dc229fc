package discovery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// The errors Join ends with, in etcd's words.
var (
	ErrSizeNotFound = errors.New("discovery: size key not found")
	ErrBadSizeKey   = errors.New("discovery: size key is bad")
	ErrFullCluster  = errors.New("discovery: cluster is full")
)

const registry = "/_etcd/registry"

// Config is how Join reaches the discovery service.
type Config struct {
	// Token names the cluster being bootstrapped (--discovery-token).
	Token string
	// Client reaches the discovery cluster: its endpoints, TLS, user and
	// timeouts (the --discovery-* flags). Its files are read by Join, so
	// that a member that never asks the service (a restart) needs none of
	// them.
	Client clientv3.ConfigSpec
	// RequestTimeout bounds each read and write (not the wait for the
	// other members). Default 5s.
	RequestTimeout time.Duration
	// Backoff is the wait before retry n (1, 2, ...) after the service
	// failed to answer. Default etcd's: 2^n seconds, at most 256.
	Backoff func(n int) time.Duration
	Logger  *zap.Logger
}

// sizeKey and membersPrefix are the token's keys (see the package doc).
// As etcd's, they are cleaned paths ("a/../b" is "b"), so that etcd's
// members and Cairn's agree on any token.
func sizeKey(token string) string       { return path.Join(registry, token, "_config/size") }
func membersPrefix(token string) string { return path.Join(registry, token, "members") + "/" }

// registration is one member's key in the discovery service.
type registration struct {
	key     string
	value   string // name=peerURL[,name=peerURL...]
	created int64  // the revision that created the key: the order of registering
}

// Join registers this member (its ID, and self: its --initial-cluster
// entries, "name=peerURL[,name=peerURL...]") under cfg.Token, waits until
// the cluster's size of members have registered, and returns the founding
// members as an --initial-cluster string. It waits for as long as it takes
// (or until ctx ends): members of a new cluster start in any order.
func Join(ctx context.Context, cfg Config, memberID uint64, self string) (string, error) {
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	if cfg.Backoff == nil {
		cfg.Backoff = func(n int) time.Duration { return time.Duration(1<<min(n, 8)) * time.Second }
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	cfg.Logger = cfg.Logger.With(zap.String("discovery-token", cfg.Token),
		zap.String("discovery-endpoints", strings.Join(cfg.Client.Endpoints, ",")))
	cc, err := clientv3.NewClientConfig(&cfg.Client, cfg.Logger)
	if err != nil {
		return "", fmt.Errorf("discovery: --discovery-cert, --discovery-key, --discovery-cacert: %w", err)
	}
	cc.Logger = cfg.Logger.Named("discovery-client")
	d := &discoverer{cfg: cfg, key: membersPrefix(cfg.Token) + strconv.FormatUint(memberID, 16)}
	// With a user, New signs in, and fails when the service is not up
	// yet: it is retried as any other request.
	var c *clientv3.Client
	if err := d.retry(ctx, "connect to the discovery service", func(context.Context) error {
		c, err = clientv3.New(*cc)
		return err
	}); err != nil {
		return "", err
	}
	defer c.Close()
	d.c = c

	size, regs, _, err := d.read(ctx)
	if err != nil {
		return "", err
	}
	if !d.founder(size, regs) {
		return "", ErrFullCluster
	}
	if err := d.retry(ctx, "register member itself", func(ctx context.Context) error {
		_, err := c.Put(ctx, d.key, self)
		return err
	}); err != nil {
		return "", err
	}
	cfg.Logger.Info("register member itself successfully", zap.String("memberKey", d.key), zap.String("memberInfo", self))
	size, regs, rev, err := d.read(ctx)
	if err != nil {
		return "", err
	}
	for len(regs) < size {
		cfg.Logger.Info("waiting for peers from discovery service", zap.Int("clusterSize", size), zap.Int("found-peers", len(regs)))
		if regs, rev, err = d.wait(ctx, size, regs, rev); err != nil {
			return "", err
		}
	}
	if !d.founder(size, regs) {
		return "", ErrFullCluster
	}
	cfg.Logger.Info("found all needed peers from discovery service", zap.Int("clusterSize", size), zap.Int("found-peers", len(regs)))
	var entries []string
	for _, r := range regs[:size] {
		entries = append(entries, r.value)
	}
	return strings.Join(entries, ","), nil
}

// discoverer is one Join's state.
type discoverer struct {
	cfg Config
	c   *clientv3.Client
	key string // this member's key
}

// founder reports whether this member is, or can still become, one of the
// first size members registered: it registered among them, or fewer than
// size have registered.
func (d *discoverer) founder(size int, regs []registration) bool {
	i := slices.IndexFunc(regs, func(r registration) bool { return r.key == d.key })
	if i < 0 {
		return len(regs) < size
	}
	return i < size
}

// read reads the cluster's size and the members registered, in the order
// they registered, and the revision it read them at. A service that does
// not answer is asked again; a missing or malformed size is final.
func (d *discoverer) read(ctx context.Context) (size int, regs []registration, rev int64, err error) {
	err = d.retry(ctx, "cluster status check", func(ctx context.Context) error {
		resp, err := d.c.Txn(ctx).Then(
			clientv3.OpGet(sizeKey(d.cfg.Token)),
			clientv3.OpGet(membersPrefix(d.cfg.Token), clientv3.WithPrefix()),
		).Commit()
		if err != nil {
			return err
		}
		sizeKVs := resp.Responses[0].GetResponseRange().GetKvs()
		if len(sizeKVs) == 0 {
			return ErrSizeNotFound
		}
		n, perr := strconv.Atoi(string(sizeKVs[0].Value))
		if perr != nil || n <= 0 {
			return fmt.Errorf("%w: %q", ErrBadSizeKey, sizeKVs[0].Value)
		}
		size, regs, rev = n, nil, resp.Header.Revision
		for _, kv := range resp.Responses[1].GetResponseRange().GetKvs() {
			regs = d.add(regs, string(kv.Key), string(kv.Value), kv.CreateRevision)
		}
		return nil
	})
	return size, regs, rev, err
}

// wait watches the members' prefix after rev until size members are
// registered, and returns them and the revision they were read at. A
// watch that ends (a compaction past rev, a lost connection) is replaced
// by reading the members again.
func (d *discoverer) wait(ctx context.Context, size int, regs []registration, rev int64) ([]registration, int64, error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for resp := range d.c.Watch(wctx, membersPrefix(d.cfg.Token), clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
		if resp.Err() != nil {
			d.cfg.Logger.Warn("watching the discovery service's members failed; reading them again", zap.Error(resp.Err()))
			break
		}
		for _, ev := range resp.Events {
			if ev.Type != clientv3.EventTypePut {
				// As etcd: a registration, once made, counts.
				d.cfg.Logger.Warn("ignoring a deleted registration", zap.String("memberKey", string(ev.Kv.Key)))
				continue
			}
			regs = d.add(regs, string(ev.Kv.Key), string(ev.Kv.Value), ev.Kv.CreateRevision)
		}
		rev = resp.Header.Revision
		if len(regs) >= size {
			return regs, rev, nil
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	_, regs, rev, err := d.read(ctx)
	return regs, rev, err
}

// add adds a registration to regs, kept in the order of registering, and
// returns regs. A malformed value is logged and left out; a key already
// there (a member that registered again) is left out.
func (d *discoverer) add(regs []registration, key, value string, created int64) []registration {
	key, value = strings.TrimSpace(key), strings.TrimSpace(value)
	if !strings.ContainsRune(value, '=') {
		d.cfg.Logger.Warn("invalid peer info returned from discovery service", zap.String("memberKey", key), zap.String("memberInfo", value))
		return regs
	}
	if slices.ContainsFunc(regs, func(r registration) bool { return r.key == key }) {
		return regs
	}
	d.cfg.Logger.Info("found peer from discovery service", zap.String("memberKey", key), zap.String("memberInfo", value))
	regs = append(regs, registration{key: key, value: value, created: created})
	slices.SortStableFunc(regs, func(a, b registration) int { return cmp.Compare(a.created, b.created) })
	return regs
}

// final reports whether err is one that asking again cannot mend: a
// missing or malformed size, or the discovery cluster refusing the user
// (a wrong password, a role without access to the token's keys).
func final(err error) bool {
	for _, f := range []error{ErrSizeNotFound, ErrBadSizeKey, rpctypes.ErrAuthFailed, rpctypes.ErrPermissionDenied,
		rpctypes.ErrGRPCAuthFailed, rpctypes.ErrGRPCPermissionDenied} {
		if errors.Is(err, f) {
			return true
		}
	}
	return false
}

// retry runs op, each call bounded by the request timeout, until it
// succeeds, fails with a final error, or ctx ends; between calls it waits
// cfg.Backoff.
func (d *discoverer) retry(ctx context.Context, step string, op func(context.Context) error) error {
	for n := 1; ; n++ {
		opCtx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
		err := op(opCtx)
		cancel()
		if err == nil || final(err) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := d.cfg.Backoff(n)
		d.cfg.Logger.Warn("retry connecting to discovery service", zap.String("reason", step), zap.Duration("backoff", wait), zap.Error(err))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}
