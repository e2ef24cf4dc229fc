package server

import (
	"bytes"
	"context"
	"fmt"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/cairn-db/cairn/internal/auth"
	"github.com/cairn-db/cairn/internal/mvcc"
)

// RangeStream answers req as etcd 3.7's KV.RangeStream: the keys of the
// Range answer in disjoint chunks, in key order, each passed to send; the
// last chunk alone carries the header, Count and More, so that merging the
// chunks gives the Range answer. The whole stream reads one revision
// (req.Revision, or the current one when it starts), and the range is
// counted once, before the first chunk.
//
// In default key order without revision filters, the server holds one
// chunk at a time: chunks stop at --max-request-bytes of keys and values
// (etcd's target too), or at one key if that alone is larger. Between
// chunks no lock is held; a compaction past the revision meanwhile ends
// the stream with ErrCompacted, as the next Range at that revision would.
//
// Sorted or revision-filtered requests, which etcd refuses (Unimplemented),
// are answered from the whole Range answer, cut into chunks, and count-only
// requests in one message, as etcd answers them.
func (s *Server) RangeStream(ctx context.Context, req *pb.RangeRequest, send func(*pb.RangeResponse) error) (err error) {
	defer func(start time.Time) { s.metrics.observeRequest("Range", start, err) }(time.Now())
	if !req.Serializable {
		if err := s.linearizableReadWait(ctx); err != nil {
			return err
		}
	}
	as := s.Auth()
	ai, err := s.AuthInfo(ctx)
	if err != nil {
		return err
	}
	if err := as.CheckRange(ai, req.Key, req.RangeEnd); err != nil {
		return err
	}
	// Nothing goes out once the permissions checked have changed.
	permitted := func() error {
		if ai.Revision != 0 && ai.Revision != as.Revision() {
			return auth.ErrAuthOldRevision
		}
		return nil
	}
	budget := s.cfg.MaxRequestBytes
	if req.CountOnly || !streamsInOrder(req) {
		var resp *pb.RangeResponse
		err := s.applier.View(func(st *mvcc.Store) error {
			var err error
			resp, err = st.RangeRequest(req)
			return err
		})
		if err != nil {
			return err
		}
		if err := permitted(); err != nil {
			return err
		}
		return sendInChunks(resp, budget, send)
	}

	// Count the range, and pin the revision.
	rev := req.Revision
	var total, headerRev int64
	err = s.applier.View(func(st *mvcc.Store) error {
		res, err := st.Range(req.Key, req.RangeEnd, mvcc.RangeOptions{Rev: rev, CountOnly: true})
		total, headerRev = res.Count, res.Rev
		return err
	})
	if err != nil {
		return err
	}
	if rev == 0 {
		rev = headerRev
	}
	want := total
	if req.Limit > 0 && req.Limit < total {
		want = req.Limit
	}
	from := req.Key
	// One chunk's KeyValues at a time, their memory reused for the
	// next: gRPC has encoded a message by the time SendMsg returns, and
	// Cairn installs none of the stats handlers or binary loggers that
	// could keep it longer.
	arena := &mvcc.Arena{}
	var sent int64
	// keys bounds the index entries one chunk looks up; it grows while
	// chunks end on it rather than on bytes.
	keys := int64(256)
	for {
		var kvs []*mvccpb.KeyValue
		if sent < want {
			if err := ctx.Err(); err != nil {
				return ctxError(err)
			}
			limit := min(keys, want-sent)
			arena.Reset()
			err := s.applier.View(func(st *mvcc.Store) error {
				res, err := st.Range(from, req.RangeEnd, mvcc.RangeOptions{Rev: rev, Limit: limit, NoCount: true, MaxBytes: budget, Arena: arena})
				kvs = res.KVs
				return err
			})
			if err != nil {
				return err
			}
			if len(kvs) == 0 {
				// The index at a revision changes only by compaction,
				// which Range reports.
				return fmt.Errorf("%w: range stream found %d of %d keys at revision %d", mvcc.ErrCorrupt, sent, want, rev)
			}
			if int64(len(kvs)) == limit {
				keys = min(2*keys, 1<<16)
			}
			from = append(bytes.Clone(kvs[len(kvs)-1].Key), 0)
			sent += int64(len(kvs))
		}
		resp := &pb.RangeResponse{Kvs: kvs}
		if req.KeysOnly {
			for _, kv := range kvs {
				kv.Value = nil
			}
		}
		last := sent == want
		if last {
			resp.Header = &pb.ResponseHeader{Revision: headerRev}
			resp.Count, resp.More = total, total > want
		}
		if err := permitted(); err != nil {
			return err
		}
		if err := send(resp); err != nil {
			return err
		}
		if last {
			return nil
		}
	}
}

// streamsInOrder reports whether req's answer is its range in key order,
// unfiltered: what RangeStream reads a chunk at a time (etcd serves only
// these).
func streamsInOrder(req *pb.RangeRequest) bool {
	defaultOrder := req.SortOrder == pb.RangeRequest_NONE && req.SortTarget == pb.RangeRequest_KEY ||
		req.SortOrder == pb.RangeRequest_ASCEND && req.SortTarget == pb.RangeRequest_KEY
	filtered := req.MinModRevision != 0 || req.MaxModRevision != 0 ||
		req.MinCreateRevision != 0 || req.MaxCreateRevision != 0
	return defaultOrder && !filtered
}

// sendInChunks sends a whole Range answer as a stream: its keys in chunks
// of about budget bytes, the header, Count and More on the last.
func sendInChunks(resp *pb.RangeResponse, budget int, send func(*pb.RangeResponse) error) error {
	kvs := resp.Kvs
	for {
		n, size := 0, 0
		for n < len(kvs) && (n == 0 || size < budget) {
			size += len(kvs[n].Key) + len(kvs[n].Value)
			n++
		}
		chunk := &pb.RangeResponse{Kvs: kvs[:n:n]}
		kvs = kvs[n:]
		if len(kvs) == 0 {
			chunk.Header, chunk.Count, chunk.More = resp.Header, resp.Count, resp.More
			return send(chunk)
		}
		if err := send(chunk); err != nil {
			return err
		}
	}
}
