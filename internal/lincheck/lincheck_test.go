package lincheck

import (
	"math"
	"testing"

	"github.com/anishathalye/porcupine"
)

func put(client int, key, value string, rev int64, call, ret int64) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: Input{Key: key, Put: true, Value: value},
		Output: Output{Rev: rev}, Call: call, Return: ret}
}

func unknownPut(client int, key, value string, call int64) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: Input{Key: key, Put: true, Value: value},
		Output: Output{Unknown: true}, Call: call, Return: math.MaxInt64}
}

func get(client int, key, value string, rev int64, call, ret int64) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: Input{Key: key}, Output: Output{Value: value, Rev: rev}, Call: call, Return: ret}
}

// The model accepts what etcd may answer and refuses stale reads, reads of
// a value at the wrong revision, and revisions that go backwards.
func TestModel(t *testing.T) {
	for _, tc := range []struct {
		name    string
		history []porcupine.Operation
		want    porcupine.CheckResult
	}{
		{"a read after a put sees it", []porcupine.Operation{
			put(0, "k", "v1", 5, 0, 10), get(1, "k", "v1", 5, 20, 30)}, porcupine.Ok},
		{"a stale read after a put", []porcupine.Operation{
			put(0, "k", "v1", 5, 0, 10), get(1, "k", "", 0, 20, 30)}, porcupine.Illegal},
		{"a read during a put may see either", []porcupine.Operation{
			put(0, "k", "v1", 5, 0, 30), get(1, "k", "", 0, 10, 20), get(2, "k", "v1", 5, 10, 20)}, porcupine.Ok},
		{"a value read at another revision than its put's", []porcupine.Operation{
			put(0, "k", "v1", 5, 0, 10), get(1, "k", "v1", 6, 20, 30)}, porcupine.Illegal},
		{"a later put at a lower revision", []porcupine.Operation{
			put(0, "k", "v1", 5, 0, 10), put(1, "k", "v2", 4, 20, 30)}, porcupine.Illegal},
		{"an unanswered put may show later, with the revision the read gives", []porcupine.Operation{
			unknownPut(0, "k", "v1", 0), get(1, "k", "", 0, 10, 20), get(1, "k", "v1", 7, 30, 40), get(2, "k", "v1", 7, 50, 60)}, porcupine.Ok},
		{"an unanswered put may never take effect", []porcupine.Operation{
			unknownPut(0, "k", "v1", 0), get(1, "k", "", 0, 10, 20)}, porcupine.Ok},
		{"keys are independent registers", []porcupine.Operation{
			put(0, "a", "v1", 5, 0, 10), get(1, "b", "", 0, 20, 30), get(1, "a", "v1", 5, 40, 50)}, porcupine.Ok},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := porcupine.CheckOperations(Model, tc.history); got != (tc.want == porcupine.Ok) {
				t.Fatalf("linearizable = %v, want %v", got, tc.want == porcupine.Ok)
			}
		})
	}
}

// illegalKey names the key whose history is illegal, not another.
func TestIllegalKey(t *testing.T) {
	history := []porcupine.Operation{
		put(0, "a", "v1", 5, 0, 10), get(1, "a", "v1", 5, 20, 30),
		put(0, "b", "v2", 6, 40, 50), get(1, "b", "", 0, 60, 70),
	}
	if k := illegalKey(history, 0); k != "b" {
		t.Fatalf("illegalKey = %q, want b", k)
	}
}
