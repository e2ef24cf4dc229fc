// Command cairnctl is Cairn's command-line client: etcdctl's commands,
// flags, environment variables, output formats and exit codes, so that
// scripts written for etcdctl work unchanged. It follows etcdctl 3.7.3
// (the release internal/version names), help text included, and is built
// on the official client (go.etcd.io/etcd/client/v3).
//
// Exit codes are etcdctl's: 0 success, 1 a failed request, 2 a bad
// connection, 3 invalid input, 4 an unsupported feature (an output format
// a command does not have), 128 bad arguments. Errors go to stderr as
// "Error: <message>".
package main
