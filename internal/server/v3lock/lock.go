package v3lock

import (
	"context"

	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/cairn-db/cairn/api/v3lockpb"
)

// lockServer is etcd's Lock service: a concurrency.Mutex held with the
// caller's lease.
type lockServer struct {
	v3lockpb.UnsafeLockServer
	s *Server
}

// Lock waits until the caller holds the lock (its key, name/<lease in
// hex>, is the oldest under name/) and returns the key. Errors, as
// etcd's, are the inner client's.
func (l *lockServer) Lock(ctx context.Context, r *v3lockpb.LockRequest) (*v3lockpb.LockResponse, error) {
	ctx = l.s.call(ctx)
	sess, err := l.s.session(ctx, r.Lease)
	if err != nil {
		return nil, err
	}
	m := concurrency.NewMutex(sess, string(r.Name))
	if err := m.Lock(ctx); err != nil {
		return nil, err
	}
	return &v3lockpb.LockResponse{Header: m.Header(), Key: []byte(m.Key())}, nil
}

// Unlock deletes the key; a key that is not there is no error.
func (l *lockServer) Unlock(ctx context.Context, r *v3lockpb.UnlockRequest) (*v3lockpb.UnlockResponse, error) {
	resp, err := l.s.c.Delete(ctx, string(r.Key))
	if err != nil {
		return nil, err
	}
	return &v3lockpb.UnlockResponse{Header: resp.Header}, nil
}
