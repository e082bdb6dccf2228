package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

// Entitlements is the product → entitlement mapping of
// STORESYNC_ENTITLEMENTS_FILE: which entitlements (the app's names for what
// a customer may use, such as "pro") each App Store productId grants.
//
// The file is JSON:
//
//	{"products": [
//	  {"productId": "com.example.pro.monthly", "entitlements": ["pro"]},
//	  {"productId": "com.example.pro.test",    "entitlements": ["pro"], "sandbox": true}
//	]}
//
// A purchase in Apple's production environment grants the entitlements of
// its product. A purchase made anywhere else (sandbox, Xcode: App Review,
// TestFlight and developers) grants them only when its entry says
// "sandbox": true, so a test purchase can never unlock production access by
// accident. A product missing from the file grants nothing. The zero value
// (and nil) grants nothing at all.
type Entitlements struct {
	products map[string]productEntitlements
}

type productEntitlements struct {
	names   []string
	sandbox bool
}

// entitlementName is what an entitlement may be called: short, printable
// and safe in URLs and logs.
var entitlementName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)

// Grants returns the sorted entitlements productID grants to a purchase in
// environment (Apple's "Production", "Sandbox", "Xcode"; any case), or nil.
// See Entitlements for the sandbox rule. Safe on a nil receiver.
func (e *Entitlements) Grants(productID, environment string) []string {
	if e == nil {
		return nil
	}
	p, ok := e.products[productID]
	if !ok {
		return nil
	}
	if !strings.EqualFold(environment, "production") && !p.sandbox {
		return nil
	}
	return p.names
}

// Products returns the configured productIds, sorted.
func (e *Entitlements) Products() []string {
	if e == nil {
		return nil
	}
	ids := make([]string, 0, len(e.products))
	for id := range e.products {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// LoadEntitlementsFile reads and validates an entitlements file. Every
// problem is reported, each naming the file, the line and the entry, and the
// fix.
func LoadEntitlementsFile(path string) (*Entitlements, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, Problems{fmt.Sprintf("STORESYNC_ENTITLEMENTS_FILE=%q cannot be read (%v): point it at the JSON product → entitlement mapping (see README, Entitlements)", path, unwrapPathError(err))}
	}
	return ParseEntitlements(path, b)
}

// ParseEntitlements validates the JSON text of an entitlements file named
// name (used in messages only). Unknown fields, duplicate productIds, empty
// or malformed entitlement names and a missing "products" list are errors:
// a typo such as "sandbx" must not silently deny or grant access.
func ParseEntitlements(name string, b []byte) (*Entitlements, error) {
	var problems Problems
	add := func(off int64, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("%s line %d: ", name, lineOf(b, off))+fmt.Sprintf(format, args...))
	}
	e := &Entitlements{products: map[string]productEntitlements{}}
	dec := json.NewDecoder(bytes.NewReader(b))
	syntax := func(err error) (*Entitlements, error) {
		off := dec.InputOffset()
		var se *json.SyntaxError
		if errors.As(err, &se) {
			off = se.Offset
		}
		if errors.Is(err, io.EOF) {
			err = errors.New("unexpected end of file")
		}
		add(off, "not valid JSON (%v): the file is {\"products\": [{\"productId\": \"…\", \"entitlements\": [\"…\"]}, …]}", err)
		return nil, problems
	}
	if err := expectDelim(dec, '{'); err != nil {
		return syntax(err)
	}
	sawProducts := false
	for dec.More() {
		keyOff := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return syntax(err)
		}
		if key, _ := tok.(string); key != "products" {
			add(keyOff, "unknown field %q: the only top-level field is \"products\"", tok)
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return syntax(err)
			}
			continue
		}
		sawProducts = true
		if err := expectDelim(dec, '['); err != nil {
			return syntax(err)
		}
		for i := 1; dec.More(); i++ {
			off := dec.InputOffset()
			var entry struct {
				ProductID    *string  `json:"productId"`
				Entitlements []string `json:"entitlements"`
				Sandbox      bool     `json:"sandbox"`
			}
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return syntax(err)
			}
			// The entry starts after the separator and spaces before it.
			off += int64(len(b[off:])) - int64(len(bytes.TrimLeft(b[off:], ", \t\r\n")))
			strict := json.NewDecoder(bytes.NewReader(raw))
			strict.DisallowUnknownFields()
			if err := strict.Decode(&entry); err != nil {
				add(off, "products entry %d: %v: an entry is {\"productId\": \"…\", \"entitlements\": [\"…\"], \"sandbox\": false}", i, err)
				continue
			}
			switch {
			case entry.ProductID == nil || strings.TrimSpace(*entry.ProductID) == "":
				add(off, "products entry %d has no productId: set it to the App Store Connect product ID", i)
				continue
			case len(entry.Entitlements) == 0:
				add(off, "products entry %d (%s) grants no entitlements: list at least one, or remove the entry", i, *entry.ProductID)
				continue
			}
			id := *entry.ProductID
			if _, dup := e.products[id]; dup {
				add(off, "products entry %d repeats productId %q: merge its entitlements into the first entry", i, id)
				continue
			}
			seen := map[string]bool{}
			var names []string
			ok := true
			for _, n := range entry.Entitlements {
				if !entitlementName.MatchString(n) {
					add(off, "products entry %d (%s): entitlement %q is not a name: use letters, digits and . _ : - (at most 64)", i, id, n)
					ok = false
					continue
				}
				if !seen[n] {
					seen[n] = true
					names = append(names, n)
				}
			}
			if ok {
				sort.Strings(names)
				e.products[id] = productEntitlements{names: names, sandbox: entry.Sandbox}
			}
		}
		if err := expectDelim(dec, ']'); err != nil {
			return syntax(err)
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return syntax(err)
	}
	if !sawProducts {
		add(0, "no \"products\" list: the file is {\"products\": [{\"productId\": \"…\", \"entitlements\": [\"…\"]}, …]}")
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return e, nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("want %q, found %v", string(want), tok)
	}
	return nil
}

// lineOf is the 1-based line of byte offset off in b.
func lineOf(b []byte, off int64) int {
	if off > int64(len(b)) {
		off = int64(len(b))
	}
	if off < 0 {
		off = 0
	}
	return bytes.Count(b[:off], []byte("\n")) + 1
}
