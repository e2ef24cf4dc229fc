// Package version holds the versions Cairn reports, in one place: its own,
// and those of the etcd release it is a drop-in replacement for (etcd
// 3.7.3), which clients read to decide what a server can do (Kubernetes
// gates watch progress requests on the server's version). The gRPC
// Maintenance.Status answer, the HTTP /version answer, the
// etcd_server_version metric, `cairn --version` and cairnctl's `version`
// all print these constants; nothing else spells a version out.
//
// Invariant: Cluster and Storage are Etcd's major.minor with patch 0, as
// etcd reports them (a cluster and its storage have versions of the form
// X.Y.0); API is Etcd's major.minor, as etcdctl prints it.
package version

const (
	// Cairn is Cairn's own release.
	Cairn = "0.1.0"
	// Etcd is the etcd release whose behaviour Cairn implements:
	// Maintenance.Status's Version, /version's "etcdserver".
	Etcd = "3.7.3"
	// Cluster is the cluster version: /version's "etcdcluster".
	Cluster = "3.7.0"
	// Storage is the storage version: Maintenance.Status's
	// StorageVersion, /version's "storage".
	Storage = "3.7.0"
	// API is the API version etcdctl's `version` prints.
	API = "3.7"
)
