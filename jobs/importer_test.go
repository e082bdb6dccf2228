package jobs

import (
	"errors"
	"strings"
	"testing"
)

type readRow struct {
	line   int64
	row    string // otid|token|customer, or "!"+reason when rejected
	fields int
}

func readAll(t *testing.T, text string) ([]readRow, error) {
	t.Helper()
	var out []readRow
	err := readImportRows(strings.NewReader(text), func(r rawRow) error {
		v, reason := validateImportRow(r)
		s := v.OriginalTransactionID + "|" + v.AppAccountToken + "|" + v.CustomerID
		if reason != "" {
			s = "!" + reason
		}
		out = append(out, readRow{r.line, s, len(r.fields)})
		return nil
	})
	return out, err
}

func TestReadImportRowsFormats(t *testing.T) {
	t.Parallel()
	const token = "6F1C2B3A-0000-4000-8000-00000000ABCD"
	const lower = "6f1c2b3a-0000-4000-8000-00000000abcd"
	for _, tc := range []struct {
		name string
		text string
		want []readRow
	}{
		{"csv with header in another order", "\ufeffcustomer_id, Original_Transaction_Id\nc-1,1000\n\n\"c,2\",2000\n",
			[]readRow{{2, "1000||c-1", 2}, {4, "2000||c,2", 2}}},
		{"csv without header", "1000," + token + ",c-1\n2000\n",
			[]readRow{{1, "1000|" + lower + "|c-1", 3}, {2, "2000||", 1}}},
		{"csv multi-line quoted field keeps line numbers", "original_transaction_id,customer_id\n1,\"a\nb\"\n2,c\n",
			[]readRow{{2, "1||a\nb", 2}, {4, "2||c", 2}}},
		{"json lines, both key styles, numbers", "\n{\"original_transaction_id\":\"1000\",\"app_account_token\":\"" + token + "\"}\n" +
			"{\"originalTransactionId\":2000,\"customerId\":42}\n\n{\"original_transaction_id\":true}\nnot json\n",
			[]readRow{{2, "1000|" + lower + "|", 1}, {3, "2000||42", 1}, {5, "!original_transaction_id is true, not a string", 1}, {6, "!not a JSON object: ", 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := readAll(t, tc.text)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
			for i := range got {
				w := tc.want[i]
				if strings.HasPrefix(w.row, "!") && strings.HasPrefix(got[i].row, w.row) {
					w.row = got[i].row // a reason quoting a library's message: its prefix suffices
				}
				if got[i] != w {
					t.Errorf("row %d: got %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestValidateImportRowReasons(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		row    rawRow
		reason string
	}{
		{rawRow{otid: " "}, "original_transaction_id is empty"},
		{rawRow{otid: "12a"}, `original_transaction_id "12a" is not a decimal number`},
		{rawRow{otid: "-12"}, "not a decimal number"},
		{rawRow{otid: strings.Repeat("9", 21)}, "has 21 digits, more than 20"},
		{rawRow{otid: strings.Repeat("9", 20)}, ""},
		{rawRow{otid: "1", token: "6f1c2b3a-0000-4000-8000-00000000abc"}, "app_account_token \"6f1c2b3a-0000-4000-8000-00000000abc\" is not a UUID"},
		{rawRow{otid: "1", customer: strings.Repeat("é", 255)}, ""},
		{rawRow{otid: "1", customer: strings.Repeat("é", 256)}, "customer_id has 256 characters, more than 255"},
		{rawRow{otid: "1", customer: "a\x00b"}, "customer_id is not valid UTF-8 text"},
		{rawRow{otid: "1", customer: "\xff"}, "customer_id is not valid UTF-8 text"},
	} {
		_, reason := validateImportRow(tc.row)
		if (tc.reason == "") != (reason == "") || !strings.Contains(reason, tc.reason) {
			t.Errorf("%+v: reason %q, want %q", tc.row, reason, tc.reason)
		}
	}
}

func TestReadImportRowsRefusesFilesThatAreNotImports(t *testing.T) {
	t.Parallel()
	if _, err := readAll(t, "id,name\n1,x\n"); err == nil || !strings.Contains(err.Error(), "no original_transaction_id column") {
		t.Fatalf("CSV without the id column: %v", err)
	}
	_, err := readAll(t, "{"+strings.Repeat(" ", maxImportLine+1)+"}\n")
	if err == nil || !strings.Contains(err.Error(), "not an import file") {
		t.Fatalf("huge line: %v", err)
	}
	if rows, err := readAll(t, " \n\t"); err != nil || len(rows) != 0 {
		t.Fatalf("blank file: %v %v", rows, err)
	}
	stop := errors.New("stop")
	n := 0
	err = readImportRows(strings.NewReader("1\n2\n3\n"), func(rawRow) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("callback error not returned at once: %v after %d rows", err, n)
	}
}
