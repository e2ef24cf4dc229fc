package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-db/cairn/internal/tool"
)

func newPutCommand(g *globals) *cobra.Command {
	var prevKV, ignoreValue, ignoreLease bool
	var leaseHex string
	cmd := &cobra.Command{
		Use:   "put [options] <key> <value> (<value> can also be given from stdin)",
		Short: "Puts the given key into the store",
		Long: `
Puts the given key into the store.

When <value> begins with '-', <value> is interpreted as a flag.
Insert '--' for workaround:

$ put <key> -- <value>
$ put -- <key> <value>

If <value> isn't given as a command line argument and '--ignore-value' is not specified,
this command tries to read the value from standard input.

If <lease> isn't given as a command line argument and '--ignore-lease' is not specified,
this command tries to read the value from standard input.

For example,
$ cat file | put <key>
will store the content of the file to <key>.
`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(g.writeOut, false); err != nil {
				return err
			}
			key, value, err := putArgs(g, args, ignoreValue)
			if err != nil {
				return err
			}
			var opts []clientv3.OpOption
			if leaseHex != "" {
				id, err := parseLeaseID(leaseHex, "lease ID")
				if err != nil {
					return err
				}
				opts = append(opts, clientv3.WithLease(id))
			}
			if prevKV {
				opts = append(opts, clientv3.WithPrevKV())
			}
			if ignoreValue {
				opts = append(opts, clientv3.WithIgnoreValue())
			}
			if ignoreLease {
				opts = append(opts, clientv3.WithIgnoreLease())
			}
			if g.capture != nil {
				return g.capture(clientv3.OpPut(key, value, opts...))
			}
			return g.request(func(cli *clientv3.Client, ctx context.Context) error {
				resp, err := cli.Put(ctx, key, value, opts...)
				if err != nil {
					return err
				}
				return g.display(resp, (*pb.PutResponse)(resp), func() { g.printPutFields(resp) }, func() { g.printPutSimple(resp) })
			})
		},
	}
	cmd.Flags().StringVar(&leaseHex, "lease", "0", "lease ID (in hexadecimal) to attach to the key")
	cmd.Flags().BoolVar(&prevKV, "prev-kv", false, "return the previous key-value pair before modification")
	cmd.Flags().BoolVar(&ignoreValue, "ignore-value", false, "updates the key using its current value")
	cmd.Flags().BoolVar(&ignoreLease, "ignore-lease", false, "updates the key using its current lease")
	return cmd
}

// putArgs reads put's key and value: two arguments, or one and the value
// from stdin, as etcdctl.
func putArgs(g *globals, args []string, ignoreValue bool) (string, string, error) {
	if len(args) == 0 {
		return "", "", tool.BadArgs("put command needs 1 argument and input from stdin or 2 arguments")
	}
	key := args[0]
	if ignoreValue && len(args) > 1 {
		return "", "", tool.BadArgs("put command needs only 1 argument when 'ignore-value' is set")
	}
	if ignoreValue {
		return key, "", nil
	}
	if len(args) > 1 {
		return key, args[1], nil
	}
	b, err := io.ReadAll(g.stdin)
	if err != nil || len(b) == 0 {
		return "", "", tool.BadArgs("put command needs 1 argument and input from stdin or 2 arguments")
	}
	return key, string(b), nil
}

// parseLeaseID reads a lease ID in hex, as etcdctl does. One that is too
// long for hex but a decimal int64 is taken as decimal: that is how JSON
// output prints IDs (`lease grant 60 -w json`), and the seeds pass such an
// ID (7528568867886775889); etcdctl refuses it. IDs of 16 hex digits or
// fewer are always hex, so nothing etcdctl accepts reads differently.
//
// what names the ID in the error, as etcdctl does: "lease ID" for put's
// --lease, "lease ID arg" for the lease commands'.
func parseLeaseID(s, what string) (clientv3.LeaseID, error) {
	id, err := strconv.ParseInt(s, 16, 64)
	if err != nil {
		if dec, derr := strconv.ParseInt(s, 10, 64); derr == nil && len(s) > 16 {
			return clientv3.LeaseID(dec), nil
		}
		return 0, tool.BadArgs("bad %s (%v), expecting ID in Hex", what, err)
	}
	return clientv3.LeaseID(id), nil
}

