package raftpb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// codec is the method set every encoded type has.
type codec interface {
	Marshal() []byte
	MarshalTo(buf []byte) []byte
	Size() int
	Unmarshal(data []byte) error
}

const maxU = math.MaxUint64

func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 1)
	}
	return b
}

func entries(n, dataSize int) []Entry {
	es := make([]Entry, n)
	for i := range es {
		es[i] = Entry{Term: 3, Index: uint64(1000 + i), Data: payload(dataSize)}
	}
	return es
}

// testMessages are representative messages; the fuzz targets seed from them.
func testMessages() []Message {
	return []Message{
		{Type: MsgApp},
		{Type: MsgHeartbeat, To: 2, From: 1, Term: 5, Commit: 300, Context: []byte("ab")},
		{Type: MsgAppResp, To: 1, From: 3, Term: 9, Index: 41, Reject: true, RejectHint: 40, LogTerm: 8},
		{Type: MsgApp, To: 2, From: 1, Term: 3, LogTerm: 3, Index: 999, Commit: 990, Entries: entries(500, 16)},
		{Type: MsgApp, Entries: []Entry{{}, {Type: EntryConfChange, Term: maxU, Index: maxU, Data: payload(300)}}},
		{Type: MsgSnap, To: 4, From: 1, Term: 7, Snapshot: &Snapshot{
			Metadata: SnapshotMetadata{
				ConfState: ConfState{Voters: []uint64{1, 2, 3}, Learners: []uint64{4}},
				Index:     5000,
				Term:      6,
			},
			Data: []byte("checkpoint-5000"),
		}},
		{Type: MsgSnap, Snapshot: &Snapshot{}},
		{
			Type: maxMessageType, To: maxU, From: maxU, Term: maxU, LogTerm: maxU, Index: maxU,
			Commit: maxU, Reject: true, RejectHint: maxU, Context: payload(1 << 14),
			Entries: []Entry{{Term: maxU, Index: maxU, Type: maxEntryType, Data: payload(1)}},
			Snapshot: &Snapshot{
				Metadata: SnapshotMetadata{
					ConfState: ConfState{Voters: []uint64{maxU}, Learners: []uint64{0, maxU}},
					Index:     maxU,
					Term:      maxU,
				},
				Data: payload(200),
			},
		},
	}
}

type roundTripCase struct {
	name  string
	value codec
	fresh func() codec // an empty value of the same type to decode into
}

func roundTripCases() []roundTripCase {
	newEntry := func() codec { return new(Entry) }
	newHardState := func() codec { return new(HardState) }
	newConfState := func() codec { return new(ConfState) }
	newMetadata := func() codec { return new(SnapshotMetadata) }
	newSnapshot := func() codec { return new(Snapshot) }
	newConfChange := func() codec { return new(ConfChange) }
	newMessage := func() codec { return new(Message) }

	cases := []roundTripCase{
		{"Entry/zero", &Entry{}, newEntry},
		{"Entry/max", &Entry{Term: maxU, Index: maxU, Type: EntryConfChange, Data: payload(300)}, newEntry},
		{"Entry/normal", &Entry{Term: 2, Index: 128, Data: []byte("put k v")}, newEntry},
		{"HardState/zero", &HardState{}, newHardState},
		{"HardState/small", &HardState{Term: 1, Vote: 2, Commit: 3}, newHardState},
		{"HardState/max", &HardState{Term: maxU, Vote: maxU, Commit: maxU}, newHardState},
		{"ConfState/zero", &ConfState{}, newConfState},
		{"ConfState/voters", &ConfState{Voters: []uint64{1, 2, 3}}, newConfState},
		{"ConfState/both", &ConfState{Voters: []uint64{1, maxU}, Learners: []uint64{4}}, newConfState},
		{"SnapshotMetadata/zero", &SnapshotMetadata{}, newMetadata},
		{"SnapshotMetadata/full", &SnapshotMetadata{
			ConfState: ConfState{Voters: []uint64{1, 2}, Learners: []uint64{3}}, Index: maxU, Term: 7,
		}, newMetadata},
		{"Snapshot/zero", &Snapshot{}, newSnapshot},
		{"Snapshot/full", &Snapshot{
			Metadata: SnapshotMetadata{ConfState: ConfState{Voters: []uint64{1}}, Index: 10, Term: 2},
			Data:     payload(1 << 16),
		}, newSnapshot},
		{"ConfChange/zero", &ConfChange{}, newConfChange},
		{"ConfChange/learner", &ConfChange{Type: ConfChangeAddLearner, NodeID: 4, Context: []byte("http://n4:2380")}, newConfChange},
		{"ConfChange/max", &ConfChange{Type: maxConfChangeType, NodeID: maxU, Context: payload(200)}, newConfChange},
	}
	for i, m := range testMessages() {
		cases = append(cases, roundTripCase{fmt.Sprintf("Message/%d-%s", i, m.Type), &m, newMessage})
	}
	return cases
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range roundTripCases() {
		t.Run(tc.name, func(t *testing.T) {
			enc := tc.value.Marshal()
			if got := tc.value.Size(); got != len(enc) {
				t.Fatalf("Size() = %d, len(Marshal()) = %d", got, len(enc))
			}
			prefix := []byte("prefix")
			if got := tc.value.MarshalTo(bytes.Clone(prefix)); !bytes.Equal(got, append(prefix, enc...)) {
				t.Fatalf("MarshalTo did not append the Marshal encoding to its buffer")
			}
			got := tc.fresh()
			if err := got.Unmarshal(enc); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if !reflect.DeepEqual(got, tc.value) {
				t.Fatalf("round trip mismatch:\n got %+v\nwant %+v", got, tc.value)
			}
		})
	}
}

