// Package e2e runs real cairn processes on loopback and drives them with
// the official etcd Go client (go.etcd.io/etcd/client/v3): the tests a
// user of etcd would write. Members are killed with SIGKILL and restarted
// on the same data directories.
//
// TestMain builds the binary once; CAIRN_E2E_BINARY points the tests at a
// prebuilt one instead.
package e2e
