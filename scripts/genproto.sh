#!/bin/sh
# genproto.sh regenerates the Go code of Cairn's .proto files (api/*/*.proto):
# the messages (protoc-gen-go), the gRPC services (protoc-gen-go-grpc) and
# the JSON gateway handlers (protoc-gen-grpc-gateway, in a gw subpackage as
# etcd's). The generated code is committed: building and CI need no protoc.
#
# Needs protoc (Debian: apt-get install protobuf-compiler) and Go; the
# plugins are installed at pinned versions into a temporary directory:
# protoc-gen-go at go.mod's google.golang.org/protobuf, protoc-gen-go-grpc
# as etcd 3.7.3's generated code, protoc-gen-grpc-gateway at the version
# go.etcd.io/etcd/api/v3 v3.7.3 requires. The imported etcd .proto files
# come from the module cache at go.mod's go.etcd.io/etcd/api/v3; the
# googleapis ones (google/api/annotations.proto), which no module ships as
# source, are given to protoc as descriptors (scripts/genproto/main.go).
set -eu

PROTOC_GEN_GO=v1.36.12
PROTOC_GEN_GO_GRPC=v1.6.2
GRPC_GATEWAY=v2.29.0

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
command -v protoc >/dev/null || { echo "genproto: protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }

tmp=$(mktemp -d)
mkdir -p "$tmp/out"
trap 'rm -rf "$tmp"' EXIT
GOBIN=$tmp/bin go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO"
GOBIN=$tmp/bin go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC"
GOBIN=$tmp/bin go install "github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$GRPC_GATEWAY"
PATH=$tmp/bin:$PATH

etcdapi=$(go list -m -f '{{.Dir}}' go.etcd.io/etcd/api/v3)
gateway=$(go list -m -f '{{.Dir}}' github.com/grpc-ecosystem/grpc-gateway/v2)
go run ./scripts/genproto "$tmp/googleapis.pb"

# The include tree: etcd's files where their imports name them
# (etcd/api/...), and Cairn's under cairn/, the path each of its files
# registers under (apart from etcd's own v3lock.proto and v3election.proto).
mkdir -p "$tmp/inc/etcd"
ln -s "$etcdapi" "$tmp/inc/etcd/api"
ln -s "$root" "$tmp/inc/cairn"

for pkg in v3lockpb v3electionpb; do
	rm -f api/$pkg/*.pb.go api/$pkg/gw/*.pb.gw.go
	mkdir -p api/$pkg/gw
	protoc -I "$tmp/inc" -I "$gateway" --descriptor_set_in="$tmp/googleapis.pb" \
		--go_out="$tmp/inc" --go_opt=paths=source_relative \
		--go-grpc_out="$tmp/inc" --go-grpc_opt=paths=source_relative \
		--grpc-gateway_out="$tmp/out" --grpc-gateway_opt=paths=source_relative,standalone=true \
		$(cd "$tmp/inc" && ls cairn/api/$pkg/*.proto)
	# The gateway's standalone code goes to the gw subpackage, as etcd's.
	for f in "$tmp/out/cairn/api/$pkg"/*.pb.gw.go; do
		sed 's/^package '"$pkg"'$/package gw/' "$f" >api/$pkg/gw/"$(basename "$f")"
	done
done
gofmt -l api
