package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	v1alpha1 "github.com/aepoperator/capillary-operator/api/v1alpha1"
)

// tableAccept asks the apiserver for the server-side Table kubectl prints,
// built from the CRD's additionalPrinterColumns.
const tableAccept = "application/json;as=Table;v=v1;g=meta.k8s.io"

// getTable fetches the CapillarySources of ns as a Table.
func getTable(ctx context.Context, cfg *rest.Config, ns string) (*metav1.Table, error) {
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &v1alpha1.GroupVersion
	c.APIPath = "/apis"
	c.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("create REST client: %w", err)
	}
	raw, err := rc.Get().Namespace(ns).Resource("capillarysources").
		SetHeader("Accept", tableAccept).Param("includeObject", "None").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("list capillarysources as a table: %w", err)
	}
	t := &metav1.Table{}
	if err := json.Unmarshal(raw, t); err != nil {
		return nil, fmt.Errorf("decode table: %w", err)
	}
	return t, nil
}

// printTable prints t as `kubectl get -o wide` does: every column, headers
// in capitals, dates as ages, "<none>" for empty cells.
func printTable(out io.Writer, t *metav1.Table, now time.Time) error {
	w := tabwriter.NewWriter(out, 6, 4, 3, ' ', 0)
	headers := make([]string, len(t.ColumnDefinitions))
	for i, c := range t.ColumnDefinitions {
		headers[i] = strings.ToUpper(c.Name)
	}
	fmt.Fprintln(w, strings.Join(headers, "\t"))
	for _, row := range t.Rows {
		cells := make([]string, len(t.ColumnDefinitions))
		for i := range t.ColumnDefinitions {
			var v any
			if i < len(row.Cells) {
				v = row.Cells[i]
			}
			cells[i] = formatCell(t.ColumnDefinitions[i], v, now)
		}
		fmt.Fprintln(w, strings.Join(cells, "\t"))
	}
	return w.Flush()
}

func formatCell(col metav1.TableColumnDefinition, v any, now time.Time) string {
	if v == nil || v == "" {
		return "<none>"
	}
	if col.Type == "date" {
		if s, ok := v.(string); ok {
			if ts, err := time.Parse(time.RFC3339, s); err == nil {
				return duration.HumanDuration(now.Sub(ts))
			}
		}
	}
	return fmt.Sprint(v)
}
