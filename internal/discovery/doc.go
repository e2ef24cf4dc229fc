// Package discovery bootstraps the members of a new cluster through etcd's
// v3 discovery service: a running etcd (or Cairn) cluster in which each
// new member registers itself, and from which each learns the whole
// founding membership once enough members have registered (etcd's
// --discovery-token and --discovery-endpoints).
//
// Keys, all under one token's prefix in the discovery cluster:
//
//	/_etcd/registry/<token>/_config/size        the cluster's size, a decimal (put by the operator beforehand)
//	/_etcd/registry/<token>/members/<member ID> "name=peerURL[,name=peerURL...]", put by each member (ID in hex)
//
// Join, run once by each member on its first start:
//
//  1. reads the size and the registered members; refuses (ErrFullCluster)
//     when the founding members are already registered and this member is
//     not one of them;
//  2. puts its own key (again, if a crashed first start put it before);
//  3. reads the members again and watches the prefix from the revision it
//     read at, until at least size members are registered;
//  4. answers the first size members, by the revision that created their
//     keys, as an --initial-cluster string.
//
// Every member so derives the same founding membership, and computes the
// same member and cluster IDs from it (the discovery token serves as the
// initial cluster token). Members registered beyond the size (several
// registering at once) are not founders; such a member gets
// ErrFullCluster. A transient failure of the discovery service (down, no
// leader) is retried with backoff, for as long as etcd retries (without
// end), the first sign-in of --discovery-user included (etcd's fails at
// once); a missing or malformed size key, a wrong password or a role
// without access to the token's keys is not.
//
// The keys and their meaning are etcd's, so that a cluster of Cairn and one
// of etcd can use the same discovery service, and either can be it.
package discovery
