package config

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestMetricsTable(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want Metrics
	}{
		{"", Metrics{}}, // off: nothing said
		{"[metrics]\nworkers = true\n", Metrics{}}, // off: no listen
		{"[metrics]\nlisten = \"127.0.0.1:9464\"\n", Metrics{Listen: "127.0.0.1:9464", SocketMode: 0o600, WorkerTimeout: Duration(2 * time.Second)}},
		{"[metrics]\nlisten = \":9464\"\nworkers = true\nworker_timeout = \"500ms\"\n",
			Metrics{Listen: ":9464", SocketMode: 0o600, Workers: true, WorkerTimeout: Duration(500 * time.Millisecond)}},
		{"[metrics]\nlisten = \"[::1]:9464\"\n", Metrics{Listen: "[::1]:9464", SocketMode: 0o600, WorkerTimeout: Duration(2 * time.Second)}},
		{"[metrics]\nlisten = \"run/metrics.sock\"\nsocket_mode = \"0660\"\n",
			Metrics{Listen: "/etc/vigil/run/metrics.sock", SocketMode: 0o660, WorkerTimeout: Duration(2 * time.Second)}},
		{"[metrics]\nlisten = \"/run/vigil/metrics.sock\"\n", Metrics{Listen: "/run/vigil/metrics.sock", SocketMode: 0o600, WorkerTimeout: Duration(2 * time.Second)}},
	} {
		c := mustParse(t, tc.doc, env(EnvProcessorCount, "1"))
		if !reflect.DeepEqual(c.Metrics, tc.want) {
			t.Errorf("%q: %+v, want %+v", tc.doc, c.Metrics, tc.want)
		}
		// The effective configuration says the same.
		var buf bytes.Buffer
		if err := c.Encode(&buf); err != nil {
			t.Fatal(err)
		}
		back, err := Parse(buf.Bytes(), "/elsewhere", nil)
		if err != nil || !reflect.DeepEqual(back.Metrics, c.Metrics) {
			t.Errorf("%q: round trip %+v, %v\n%s", tc.doc, back.Metrics, err, buf.String())
		}
	}
}

func TestMetricsErrorsNameKeyAndLine(t *testing.T) {
	for _, tc := range []struct {
		doc, want string
	}{
		{"[metrics]\nlisten = \"9464\"\n", `line 2: metrics.listen: "9464" is neither a TCP address`},
		{"[metrics]\nlisten = \"localhost:http\"\n", `line 2: metrics.listen: "localhost:http": port "http" is not a number from 1 to 65535`},
		{"[metrics]\nlisten = \"127.0.0.1:0\"\n", `line 2: metrics.listen: "127.0.0.1:0": port "0" is not a number`},
		{"[metrics]\nlisten = \"/" + strings.Repeat("x", 120) + "\"\n", "line 2: metrics.listen: socket path"},
		{"[metrics]\nlisten = \"./m.sock\"\nsocket_mode = \"rw\"\n", `line 3: metrics.socket_mode: "rw" is not a file mode`},
		{"[metrics]\nlisten = \"./m.sock\"\nsocket_mode = \"0060\"\n", "line 3: metrics.socket_mode: 0060 leaves the socket's owner"},
		{"[metrics]\nlisten = \":9464\"\nsocket_mode = \"0660\"\n", "line 3: metrics.socket_mode: applies to a Unix socket only"},
		{"[metrics]\nworker_timeout = \"0s\"\n", "line 2: metrics.worker_timeout: must be longer than zero"},
		{"[metrics]\nworkers = \"yes\"\n", "line 2: metrics.workers: wrong type"},
		{"[metrics]\nlisen = \":9464\"\n", "line 2: metrics.lisen: unknown key lisen: did you mean listen?"},
	} {
		_, err := Parse([]byte(tc.doc), "/etc/vigil", env(EnvProcessorCount, "1"))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.doc, err, tc.want)
		}
		var ce *Error
		if !errors.As(err, &ce) {
			t.Errorf("%q: not an *Error: %v", tc.doc, err)
		}
	}
}
