package emulator

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Flow Service list queries (en:help/dataflows/api/sort-and-filter.md):
//   property=<path><op><v1>[,<v2>...]  repeated params are ANDed; values after
//                                     == are ORed; "[]" after an array name
//                                     matches any element
//   property=<field>                  (no operator) keeps only these fields
//   orderby=[+|-]<path>, limit=<n>, continuationToken=<t>, count=true

type pathSeg struct {
	name  string
	array bool
}

type filterExpr struct {
	raw    string
	path   []pathSeg
	op     string
	values []string
}

type listQuery struct {
	filters    []filterExpr
	projection []string
	orderBy    []pathSeg
	desc       bool
	limit      int
	offset     int
	count      bool
}

func parsePath(s string) []pathSeg {
	var segs []pathSeg
	for _, p := range strings.Split(s, ".") {
		seg := pathSeg{name: p}
		if strings.HasSuffix(p, "[]") {
			seg = pathSeg{name: strings.TrimSuffix(p, "[]"), array: true}
		}
		segs = append(segs, seg)
	}
	return segs
}

func invalidQuery(raw string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "1453-400", title: "Invalid request",
		detail: "Invalid query value " + raw + " provided in query param."}
}

// parseFilter splits "a.b[].c==x,y" at its first operator.
func parseFilter(raw string) (filterExpr, bool, *apiError) {
	for i := 0; i < len(raw); i++ {
		op := ""
		switch {
		case strings.HasPrefix(raw[i:], "=="), strings.HasPrefix(raw[i:], "!="),
			strings.HasPrefix(raw[i:], ">="), strings.HasPrefix(raw[i:], "<="):
			op = raw[i : i+2]
		case raw[i] == '>' || raw[i] == '<':
			op = raw[i : i+1]
		case raw[i] == '~' || raw[i] == '=':
			return filterExpr{}, false, &apiError{status: http.StatusBadRequest, code: "1450-400", title: "Invalid request",
				detail: "Invalid operator " + string(raw[i]) + " in filter params."}
		}
		if op == "" {
			continue
		}
		path, rest := raw[:i], raw[i+len(op):]
		if path == "" || rest == "" {
			return filterExpr{}, false, invalidQuery(raw)
		}
		var values []string
		for _, v := range strings.Split(rest, ",") {
			values = append(values, strings.Trim(v, `"'`))
		}
		return filterExpr{raw: raw, path: parsePath(path), op: op, values: values}, true, nil
	}
	return filterExpr{}, false, nil
}

func parseListQuery(q url.Values) (listQuery, *apiError) {
	var lq listQuery
	for _, raw := range q["property"] {
		if raw == "" {
			continue
		}
		f, isFilter, err := parseFilter(raw)
		if err != nil {
			return lq, err
		}
		if isFilter {
			lq.filters = append(lq.filters, f)
		} else {
			lq.projection = append(lq.projection, strings.Split(raw, ",")...)
		}
	}
	if ob := q.Get("orderby"); ob != "" {
		switch ob[0] {
		case '-':
			lq.desc, ob = true, ob[1:]
		case '+':
			ob = ob[1:]
		}
		if ob == "" {
			return lq, &apiError{status: http.StatusBadRequest, code: "1433-400", title: "Invalid request",
				detail: "Incorrect field passed in orderBy, example are +name, -name, name."}
		}
		lq.orderBy = parsePath(ob)
	}
	if c := q.Get("count"); c != "" {
		b, err := strconv.ParseBool(c)
		if err != nil {
			return lq, invalidQuery("count=" + c)
		}
		lq.count = b
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n <= 0 {
			return lq, invalidQuery("limit=" + l)
		}
		if lq.count {
			return lq, &apiError{status: http.StatusBadRequest, code: "1401-400", title: "Invalid request",
				detail: "The limit and count parameters cannot be given together in the same request. Please provide either only the limit or the count parameter and try again."}
		}
		lq.limit = n
	}
	if t := q.Get("continuationToken"); t != "" {
		off, err := decodeContinuation(t)
		if err != nil {
			return lq, invalidQuery("continuationToken=" + t)
		}
		lq.offset = off
	}
	return lq, nil
}

func encodeContinuation(offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(offset)))
}

