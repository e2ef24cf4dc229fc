// Command cairnutl is Cairn's offline tool, command- and output-compatible
// with etcdutl 3.7 where the same command makes sense: snapshot status and
// restore (etcd's snapshot file format: Cairn's backups and etcd's are the
// same files), defrag and hashkv of a stopped member's data directory,
// version. Installed as etcdutl, it calls itself etcdutl and prints what
// etcdutl prints.
//
// A restore makes a new member's data directory: the snapshot's history,
// leases and compaction go into the backend (apply.Import), and the
// member is bootstrapped as cairn bootstraps one (member.Open) from the
// restore's --name, --initial-cluster and --initial-advertise-peer-urls,
// so restoring one file on every member of a new cluster gives a working
// cluster, as etcdutl's restore does.
package main