// TestTruncatedAndTrailing checks that no strict prefix of a valid encoding,
// and no valid encoding with a byte appended, decodes.
func TestTruncatedAndTrailing(t *testing.T) {
	for _, tc := range roundTripCases() {
		t.Run(tc.name, func(t *testing.T) {
			enc := tc.value.Marshal()
			for n := 0; n < len(enc); n++ {
				if err := tc.fresh().Unmarshal(enc[:n]); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Unmarshal of %d-byte prefix of %d: err = %v, want ErrCorrupt", n, len(enc), err)
				}
			}
			err := tc.fresh().Unmarshal(append(bytes.Clone(enc), 0))
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "1 trailing bytes") {
				t.Fatalf("Unmarshal with a trailing byte: err = %v, want trailing-bytes ErrCorrupt", err)
			}
		})
	}
}

// TestMessageGolden pins the wire layout to the worked example in doc.go.
func TestMessageGolden(t *testing.T) {
	m := Message{Type: MsgHeartbeat, To: 2, From: 1, Term: 5, Commit: 300, Context: []byte("ab")}
	want := []byte{0x01, 0x08, 0x02, 0x01, 0x05, 0x00, 0x00, 0xac, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 'a', 'b'}
	if got := m.Marshal(); !bytes.Equal(got, want) {
		t.Fatalf("Marshal = % x\n    want % x", got, want)
	}
}

// TestEmptyDecodesNil checks the one canonical form of empty slices: nil and
// empty encode alike, and both come back nil.
func TestEmptyDecodesNil(t *testing.T) {
	in := Message{
		Type:    MsgApp,
		Entries: []Entry{},
		Context: []byte{},
		Snapshot: &Snapshot{
			Metadata: SnapshotMetadata{ConfState: ConfState{Voters: []uint64{}, Learners: []uint64{}}},
			Data:     []byte{},
		},
	}
	var out Message
	if err := out.Unmarshal(in.Marshal()); err != nil {
		t.Fatal(err)
	}
	want := Message{Type: MsgApp, Snapshot: &Snapshot{}}
	if !reflect.DeepEqual(out, want) {
		t.Fatalf("got %+v, want %+v", out, want)
	}
	var e Entry
	if err := e.Unmarshal((&Entry{Data: []byte{}}).Marshal()); err != nil || e.Data != nil {
		t.Fatalf("Entry.Data = %#v, err %v; want nil", e.Data, err)
	}
}

// TestUnmarshalCopies checks that decoded byte fields share nothing with the
// input, and that appending to one field does not clobber its neighbour in
// the decoder's arena.
func TestUnmarshalCopies(t *testing.T) {
	in := Message{Type: MsgApp, Entries: entries(3, 8), Context: []byte("ctx")}
	enc := in.Marshal()
	var out Message
	if err := out.Unmarshal(enc); err != nil {
		t.Fatal(err)
	}
	for i := range enc {
		enc[i] = 0xee
	}
	out.Entries[0].Data = append(out.Entries[0].Data, 0xff)
	in.Entries[0].Data = append(in.Entries[0].Data, 0xff)
	if !reflect.DeepEqual(out, in) {
		t.Fatalf("decoded message changed with its input or arena:\n got %+v\nwant %+v", out, in)
	}
}