func decodeContinuation(t string) (int, error) {
	b, err := base64.RawURLEncoding.DecodeString(t)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimPrefix(string(b), "offset:"))
	if err != nil || n < 0 {
		return 0, strconv.ErrSyntax
	}
	return n, nil
}

// collect returns the values at a path; "[]" segments and a final array
// fan out to their elements.
func collect(cur any, segs []pathSeg) []any {
	if len(segs) == 0 {
		if arr, ok := cur.([]any); ok {
			return arr
		}
		return []any{cur}
	}
	m, ok := cur.(map[string]any)
	if !ok {
		return nil
	}
	v, ok := m[segs[0].name]
	if !ok {
		return nil
	}
	if segs[0].array {
		arr, ok := v.([]any)
		if !ok {
			return nil
		}
		var out []any
		for _, el := range arr {
			out = append(out, collect(el, segs[1:])...)
		}
		return out
	}
	return collect(v, segs[1:])
}

func scalarString(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(t)
	case nil:
		return "null"
	default:
		b, _ := json.Marshal(t)
		return string(b)
	}
}

func compareScalars(a any, b string) int {
	if af, ok := a.(float64); ok {
		if bf, err := strconv.ParseFloat(b, 64); err == nil {
			return cmp.Compare(af, bf)
		}
	}
	return strings.Compare(scalarString(a), b)
}

func (f filterExpr) match(doc map[string]any) bool {
	vals := collect(doc, f.path)
	switch f.op {
	case "==", "!=":
		eq := false
		for _, v := range vals {
			if slices.Contains(f.values, scalarString(v)) {
				eq = true
				break
			}
		}
		return eq == (f.op == "==")
	}
	for _, v := range vals {
		c := compareScalars(v, f.values[0])
		switch f.op {
		case ">":
			if c > 0 {
				return true
			}
		case "<":
			if c < 0 {
				return true
			}
		case ">=":
			if c >= 0 {
				return true
			}
		case "<=":
			if c <= 0 {
				return true
			}
		}
	}
	return false
}

// apply filters, sorts, counts and pages docs (already in creation order).
// It returns the page and whether more items follow.
func (lq listQuery) apply(docs []map[string]any) (page []map[string]any, total int, more bool) {
	var kept []map[string]any
outer:
	for _, d := range docs {
		for _, f := range lq.filters {
			if !f.match(d) {
				continue outer
			}
		}
		kept = append(kept, d)
	}
	if lq.orderBy != nil {
		slices.SortStableFunc(kept, func(a, b map[string]any) int {
			av, bv := first(collect(a, lq.orderBy)), first(collect(b, lq.orderBy))
			c := compareScalars(av, scalarString(bv))
			if lq.desc {
				return -c
			}
			return c
		})
	}
	total = len(kept)
	if lq.offset >= len(kept) {
		kept = nil
	} else {
		kept = kept[lq.offset:]
	}
	if lq.limit > 0 && len(kept) > lq.limit {
		kept, more = kept[:lq.limit], true
	}
	if len(lq.projection) > 0 {
		for i, d := range kept {
			p := map[string]any{"id": d["id"]}
			for _, f := range lq.projection {
				if v, ok := d[f]; ok {
					p[f] = v
				}
			}
			kept[i] = p
		}
	}
	return kept, total, more
}

func first(vs []any) any {
	if len(vs) == 0 {
		return nil
	}
	return vs[0]
}

// writeList answers a Flow Service list: {"items":[...],"_links":{...}}, or
// {"count":n} when count=true.
func writeList(w http.ResponseWriter, r *http.Request, collection string, lq listQuery, docs []map[string]any) {
	page, total, more := lq.apply(docs)
	if lq.count {
		writeJSON(w, http.StatusOK, map[string]any{"count": total})
		return
	}
	if page == nil {
		page = []map[string]any{}
	}
	links := map[string]any{}
	if more {
		q := url.Values{}
		for k, v := range r.URL.Query() {
			if k != "continuationToken" {
				q[k] = v
			}
		}
		q.Set("continuationToken", encodeContinuation(lq.offset+len(page)))
		links["next"] = map[string]any{"href": "/" + collection + "?" + q.Encode()}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": page, "_links": links})
}