func newGetCommand(g *globals) *cobra.Command {
	var (
		consistency, sortOrder, sortTarget   string
		prefix, fromKey, keysOnly, countOnly bool
		printValueOnly, stream               bool
		limit, rev, ver                      int64
		minMod, maxMod, minCreate, maxCreate int64
	)
	cmd := &cobra.Command{
		Use:   "get [options] <key> [range_end]",
		Short: "Gets the key or a range of keys",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(g.writeOut, false); err != nil {
				return err
			}
			if len(args) == 0 || len(args) > 2 {
				return tool.BadArgs("get command needs one argument as key and an optional argument as range_end")
			}
			if prefix && fromKey {
				return tool.BadArgs("`--prefix` and `--from-key` cannot be set at the same time, choose one")
			}
			if keysOnly && countOnly {
				return tool.ExitErr{Code: tool.ExitInvalidInput, Err: fmt.Errorf("`--keys-only` and `--count-only` cannot be set at the same time, choose one")}
			}
			if countOnly && g.writeOut != formatFields {
				return tool.BadArgs("--count-only is only for `--write-out=fields`")
			}
			if printValueOnly && g.writeOut != formatSimple {
				return tool.BadArgs("print-value-only is only for `--write-out=simple`")
			}
			if ver != 0 && (len(args) > 1 || prefix || fromKey) {
				return tool.BadArgs("--ver is only for a single key")
			}
			if ver != 0 && rev != 0 {
				return tool.BadArgs("`--ver` and `--rev` cannot be set at the same time, choose one")
			}
			if ver < 0 {
				return tool.BadArgs("bad version %d", ver)
			}
			opts, err := consistencyOpts(consistency)
			if err != nil {
				return err
			}
			key := args[0]
			if len(args) > 1 {
				if prefix || fromKey {
					return tool.BadArgs("too many arguments, only accept one argument when `--prefix` or `--from-key` is set")
				}
				opts = append(opts, clientv3.WithRange(args[1]))
			}
			opts = append(opts, clientv3.WithLimit(limit))
			if rev > 0 {
				opts = append(opts, clientv3.WithRev(rev))
			}
			order := clientv3.SortNone
			switch strings.ToUpper(sortOrder) {
			case "ASCEND":
				order = clientv3.SortAscend
			case "DESCEND":
				order = clientv3.SortDescend
			case "":
			default:
				return tool.BadArgs("bad sort order %v", sortOrder)
			}
			target := clientv3.SortByKey
			switch strings.ToUpper(sortTarget) {
			case "CREATE":
				target = clientv3.SortByCreateRevision
			case "KEY":
			case "MODIFY":
				target = clientv3.SortByModRevision
			case "VALUE":
				target = clientv3.SortByValue
			case "VERSION":
				target = clientv3.SortByVersion
			case "":
			default:
				return tool.BadArgs("bad sort target %v", sortTarget)
			}
			opts = append(opts, clientv3.WithSort(target, order))
			key, opts = openRange(key, prefix, fromKey, opts)
			if keysOnly {
				opts = append(opts, clientv3.WithKeysOnly())
			}
			if countOnly {
				opts = append(opts, clientv3.WithCountOnly())
			}
			opts = append(opts, clientv3.WithMinModRev(minMod), clientv3.WithMaxModRev(maxMod),
				clientv3.WithMinCreateRev(minCreate), clientv3.WithMaxCreateRev(maxCreate))
			if g.capture != nil {
				if ver != 0 {
					return tool.BadArgs("--ver is not supported in a txn")
				}
				return g.capture(clientv3.OpGet(key, opts...))
			}
			g.quietRetries = ver != 0
			return g.request(func(cli *clientv3.Client, ctx context.Context) error {
				if ver != 0 {
					r, err := versionRevision(ctx, cli, key, ver, consistency == "s")
					if err != nil {
						return err
					}
					opts = append(opts, clientv3.WithRev(r))
				}
				var (
					resp *clientv3.GetResponse
					err  error
				)
				if stream {
					// etcd 3.7's RangeStream RPC, its chunks merged.
					var ch clientv3.GetStreamChan
					if ch, err = cli.GetStream(ctx, key, opts...); err == nil {
						resp, err = clientv3.GetStreamToGetResponse(ch)
					}
				} else {
					resp, err = cli.Get(ctx, key, opts...)
				}
				if err != nil {
					return err
				}
				return g.display(resp, (*pb.RangeResponse)(resp), func() { g.printGetFields(resp) },
					func() { g.printGetSimple(resp, printValueOnly) })
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&consistency, "consistency", "l", "Linearizable(l) or Serializable(s)")
	f.StringVar(&sortOrder, "order", "", "Order of results; ASCEND or DESCEND (ASCEND by default)")
	f.StringVar(&sortTarget, "sort-by", "", "Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION")
	f.Int64Var(&limit, "limit", 0, "Maximum number of results")
	f.BoolVar(&prefix, "prefix", false, "Get keys with matching prefix")
	f.BoolVar(&fromKey, "from-key", false, "Get keys that are greater than or equal to the given key using byte compare")
	f.Int64Var(&rev, "rev", 0, "Specify the kv revision")
	completeWith(cmd, "consistency", "l", "s")
	completeWith(cmd, "order", "ASCEND", "DESCEND")
	completeWith(cmd, "sort-by", "CREATE", "KEY", "MODIFY", "VALUE", "VERSION")
	f.Int64Var(&ver, "ver", 0, "Get the key as it was at this version of it (its Nth write since it was created) (Cairn)")
	g.extension(f, "ver")
	f.BoolVar(&keysOnly, "keys-only", false, "Get only the keys")
	f.BoolVar(&countOnly, "count-only", false, "Get only the count")
	f.BoolVar(&printValueOnly, "print-value-only", false, `Only write values when using the "simple" output format`)
	f.Int64Var(&minMod, "min-mod-rev", 0, "Minimum modification revision")
	f.Int64Var(&maxMod, "max-mod-rev", 0, "Maximum modification revision")
	f.Int64Var(&minCreate, "min-create-rev", 0, "Minimum create revision")
	f.Int64Var(&maxCreate, "max-create-rev", 0, "Maximum create revision")
	f.BoolVar(&stream, "stream", false, "Use the RangeStream RPC")
	return cmd
}

// openRange applies get's and del's --prefix and --from-key to key, as
// etcdctl: an empty key with either means every key.
func openRange(key string, prefix, fromKey bool, opts []clientv3.OpOption) (string, []clientv3.OpOption) {
	if len(key) == 0 && (prefix || fromKey) {
		return "\x00", append(opts, clientv3.WithFromKey())
	}
	if prefix {
		opts = append(opts, clientv3.WithPrefix())
	}
	if fromKey {
		opts = append(opts, clientv3.WithFromKey())
	}
	return key, opts
}

func newDelCommand(g *globals) *cobra.Command {
	var prefix, prevKV, fromKey, isRange bool
	cmd := &cobra.Command{
		Use:   "del [options] <key> [range_end]",
		Short: "Removes the specified key or range of keys [key, range_end)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(g.writeOut, false); err != nil {
				return err
			}
			if len(args) == 0 || len(args) > 2 {
				return tool.BadArgs("del command needs one argument as key and an optional argument as range_end")
			}
			if prefix && fromKey {
				return tool.BadArgs("`--prefix` and `--from-key` cannot be set at the same time, choose one")
			}
			var opts []clientv3.OpOption
			key := args[0]
			if len(args) > 1 {
				if prefix || fromKey {
					return tool.BadArgs("too many arguments, only accept one argument when `--prefix` or `--from-key` is set")
				}
				opts = append(opts, clientv3.WithRange(args[1]))
				if !isRange && g.capture == nil {
					// As etcdctl: a range given without --range may be a
					// typo for two keys; give the user time to stop it.
					fmt.Fprintf(g.stderr, "Warning: Keys between %q and %q will be deleted. Please interrupt the command within next 2 seconds to cancel. "+
						"You can provide `--range` flag to avoid the delay.\n", args[0], args[1])
					time.Sleep(2 * time.Second)
				}
			}
			key, opts = openRange(key, prefix, fromKey, opts)
			if prevKV {
				opts = append(opts, clientv3.WithPrevKV())
			}
			if g.capture != nil {
				return g.capture(clientv3.OpDelete(key, opts...))
			}
			return g.request(func(cli *clientv3.Client, ctx context.Context) error {
				resp, err := cli.Delete(ctx, key, opts...)
				if err != nil {
					return err
				}
				return g.display(resp, (*pb.DeleteRangeResponse)(resp), func() { g.printDelFields(resp) }, func() { g.printDelSimple(resp) })
			})
		},
	}
	f := cmd.Flags()
	f.BoolVar(&prefix, "prefix", false, "delete keys with matching prefix")
	f.BoolVar(&prevKV, "prev-kv", false, "return deleted key-value pairs")
	f.BoolVar(&fromKey, "from-key", false, "delete keys that are greater than or equal to the given key using byte compare")
	f.BoolVar(&isRange, "range", false, "delete range of keys")
	return cmd
}

