package etcdsnap

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"os"
	"regexp"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// Status is what `etcdutl snapshot status` reports of a file; the JSON
// names are those of its -w json output.
type Status struct {
	// Hash is the CRC-32C (Castagnoli) of every bucket name, key and
	// value, in bbolt's order (buckets by name, keys in order).
	Hash uint32 `json:"hash"`
	// Revision is the main revision of the key bucket's last key.
	Revision int64 `json:"revision"`
	// TotalKey counts the keys alive after the last revision.
	TotalKey int `json:"totalKey"`
	// TotalSize is the database's size, pgid*pageSize, without a trailer.
	TotalSize int64 `json:"totalSize"`
	// Version is meta's storageVersion read as a semantic version and
	// printed again ("" if absent or not one).
	Version string `json:"version"`
}

// ReadStatus computes what `etcdutl snapshot status` reports for the file
// at path, the way etcdutl 3.7.3 computes it (so the same hash): it opens
// the database read-only, runs bbolt's check, and does not look at the
// SHA-256 trailer. Unlike etcdutl, it refuses a truncated file with
// ErrTruncated before reading a page the file lacks.
func ReadStatus(path string) (Status, error) {
	var st Status
	info, err := os.Stat(path)
	if err != nil {
		return st, fmt.Errorf("etcdsnap: %w", err)
	}
	db, err := openBolt(path, info.Size())
	if err != nil {
		return st, err
	}
	defer db.Close()
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	alive := map[string]struct{}{}
	err = db.View(func(tx *bolt.Tx) error {
		if err := checkDB(tx, path, info.Size()); err != nil {
			return err
		}
		st.TotalSize = tx.Size()
		st.Version = semverString(string(tx.Bucket(bucketMeta).Get(keyStorageVersion)))
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			h.Write(name)
			isKey := bytes.Equal(name, bucketKey)
			return b.ForEach(func(k, v []byte) error {
				h.Write(k)
				h.Write(v)
				if !isKey {
					return nil
				}
				rev, err := parseRevisionKey(k)
				if err != nil {
					return err
				}
				st.Revision = rev.Main
				var kv mvccpb.KeyValue
				if err := proto.Unmarshal(v, &kv); err != nil {
					return fmt.Errorf("%w: revision %d.%d: %v", ErrCorrupt, rev.Main, rev.Sub, err)
				}
				if rev.Tombstone {
					delete(alive, string(kv.Key))
				} else {
					alive[string(kv.Key)] = struct{}{}
				}
				return nil
			})
		})
	})
	if err != nil {
		return Status{}, err
	}
	st.TotalKey = len(alive)
	st.Hash = h.Sum32()
	return st, nil
}

// semverIdentifier is what a pre-release or build metadata may be.
var semverIdentifier = regexp.MustCompile(`^[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*$`)

// semverString reads s as etcd's semver library (coreos/go-semver) does
// and prints it as that library does: "3.7.0" stays "3.7.0", "03.7.0"
// becomes "3.7.0", and what is not a version becomes "".
func semverString(s string) string {
	var metadata, pre string
	if rest, m, ok := strings.Cut(s, "+"); ok {
		s, metadata = rest, m
	}
	if rest, p, ok := strings.Cut(s, "-"); ok {
		s, pre = rest, p
	}
	parts := strings.SplitN(s, ".", 3)
	if len(parts) != 3 {
		return ""
	}
	for _, id := range []string{pre, metadata} {
		if id != "" && !semverIdentifier.MatchString(id) {
			return ""
		}
	}
	var n [3]int64
	for i, p := range parts {
		v, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return ""
		}
		n[i] = v
	}
	out := fmt.Sprintf("%d.%d.%d", n[0], n[1], n[2])
	if pre != "" {
		out += "-" + pre
	}
	if metadata != "" {
		out += "+" + metadata
	}
	return out
}
