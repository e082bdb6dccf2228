package httpapi

import "net/http"

// events serves the change feed; see registerBackend.
func (b *backend) events(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusNotImplemented, map[string]string{"error": "not yet"})
}
