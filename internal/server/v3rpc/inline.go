package v3rpc

import "google.golang.org/protobuf/encoding/protowire"

// rangeMethod is the method inlineCall lets the reader answer.
const rangeMethod = "/etcdserverpb.KV/Range"

// inlineCall is h2grpc's Options.Inline: a serializable Range of one key
// (no range_end) answers from the store at once, waiting for nothing, so
// the connection's reader may answer it itself (no worker woken). A
// linearizable one waits for the read index, and a range of many keys
// may take long enough to hold up the connection's other calls: those
// go to a worker. msg is scanned, not decoded: a field this scan does
// not know sends the call to a worker.
func inlineCall(fullMethod string, msg []byte) bool {
	if fullMethod != rangeMethod {
		return false
	}
	serializable := false
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return false
		}
		msg = msg[n:]
		switch {
		case num == 2 && typ == protowire.BytesType: // range_end
			v, n := protowire.ConsumeBytes(msg)
			if n < 0 || len(v) > 0 {
				return false
			}
			msg = msg[n:]
			continue
		case num == 7 && typ == protowire.VarintType: // serializable
			v, n := protowire.ConsumeVarint(msg)
			if n < 0 {
				return false
			}
			serializable = v != 0
			msg = msg[n:]
			continue
		case num > 13:
			return false
		}
		n = protowire.ConsumeFieldValue(num, typ, msg)
		if n < 0 {
			return false
		}
		msg = msg[n:]
	}
	return serializable
}
