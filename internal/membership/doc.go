// Package membership describes a cluster's members the way etcd does: who
// they are (an ID derived from their peer URLs and the cluster token), where
// they listen, and the cluster ID derived from the founding members.
//
// IDs follow etcd's derivation, so a Cairn cluster bootstrapped from the
// same --initial-cluster and --initial-cluster-token reports the same member
// and cluster IDs etcd would:
//
//	member ID  = first 8 bytes (big-endian) of
//	             SHA-1(sorted peer URLs joined with "" ++ token [++ unix seconds, for members added later])
//	cluster ID = first 8 bytes (big-endian) of
//	             SHA-1(sorted founding member IDs, each 8 bytes big-endian)
//
// Members are stored in the backend by the applier, one record per member
// (see Member.Marshal), in the same batch as the raft index that changed them.
package membership
