package emulator

import (
	"cmp"
	"slices"
	"sync"
)

// StatusDropped is the status recorded for a request whose connection the
// emulator closed without answering (LostModeDrop).
const StatusDropped = 0

// CallKey identifies a group of calls: the operation, the HTTP status the
// caller saw, and the client ID (from the token, the x-api-key header or the
// IMS form; empty when none was given).
type CallKey struct {
	Operation string `json:"operation"`
	Status    int    `json:"status"`
	ClientID  string `json:"clientId"`
}

// CallCounts counts calls by operation, status and client ID.
type CallCounts map[CallKey]int

// Op returns the number of calls to op, whatever their status or client.
func (c CallCounts) Op(op string) int {
	n := 0
	for k, v := range c {
		if k.Operation == op {
			n += v
		}
	}
	return n
}

// OpStatus returns the number of calls to op answered with status.
func (c CallCounts) OpStatus(op string, status int) int {
	n := 0
	for k, v := range c {
		if k.Operation == op && k.Status == status {
			n += v
		}
	}
	return n
}

// Client returns the number of calls made with clientID.
func (c CallCounts) Client(clientID string) int {
	n := 0
	for k, v := range c {
		if k.ClientID == clientID {
			n += v
		}
	}
	return n
}

// Total returns the number of calls.
func (c CallCounts) Total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// CallCount is one row of CallCounts.List, the JSON form of the counts.
type CallCount struct {
	CallKey
	Count int `json:"count"`
}

// List returns the counts sorted by operation, status and client ID.
func (c CallCounts) List() []CallCount {
	out := make([]CallCount, 0, len(c))
	for k, v := range c {
		out = append(out, CallCount{CallKey: k, Count: v})
	}
	slices.SortFunc(out, func(a, b CallCount) int {
		return cmp.Or(cmp.Compare(a.Operation, b.Operation), cmp.Compare(a.Status, b.Status), cmp.Compare(a.ClientID, b.ClientID))
	})
	return out
}

type callRecorder struct {
	mu     sync.Mutex
	counts CallCounts
}

func (c *callRecorder) add(op string, status int, clientID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts = CallCounts{}
	}
	c.counts[CallKey{Operation: op, Status: status, ClientID: clientID}]++
}

func (c *callRecorder) snapshot() CallCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(CallCounts, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

func (c *callRecorder) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts = nil
}
