// Command genproto writes the descriptors of google/api/annotations.proto
// and google/api/http.proto, as the genproto module that go.mod pins
// compiled them, to a FileDescriptorSet for protoc's --descriptor_set_in.
// The googleapis .proto sources are in no Go module nor Debian package;
// their compiled descriptors are, and protoc needs no more than that to
// resolve the google.api.http options of Cairn's .proto files.
// scripts/genproto.sh runs it.
package main

import (
	"fmt"
	"os"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: genproto OUT.pb")
		os.Exit(2)
	}
	var set descriptorpb.FileDescriptorSet
	// Dependencies first, as protoc expects.
	for _, f := range []protoreflect.FileDescriptor{
		descriptorpb.File_google_protobuf_descriptor_proto,
		annotations.File_google_api_http_proto,
		annotations.File_google_api_annotations_proto,
	} {
		set.File = append(set.File, protodesc.ToFileDescriptorProto(f))
	}
	b, err := proto.Marshal(&set)
	if err == nil {
		err = os.WriteFile(os.Args[1], b, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "genproto:", err)
		os.Exit(1)
	}
}
