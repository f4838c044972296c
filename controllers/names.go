package controllers

import (
	"fmt"
	"regexp"

	"k8s.io/apimachinery/pkg/types"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
)

// Kinds of Adobe object, as they appear in names, events and conditions.
const (
	kindSource   = "source"
	kindTarget   = "target"
	kindDataflow = "dataflow"
)

// maxNamePart keeps Adobe names short enough to read and to filter on.
const maxNamePart = 80

// adobeName is the deterministic name of one Adobe object of a
// CapillarySource. The UID makes it unique to this resource: an object with
// this name can only have been created for it, so finding one by name before
// a create is safe, and a namesake of another resource is never taken over.
func adobeName(cs *v1alpha1.CapillarySource, kind string) string {
	return fmt.Sprintf("capillary-%s-%s-%s-%s", trim(cs.Namespace), trim(cs.Name), cs.UID, kind)
}

// description says who owns the object, for people browsing Adobe's UI.
func description(cs *v1alpha1.CapillarySource) string {
	return fmt.Sprintf("Managed by capillary-operator for CapillarySource %s/%s (uid %s). Changes made here are reverted.", cs.Namespace, cs.Name, cs.UID)
}

func trim(s string) string {
	if len(s) > maxNamePart {
		return s[:maxNamePart]
	}
	return s
}

// ownedName matches adobeName: capillary-<namespace>-<name>-<uid>-<kind>.
var ownedName = regexp.MustCompile(`^capillary-.*-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})-[a-z]+$`)

// ownerUID is the UID of the CapillarySource an Adobe object was named for,
// when the operator named it.
func ownerUID(name string) (types.UID, bool) {
	m := ownedName.FindStringSubmatch(name)
	if m == nil {
		return "", false
	}
	return types.UID(m[1]), true
}