// UnmarshalAliased decodes every test message as Unmarshal does, its byte
// fields pointing into the input (no copy), each capped so that appending
// to one cannot overwrite the input after it.
func TestUnmarshalAliased(t *testing.T) {
	for i, in := range testMessages() {
		enc := in.Marshal()
		var copied, aliased Message
		if err := copied.Unmarshal(enc); err != nil {
			t.Fatal(err)
		}
		if err := aliased.UnmarshalAliased(enc); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(aliased, copied) {
			t.Fatalf("message %d: aliased %+v, copied %+v", i, aliased, copied)
		}
	}
	in := Message{Type: MsgApp, Entries: entries(2, 8)}
	enc := in.Marshal()
	var out Message
	if err := out.UnmarshalAliased(enc); err != nil {
		t.Fatal(err)
	}
	d := out.Entries[0].Data
	if cap(d) != len(d) {
		t.Fatalf("entry data not capped: len %d cap %d", len(d), cap(d))
	}
	out.Entries[0].Data = append(out.Entries[0].Data, 0xff)
	if !reflect.DeepEqual(out.Entries[1], in.Entries[1]) {
		t.Fatalf("appending to one entry changed the next: %+v", out.Entries[1])
	}
	for i := range enc {
		enc[i] = 0xee
	}
	if !bytes.Equal(d, bytes.Repeat([]byte{0xee}, len(d))) {
		t.Fatalf("entry data did not change with the input: not aliased")
	}
}

func TestUnmarshalErrorLeavesValue(t *testing.T) {
	orig := Message{Type: MsgVote, Term: 4}
	m := orig
	if err := m.Unmarshal([]byte{1, byte(MsgApp), 1, 2}); err == nil {
		t.Fatal("truncated message decoded")
	}
	if !reflect.DeepEqual(m, orig) {
		t.Fatalf("failed Unmarshal changed the value to %+v", m)
	}
}

func uv(x uint64) []byte { return binary.AppendUvarint(nil, x) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// set returns a copy of b with b[i] = v.
func set(b []byte, i int, v byte) []byte {
	b = bytes.Clone(b)
	b[i] = v
	return b
}

func TestRejects(t *testing.T) {
	// heartbeat is the doc.go example; its byte offsets are: 0 version,
	// 1 type, 9 reject, 11 entry count, 12 has snapshot, 13 context length.
	heartbeat := []byte{0x01, 0x08, 0x02, 0x01, 0x05, 0x00, 0x00, 0xac, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 'a', 'b'}
	max10 := bytes.Repeat([]byte{0xff}, 9) // first nine bytes of a 10-byte varint

	entry := func(b []byte) error { return new(Entry).Unmarshal(b) }
	hardState := func(b []byte) error { return new(HardState).Unmarshal(b) }
	confState := func(b []byte) error { return new(ConfState).Unmarshal(b) }
	snapshot := func(b []byte) error { return new(Snapshot).Unmarshal(b) }
	confChange := func(b []byte) error { return new(ConfChange).Unmarshal(b) }
	message := func(b []byte) error { return new(Message).Unmarshal(b) }

	for _, tc := range []struct {
		name      string
		decode    func([]byte) error
		input     []byte
		wantInErr string
	}{
		{"entry empty input", entry, nil, "Entry.Term: truncated"},
		{"entry non-minimal zero", entry, []byte{0x80, 0x00, 1, 0, 0}, "Entry.Term: non-minimal"},
		{"entry non-minimal one", entry, []byte{1, 0x81, 0x80, 0x00, 0, 0}, "Entry.Index: non-minimal"},
		{"entry varint overflow in 10th byte", entry, cat(max10, []byte{0x02, 1, 0, 0}), "Entry.Term: varint overflows"},
		{"entry varint of 11 bytes", entry, cat(max10, []byte{0x81, 0x01, 1, 0, 0}), "Entry.Term: varint overflows"},
		{"entry unknown type", entry, []byte{1, 1, 2, 0}, "Entry.Type: unknown value 2"},
		{"entry data longer than input", entry, []byte{1, 1, 0, 5, 'a'}, "Entry.Data: length 5 exceeds"},
		{"entry data length overflows int", entry, cat([]byte{1, 1, 0}, max10, []byte{0x01}), "Entry.Data: length"},
		{"entry non-minimal data length", entry, []byte{1, 1, 0, 0x81, 0x00, 'a'}, "Entry.Data: non-minimal"},
		{"entry trailing byte", entry, []byte{1, 1, 0, 0, 0}, "Entry: 1 trailing bytes"},
		{"hard state non-minimal commit", hardState, []byte{1, 2, 0x81, 0x00}, "HardState.Commit: non-minimal"},
		{"conf state count longer than input", confState, []byte{5, 1, 2}, "ConfState.Voters: count 5 does not fit"},
		{"conf state huge count", confState, cat(uv(1<<62), []byte{1}), "ConfState.Voters: count"},
		{"conf state learners truncated", confState, []byte{0, 2, 1}, "ConfState.Learners: count 2"},
		{"snapshot nested error names its path", snapshot, []byte{1, 0x80, 0x00, 0, 0, 0, 0},
			"Snapshot.Metadata: SnapshotMetadata.ConfState: ConfState.Voters: non-minimal"},
		{"conf change unknown type", confChange, []byte{4, 1, 0}, "ConfChange.Type: unknown value 4"},
		{"conf change bad context length", confChange, []byte{0, 1, 2, 'x'}, "ConfChange.Context: length 2"},
		{"message empty input", message, nil, "Message version: truncated"},
		{"message version 0", message, set(heartbeat, 0, 0), "unknown format version 0"},
		{"message version 2", message, set(heartbeat, 0, 2), "unknown format version 2"},
		{"message type 0", message, set(heartbeat, 1, 0), "Message.Type: unknown value 0"},
		{"message type past max", message, set(heartbeat, 1, byte(maxMessageType)+1), "Message.Type: unknown value 15"},
		{"message bad bool", message, set(heartbeat, 9, 2), "Message.Reject: unknown value 2"},
		{"message bad presence byte", message, set(heartbeat, 12, 2), "Message.Snapshot presence: unknown value 2"},
		{"message entry count longer than input", message, set(heartbeat, 11, 2), "Message.Entries: count 2 does not fit"},
		{"message non-minimal context length", message, cat(heartbeat[:13], []byte{0x82, 0x00, 'a', 'b'}), "Message.Context: non-minimal"},
		{"message trailing byte", message, cat(heartbeat, []byte{0}), "Message: 1 trailing bytes"},
		{"message bad entry names its index", message,
			cat(heartbeat[:11], []byte{2, 1, 1, 0, 0, 1, 1, 7, 0}, heartbeat[12:]), "Message.Entries[1]: Entry.Type: unknown value 7"},
		{"message bad snapshot", message,
			cat(heartbeat[:12], []byte{1, 0, 50}, heartbeat[13:]),
			"Message.Snapshot: Snapshot.Metadata: SnapshotMetadata.ConfState: ConfState.Learners: count 50 does not fit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.decode(tc.input)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), tc.wantInErr) {
				t.Fatalf("err = %q, want it to contain %q", err, tc.wantInErr)
			}
		})
	}
}

