package emulator

import "strings"

// Operation names identify each Adobe API call the emulator serves. They key
// call counts and select the operations a Faults configuration targets.
const (
	OpIMSToken = "ims.token"

	OpConnectionSpecsGet  = "connectionSpecs.get"
	OpConnectionSpecsList = "connectionSpecs.list"
	OpFlowSpecsGet        = "flowSpecs.get"
	OpFlowSpecsList       = "flowSpecs.list"

	OpConnectionsCreate = "connections.create"
	OpConnectionsGet    = "connections.get"
	OpConnectionsList   = "connections.list"
	OpConnectionsPatch  = "connections.patch"
	OpConnectionsDelete = "connections.delete"

	OpSourceConnectionsCreate = "sourceConnections.create"
	OpSourceConnectionsGet    = "sourceConnections.get"
	OpSourceConnectionsList   = "sourceConnections.list"
	OpSourceConnectionsPatch  = "sourceConnections.patch"
	OpSourceConnectionsDelete = "sourceConnections.delete"

	OpTargetConnectionsCreate = "targetConnections.create"
	OpTargetConnectionsGet    = "targetConnections.get"
	OpTargetConnectionsList   = "targetConnections.list"
	OpTargetConnectionsPatch  = "targetConnections.patch"
	OpTargetConnectionsDelete = "targetConnections.delete"

	OpFlowsCreate = "flows.create"
	OpFlowsGet    = "flows.get"
	OpFlowsList   = "flows.list"
	OpFlowsPatch  = "flows.patch"
	OpFlowsDelete = "flows.delete"
	OpFlowsAction = "flows.action"

	OpRunsList = "runs.list"
	OpRunsGet  = "runs.get"

	OpMappingSetsCreate = "mappingSets.create"
	OpMappingSetsGet    = "mappingSets.get"
	OpMappingSetsList   = "mappingSets.list"
	OpMappingSetsUpdate = "mappingSets.update"

	// OpCollection is a POST of an event to a flow's inlet URL.
	OpCollection = "collection.post"
	// OpCollectionBatch is a POST of several messages to
	// /collection/batch/{inletId}.
	OpCollectionBatch = "collection.batch"

	// OpUnknown counts requests that matched no Adobe endpoint.
	OpUnknown = "unknown"
)

// Operations lists every operation name, in a stable order.
func Operations() []string {
	return []string{
		OpIMSToken,
		OpConnectionSpecsGet, OpConnectionSpecsList, OpFlowSpecsGet, OpFlowSpecsList,
		OpConnectionsCreate, OpConnectionsGet, OpConnectionsList, OpConnectionsPatch, OpConnectionsDelete,
		OpSourceConnectionsCreate, OpSourceConnectionsGet, OpSourceConnectionsList, OpSourceConnectionsPatch, OpSourceConnectionsDelete,
		OpTargetConnectionsCreate, OpTargetConnectionsGet, OpTargetConnectionsList, OpTargetConnectionsPatch, OpTargetConnectionsDelete,
		OpFlowsCreate, OpFlowsGet, OpFlowsList, OpFlowsPatch, OpFlowsDelete, OpFlowsAction,
		OpRunsList, OpRunsGet,
		OpMappingSetsCreate, OpMappingSetsGet, OpMappingSetsList, OpMappingSetsUpdate,
		OpCollection, OpCollectionBatch,
	}
}

// matchOp reports whether op is selected by pattern: an exact name, "*", or
// "<group>.*" such as "flows.*".
func matchOp(pattern, op string) bool {
	pattern = strings.TrimSpace(pattern)
	switch {
	case pattern == "*" || pattern == op:
		return true
	case strings.HasSuffix(pattern, ".*"):
		return strings.HasPrefix(op, strings.TrimSuffix(pattern, "*"))
	}
	return false
}

// Kind names a kind of stored Adobe object; the value is the Flow Service /
// Data Prep collection name.
type Kind string

const (
	// KindConnection is a base connection (auth params of a connection
	// spec with a non-empty authSpec).
	KindConnection       Kind = "connections"
	KindSourceConnection Kind = "sourceConnections"
	KindTargetConnection Kind = "targetConnections"
	KindFlow             Kind = "flows"
	KindMappingSet       Kind = "mappingSets"
)

// Kinds lists every stored kind.
func Kinds() []Kind {
	return []Kind{KindConnection, KindSourceConnection, KindTargetConnection, KindFlow, KindMappingSet}
}

func (k Kind) valid() bool {
	switch k {
	case KindConnection, KindSourceConnection, KindTargetConnection, KindFlow, KindMappingSet:
		return true
	}
	return false
}
