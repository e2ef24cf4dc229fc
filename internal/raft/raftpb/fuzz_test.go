package raftpb

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// codecPtr lets the fuzz checks below create a T and decode into *T.
type codecPtr[T any] interface {
	*T
	codec
}

// checkCanonical asserts the canonical-encoding rule of doc.go on arbitrary
// input: Unmarshal either refuses it with ErrCorrupt or accepts the one
// encoding Marshal would have written, and decoding that again gives the
// same value.
func checkCanonical[T any, P codecPtr[T]](t *testing.T, data []byte) {
	var v T
	if err := P(&v).Unmarshal(data); err != nil {
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Unmarshal error %v does not wrap ErrCorrupt", err)
		}
		return
	}
	enc := P(&v).Marshal()
	if !bytes.Equal(enc, data) {
		t.Fatalf("accepted a non-canonical encoding:\n input % x\nre-enc % x", data, enc)
	}
	if size := P(&v).Size(); size != len(data) {
		t.Fatalf("Size() = %d, encoding is %d bytes", size, len(data))
	}
	var again T
	if err := P(&again).Unmarshal(enc); err != nil {
		t.Fatalf("re-encoding does not decode: %v", err)
	}
	if !reflect.DeepEqual(v, again) {
		t.Fatalf("decode of re-encoding differs:\n first %+v\nsecond %+v", v, again)
	}
}

func FuzzMessageDecode(f *testing.F) {
	for _, m := range testMessages() {
		if m.Size() < 4096 {
			f.Add(m.Marshal())
		}
	}
	f.Add(appMessage().Marshal())
	f.Add([]byte{1, byte(MsgApp), 0, 0, 0, 0, 0, 0, 0x80, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) { checkCanonical[Message](t, data) })
}

func FuzzEntryDecode(f *testing.F) {
	for _, e := range []Entry{
		{},
		{Term: 1, Index: 1, Data: []byte("put k v")},
		{Term: maxU, Index: maxU, Type: EntryConfChange, Data: (&ConfChange{NodeID: 3}).Marshal()},
		{Term: 2, Index: 300, Data: payload(200)},
	} {
		f.Add(e.Marshal())
	}
	f.Add([]byte{0x80, 0x00, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) { checkCanonical[Entry](t, data) })
}

func FuzzConfChangeDecode(f *testing.F) {
	for _, c := range []ConfChange{
		{},
		{Type: ConfChangeAddLearner, NodeID: 4, Context: []byte("http://n4:2380")},
		{Type: ConfChangeRemoveNode, NodeID: maxU},
	} {
		f.Add(c.Marshal())
	}
	f.Add([]byte{3, 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) { checkCanonical[ConfChange](t, data) })
}