// TestHostileCountAllocatesLittle feeds counts that would need hundreds of
// megabytes if believed, in inputs of a few bytes.
func TestHostileCountAllocatesLittle(t *testing.T) {
	inputs := [][]byte{
		cat(uv(1<<24), []byte{1, 2, 3}), // ConfState voters: 128 MiB of uint64s
		cat([]byte{1, byte(MsgApp), 0, 0, 0, 0, 0, 0, 0, 0}, uv(1<<24), []byte{1, 2, 3}), // 768 MiB of Entries
	}
	decoders := []codec{new(ConfState), new(Message)}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i, in := range inputs {
		if err := decoders[i].Unmarshal(in); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("input %d: err = %v, want ErrCorrupt", i, err)
		}
	}
	runtime.ReadMemStats(&after)
	if allocated := after.TotalAlloc - before.TotalAlloc; allocated > 1<<20 {
		t.Fatalf("decoding hostile counts allocated %d bytes", allocated)
	}
}

func TestMarshalInvalidTypePanics(t *testing.T) {
	for _, v := range []codec{
		&Message{},
		&Message{Type: maxMessageType + 1},
		&Entry{Type: maxEntryType + 1},
		&ConfChange{Type: maxConfChangeType + 1},
		&Message{Type: MsgApp, Entries: []Entry{{Type: maxEntryType + 1}}},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Marshal(%+v) did not panic", v)
				}
			}()
			v.Marshal()
		}()
	}
}

// appMessage is a MsgApp of 10 entries of 128 bytes: a typical replication
// batch of small writes.
func appMessage() *Message {
	return &Message{Type: MsgApp, To: 2, From: 1, Term: 12, LogTerm: 12, Index: 104_857, Commit: 104_850, Entries: entries(10, 128)}
}

func BenchmarkMessageMarshal(b *testing.B) {
	m := appMessage()
	b.SetBytes(int64(m.Size()))
	b.ReportAllocs()
	for b.Loop() {
		m.Marshal()
	}
}

func BenchmarkMessageUnmarshal(b *testing.B) {
	enc := appMessage().Marshal()
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	var m Message
	for b.Loop() {
		if err := m.Unmarshal(enc); err != nil {
			b.Fatal(err)
		}
	}
}