func newCompactCommand(g *globals) *cobra.Command {
	var physical bool
	cmd := &cobra.Command{
		Use:   "compaction [options] <revision>",
		Short: "Compacts the event history in etcd",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return tool.BadArgs("compaction command needs 1 argument")
			}
			rev, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return err
			}
			var opts []clientv3.CompactOption
			if physical {
				opts = append(opts, clientv3.WithCompactPhysical())
			}
			return g.request(func(cli *clientv3.Client, ctx context.Context) error {
				if _, err := cli.Compact(ctx, rev, opts...); err != nil {
					return err
				}
				fmt.Fprintln(g.stdout, "compacted revision", rev)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&physical, "physical", false, "'true' to wait for compaction to physically remove all old revisions")
	return cmd
}

// versionRevision finds the revision at which key, as it is now (its
// current generation: since it was last created), had version ver: the
// first revision in [create, mod] whose read of the key has that version,
// found by bisection, a keys-only read each step. A version the key never
// had, or has not reached, is an error; so is one compacted away.
func versionRevision(ctx context.Context, cli *clientv3.Client, key string, ver int64, serializable bool) (int64, error) {
	base := []clientv3.OpOption{clientv3.WithKeysOnly()}
	if serializable {
		base = append(base, clientv3.WithSerializable())
	}
	resp, err := cli.Get(ctx, key, base...)
	if err != nil {
		return 0, err
	}
	if len(resp.Kvs) == 0 {
		return 0, fmt.Errorf("key %q does not exist", key)
	}
	kv := resp.Kvs[0]
	if ver > kv.Version {
		return 0, fmt.Errorf("key %q has no version %d: its version is %d", key, ver, kv.Version)
	}
	if ver == kv.Version {
		return kv.ModRevision, nil
	}
	// Invariant: below lo the key's version is under ver, or the
	// revision is compacted; at hi it is at least ver. A compacted
	// revision counts as "below": the search then ends at the first
	// readable one, checked after.
	lo, hi := kv.CreateRevision, kv.ModRevision
	compacted := false
	for lo < hi {
		mid := lo + (hi-lo)/2
		r, err := cli.Get(ctx, key, append(base, clientv3.WithRev(mid))...)
		if errors.Is(err, rpctypes.ErrCompacted) {
			compacted = true
			lo = mid + 1
			continue
		}
		if err != nil {
			return 0, err
		}
		if len(r.Kvs) == 1 && r.Kvs[0].Version >= ver {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	r, err := cli.Get(ctx, key, append(base, clientv3.WithRev(lo))...)
	if err != nil {
		return 0, err
	}
	if len(r.Kvs) != 1 || r.Kvs[0].Version != ver {
		if compacted {
			return 0, fmt.Errorf("version %d of key %q is compacted", ver, key)
		}
		return 0, fmt.Errorf("key %q has no version %d", key, ver) // the invariant is broken
	}
	return lo, nil
}

// consistencyOpts reads --consistency: l (linearizable, the default) or s
// (serializable).
func consistencyOpts(consistency string) ([]clientv3.OpOption, error) {
	switch consistency {
	case "s":
		return []clientv3.OpOption{clientv3.WithSerializable()}, nil
	case "l":
		return nil, nil
	}
	return nil, tool.ExitErr{Code: tool.ExitBadFeature, Err: fmt.Errorf("unknown consistency flag %q", consistency)}
}
