package ckp

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestL1InitializeHappyPath(t *testing.T) { // L1-04
	h := newTestHandler()
	h.agent.Capabilities = []string{"tools", "memory"}
	p := startPeer(t, &Server{Handler: h})
	r := wantResult(t, p.call(1, "claw.initialize", initParams("0.3.0")))
	if r["protocolVersion"] != "0.3.0" || r["conformanceLevel"] != "level-2" {
		t.Fatalf("initialize result %v", r)
	}
	if info := r["agentInfo"].(map[string]any); info["name"] != "test-agent" || info["version"] != "1.2.3" {
		t.Fatalf("agentInfo %v", info)
	}
	caps := r["capabilities"].(map[string]any)
	if len(caps) != 2 || caps["tools"] == nil || caps["memory"] == nil {
		t.Fatalf("capabilities {} must return every supported group, got %v", caps)
	}
}

func TestInitializeCapabilitiesAreIntersected(t *testing.T) {
	cases := []struct {
		supported []string
		requested map[string]any
		want      []string
		level     string
	}{
		{[]string{"tools", "memory", "swarm"}, map[string]any{"tools": map[string]any{}, "bogus": map[string]any{}}, []string{"tools"}, "level-3"},
		{[]string{"tools"}, map[string]any{"memory": map[string]any{}}, nil, "level-2"},
		{nil, map[string]any{}, nil, "level-1"},
		// A group the agent names but CKP does not define is not advertised.
		{[]string{"tools", "telepathy"}, map[string]any{}, []string{"tools"}, "level-2"},
	}
	for _, tc := range cases {
		h := newTestHandler()
		h.agent.Capabilities = tc.supported
		p := startPeer(t, &Server{Handler: h})
		params := initParams("0.3.0")
		params["capabilities"] = tc.requested
		r := wantResult(t, p.call(1, "claw.initialize", params))
		caps := r["capabilities"].(map[string]any)
		if len(caps) != len(tc.want) {
			t.Errorf("supported %v requested %v: capabilities %v, want %v", tc.supported, tc.requested, caps, tc.want)
		}
		for _, g := range tc.want {
			if v, ok := caps[g].(map[string]any); !ok || len(v) != 0 {
				t.Errorf("capability %q = %v, want {}", g, caps[g])
			}
		}
		if r["conformanceLevel"] != tc.level {
			t.Errorf("supported %v: level %v, want %s", tc.supported, r["conformanceLevel"], tc.level)
		}
	}
}

func TestL1VersionMismatchNamesSupported(t *testing.T) { // L1-05
	p := startPeer(t, &Server{Handler: newTestHandler()})
	e := wantError(t, p.call(1, "claw.initialize", initParams("9.0.0")), CodeVersionNotSupported)
	if s, _ := e.Data["supported"].([]any); len(s) != 1 || s[0] != ProtocolVersion {
		t.Fatalf("data.supported = %v", e.Data["supported"])
	}
	// The refusal leaves the connection in INIT: the client may retry.
	p.initialize()
}

func TestInitializeNegotiatesVersion(t *testing.T) {
	cases := []struct {
		requested string
		want      string // the negotiated version, or "" for an error
		code      int
	}{
		{"0.3.0", "0.3.0", 0},
		{"0.2.0", "0.2.0", 0}, // an older 0.x: speak the client's
		{"0.4.1", "0.3.0", 0}, // a newer 0.x: never above ours
		{"0.3.1", "0.3.0", 0}, // a newer patch
		{"0.3.0-rc.1", "0.3.0-rc.1", 0},
		{"0.3.0+build.7", "0.3.0", 0},
		{"1.0.0", "", CodeVersionNotSupported},
		{"10.3.0", "", CodeVersionNotSupported},
		{"v0.3.0", "", CodeInvalidParams},   // no "v" prefix in semver
		{"0.3", "", CodeInvalidParams},      // missing patch
		{"00.3.0", "", CodeInvalidParams},   // leading zero
		{"0.3.0-", "", CodeInvalidParams},   // empty pre-release
		{"0.3.0-01", "", CodeInvalidParams}, // numeric pre-release with a leading zero
		{"0.3.x", "", CodeInvalidParams},
		{"0.3.0.1", "", CodeInvalidParams},
		{"", "", CodeInvalidParams},
		{"0.99999999999999999999999.0", "", CodeInvalidParams}, // overflows
	}
	for _, tc := range cases {
		got, e := negotiate(tc.requested)
		switch {
		case tc.code != 0 && (e == nil || e.Code != tc.code):
			t.Errorf("negotiate(%q) = %q, %v; want code %d", tc.requested, got, e, tc.code)
		case tc.code == 0 && (e != nil || got != tc.want):
			t.Errorf("negotiate(%q) = %q, %v; want %q", tc.requested, got, e, tc.want)
		}
	}
	// And on the wire.
	p := startPeer(t, &Server{Handler: newTestHandler()})
	if r := wantResult(t, p.call(1, "claw.initialize", initParams("0.2.0"))); r["protocolVersion"] != "0.2.0" {
		t.Fatalf("negotiated %v for 0.2.0", r["protocolVersion"])
	}
}

func TestL1Status(t *testing.T) { // L1-06
	var ticks atomic.Int64
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return t0.Add(time.Duration(ticks.Add(1)-1) * 250 * time.Millisecond) }
	p := startPeer(t, &Server{Handler: newTestHandler(), Now: clock})
	p.initialize()
	r := wantResult(t, p.call(2, "claw.status", map[string]any{}))
	if r["state"] != "READY" || r["uptime_ms"] != float64(250) {
		t.Fatalf("status %v", r)
	}
	// Absent params are the same as {}.
	wantResult(t, p.call(3, "claw.status", nil))
}

func TestL1ShutdownDrains(t *testing.T) { // L1-07
	h := newTestHandler()
	p := startPeer(t, &Server{Handler: h})
	p.initialize()
	r := wantResult(t, p.call(2, "claw.shutdown", map[string]any{"reason": "test"}))
	if r["drained"] != true {
		t.Fatalf("shutdown %v", r)
	}
	if err := p.wait(); err != nil {
		t.Fatalf("Serve after shutdown: %v", err)
	}
	if n := h.closeCount(); n != 1 {
		t.Fatalf("Handler.Close called %d times", n)
	}
}

func TestL1UnknownMethod(t *testing.T) { // L1-08
	p := startPeer(t, &Server{Handler: newTestHandler()})
	wantError(t, p.call(1, "claw.nonexistent", map[string]any{}), CodeMethodNotFound)
	p.initialize()
	wantError(t, p.call(2, "claw.nonexistent", map[string]any{}), CodeMethodNotFound)
	// Level-3 methods are CKP's, but not served here.
	wantError(t, p.call(3, "claw.memory.query", map[string]any{}), CodeMethodNotFound)
	wantError(t, p.call(4, "claw.task.create", map[string]any{}), CodeMethodNotFound)
}

func TestL1InitializeWithEmptyParams(t *testing.T) { // L1-09
	p := startPeer(t, &Server{Handler: newTestHandler()})
	e := wantError(t, p.call(1, "claw.initialize", map[string]any{}), CodeInvalidParams)
	for _, f := range []string{"protocolVersion", "clientInfo", "manifest", "capabilities"} {
		if !strings.Contains(e.Message, f) {
			t.Errorf("message %q does not name missing %s", e.Message, f)
		}
	}
	params := initParams("0.3.0")
	params["clientInfo"] = map[string]any{"name": "x"}
	e = wantError(t, p.call(2, "claw.initialize", params), CodeInvalidParams)
	if !strings.Contains(e.Message, "clientInfo.version") {
		t.Errorf("message %q does not name clientInfo.version", e.Message)
	}
	params = initParams("0.3.0")
	params["manifest"] = 42
	e = wantError(t, p.call(3, "claw.initialize", params), CodeInvalidParams)
	if !strings.Contains(e.Message, "manifest") {
		t.Errorf("message %q does not name manifest", e.Message)
	}
	p.initialize()
}

func TestL1MissingMethod(t *testing.T) { // L1-11
	p := startPeer(t, &Server{Handler: newTestHandler()})
	p.send(`{"jsonrpc":"2.0","id":"no-method"}`)
	w := p.next()
	wantError(t, w, CodeInvalidRequest)
	if string(w.ID) != `"no-method"` {
		t.Fatalf("reply id %s, want the request's", w.ID)
	}
}

func TestL1MalformedJSON(t *testing.T) { // L1-12
	p := startPeer(t, &Server{Handler: newTestHandler()})
	p.send(`{"jsonrpc":"2.0","id":1,"method":`)
	w := p.next()
	wantError(t, w, CodeParseError)
	wantNullID(t, w)
}

var heartbeatTimestamp = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

func TestL1HeartbeatShape(t *testing.T) { // L1-13
	var ticks atomic.Int64
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return t0.Add(time.Duration(ticks.Add(1)-1) * 1500 * time.Millisecond) }
	h := newTestHandler()
	h.agent.Heartbeat = 10 * time.Millisecond
	p := startPeer(t, &Server{Handler: h, Now: clock})
	p.initialize()
	w := p.next()
	if w.Method != "claw.heartbeat" {
		t.Fatalf("want a heartbeat, got %s", w.raw)
	}
	if len(w.members) != 3 || string(w.members["jsonrpc"]) != `"2.0"` {
		t.Fatalf("heartbeat members: %s", w.raw)
	}
	var hb map[string]any
	if err := json.Unmarshal(w.Params, &hb); err != nil {
		t.Fatal(err)
	}
	if len(hb) != 3 || hb["state"] != "READY" || hb["uptime_ms"] != float64(1500) {
		t.Fatalf("heartbeat params %s", w.Params)
	}
	ts, _ := hb["timestamp"].(string)
	if !heartbeatTimestamp.MatchString(ts) || ts != "2026-03-01T12:00:01.500Z" {
		t.Fatalf("heartbeat timestamp %q", ts)
	}
}

func TestNoHeartbeatBeforeInitializeOrAfterShutdown(t *testing.T) {
	h := newTestHandler()
	h.agent.Heartbeat = time.Millisecond // clamped to the floor; still frequent
	p := startPeer(t, &Server{Handler: h})
	// Before initialize: a request is answered and nothing precedes it.
	wantError(t, p.call(1, "claw.status", nil), CodeInvalidRequest)
	p.send(requestLine(t, "init", "claw.initialize", initParams("0.3.0")))
	if w := p.next(); string(w.ID) != `"init"` {
		t.Fatalf("first line after initialize is %s, want its reply", w.raw)
	}
	if w := p.next(); w.Method != "claw.heartbeat" {
		t.Fatalf("want a heartbeat, got %s", w.raw)
	}
	p.send(requestLine(t, "bye", "claw.shutdown", nil))
	seen := false
	for _, w := range p.rest() {
		if string(w.ID) == `"bye"` {
			seen = true
		} else if seen && w.Method == "claw.heartbeat" {
			t.Fatalf("heartbeat after the shutdown reply: %s", w.raw)
		}
	}
	if !seen {
		t.Fatal("no shutdown reply")
	}
}

func TestRequestsBeforeInitializeAreRefused(t *testing.T) {
	h := newTestHandler()
	h.initErr = &Error{Code: CodeManifestInvalid, Message: "manifest invalid: identity missing"}
	p := startPeer(t, &Server{Handler: h})
	for i, m := range []string{"claw.status", "claw.shutdown", "claw.tool.call", "claw.tool.approve", "claw.tool.deny", "claw.memory.store"} {
		e := wantError(t, p.call(i, m, map[string]any{}), CodeInvalidRequest)
		if !strings.Contains(e.Message, "not initialized") {
			t.Errorf("%s: message %q", m, e.Message)
		}
	}
	// A failed initialize is answered with the handler's error and leaves INIT.
	wantError(t, p.call("a", "claw.initialize", initParams("0.3.0")), CodeManifestInvalid)
	wantError(t, p.call("b", "claw.status", nil), CodeInvalidRequest)
	p.initialize()
	e := wantError(t, p.call("c", "claw.initialize", initParams("0.3.0")), CodeInvalidRequest)
	if !strings.Contains(e.Message, "already initialized") {
		t.Errorf("second initialize: %q", e.Message)
	}
}

func TestPipelinedRequestsWaitForInitialize(t *testing.T) {
	h := newTestHandler()
	h.release = make(chan struct{})
	p := startPeer(t, &Server{Handler: h})
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		// The second write blocks until Initialize returned: the server
		// does not read past claw.initialize until then.
		io.WriteString(p.in, requestLine(t, 1, "claw.initialize", initParams("0.3.0"))+"\n"+requestLine(t, 2, "claw.status", nil)+"\n")
	}()
	close(h.release)
	wantResult(t, p.nextReply())
	if r := wantResult(t, p.nextReply()); r["state"] != "READY" {
		t.Fatalf("pipelined status %v", r)
	}
	<-sent
}

func TestBatches(t *testing.T) {
	p := startPeer(t, &Server{Handler: newTestHandler()})
	p.initialize()

	{ // mixed
		p.send(`[` +
			`{"jsonrpc":"2.0","id":1,"method":"claw.status"},` +
			`{"jsonrpc":"2.0","method":"claw.initialized"},` + // a notification: no element
			`{"jsonrpc":"2.0","id":2,"method":"claw.nope"},` +
			`{"jsonrpc":"2.0","id":3,"method":"claw.tool.call","params":{"name":"echo","arguments":{"a":1}}},` +
			`{"foo":"bar"},` + // invalid: answered with id null
			`{"jsonrpc":"2.0","method":"claw.nope"}` + // a notification: silent even though unknown
			`]`)
		w := p.next()
		var elems []wire
		if err := json.Unmarshal(w.raw, &elems); err != nil {
			t.Fatalf("batch reply %s: %v", w.raw, err)
		}
		if len(elems) != 4 {
			t.Fatalf("batch reply has %d elements, want 4: %s", len(elems), w.raw)
		}
		for i, want := range []string{"1", "2", "3", "null"} {
			if string(elems[i].ID) != want {
				t.Fatalf("element %d has id %s, want %s (element order): %s", i, elems[i].ID, want, w.raw)
			}
		}
		if elems[0].Result == nil || elems[1].Error.Code != CodeMethodNotFound || elems[2].Result == nil || elems[3].Error.Code != CodeInvalidRequest {
			t.Fatalf("batch reply %s", w.raw)
		}
	}
	{ // empty
		p.send(`[]`)
		w := p.next()
		wantError(t, w, CodeInvalidRequest)
		wantNullID(t, w)
	}
	{ // only notifications
		p.send(`[{"jsonrpc":"2.0","method":"claw.initialized"},{"jsonrpc":"2.0","method":"claw.nope"}]`)
		// Nothing is written for the batch: the next line answers this call.
		wantResult(t, p.call("after", "claw.status", nil))
	}
	{ // parse-invalid
		p.send(`[{"jsonrpc":"2.0","id":1,"method":"claw.status"},{"jsonrpc":"2.0","method"]`)
		w := p.next()
		wantError(t, w, CodeParseError)
		wantNullID(t, w)
	}
	{ // invalid elements
		p.send(`[1,"x",null]`)
		w := p.next()
		var elems []wire
		if err := json.Unmarshal(w.raw, &elems); err != nil || len(elems) != 3 {
			t.Fatalf("batch reply %s", w.raw)
		}
		for _, e := range elems {
			if e.Error == nil || e.Error.Code != CodeInvalidRequest || string(e.ID) != "null" {
				t.Fatalf("batch reply %s", w.raw)
			}
		}
	}
	{ // longer than MaxInFlight
		p := startPeer(t, &Server{Handler: newTestHandler(), MaxInFlight: 2})
		p.send(`[{"jsonrpc":"2.0","method":"claw.initialized"},{"jsonrpc":"2.0","method":"claw.initialized"},{"jsonrpc":"2.0","method":"claw.initialized"}]`)
		w := p.next()
		wantError(t, w, CodeInvalidRequest)
		wantNullID(t, w)
	}
}

func TestNotificationsNeverGetErrorReplies(t *testing.T) {
	p := startPeer(t, &Server{Handler: newTestHandler()})
	p.send(
		`{"jsonrpc":"2.0","method":"claw.status"}`,                          // lifecycle: before initialize
		`{"jsonrpc":"2.0","method":"claw.tool.call","params":{"name":"x"}}`, // lifecycle
		`{"jsonrpc":"2.0","method":"claw.nonexistent"}`,                     // unknown method
		`{"jsonrpc":"2.0","method":"claw.initialize","params":[]}`,          // params not an object
		`{"jsonrpc":"2.0","method":"claw.initialize","params":{}}`,          // missing params
		`{"jsonrpc":"2.0","method":"claw.initialized"}`,
	)
	p.initialize()
	p.send(
		`{"jsonrpc":"2.0","method":"claw.tool.call","params":[]}`,
		`{"jsonrpc":"2.0","method":"claw.tool.call","params":{"name":"echo","bogus":1}}`,
		`{"jsonrpc":"2.0","method":"claw.swarm.discover"}`,
		`{"jsonrpc":"2.0","method":"claw.tool.approve","params":{"request_id":"none"}}`, // the handler refuses
		`{"jsonrpc":"2.0","method":"claw.tool.call","params":{"name":"leak"}}`,          // the handler fails
	)
	// The next line answers this request: none of the above was answered.
	wantResult(t, p.call("last", "claw.status", nil))
}

func TestHugeFrameIsRefusedAndConnectionSurvives(t *testing.T) {
	p := startPeer(t, &Server{Handler: newTestHandler()})
	huge := `{"jsonrpc":"2.0","id":1,"method":"claw.status","params":{"pad":"` + strings.Repeat("A", 2<<20) + `"}}`
	p.send(huge)
	w := p.next()
	e := wantError(t, w, CodeInvalidRequest)
	wantNullID(t, w)
	if !strings.Contains(e.Message, "1048576") || e.Data["limit"] != float64(1<<20) {
		t.Fatalf("refusal does not name the limit: %s", w.raw)
	}
	p.initialize()
	wantResult(t, p.call(2, "claw.status", nil))
}

func TestLineReaderLimitIsExact(t *testing.T) {
	const limit = 16
	in := strings.Repeat("a", limit) + "\r\n" + // exactly at the limit, with CRLF: accepted
		strings.Repeat("b", limit+1) + "\n" + // one over: refused
		strings.Repeat("c", 200_000) + "\n" + // far over, across reader buffers: refused
		"\n" + // blank
		"tail" // a last line without newline
	lr := newLineReader(strings.NewReader(in), limit)
	type got struct {
		line    string
		tooLong bool
	}
	var all []got
	for {
		line, tooLong, err := lr.next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			break
		}
		all = append(all, got{string(line), tooLong})
	}
	want := []got{{strings.Repeat("a", limit), false}, {"", true}, {"", true}, {"", false}, {"tail", false}}
	if len(all) != len(want) {
		t.Fatalf("lines %v, want %v", all, want)
	}
	for i := range want {
		if all[i] != want[i] {
			t.Fatalf("line %d = %v, want %v", i, all[i], want[i])
		}
	}
}

func TestInvalidUTF8IsParseError(t *testing.T) {
	p := startPeer(t, &Server{Handler: newTestHandler()})
	// encoding/json would read "\xff" as U+FFFD: the handler would act on
	// a method name the peer never sent.
	p.send("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"claw.status\xff\"}")
	w := p.next()
	wantError(t, w, CodeParseError)
	wantNullID(t, w)
	wantError(t, p.call(2, "claw.status", nil), CodeInvalidRequest) // still serving
}

func TestDeepNestingIsRefused(t *testing.T) {
	p := startPeer(t, &Server{Handler: newTestHandler()})
	deep := strings.Repeat("[", 10_000) + strings.Repeat("]", 10_000)
	p.send(`{"jsonrpc":"2.0","id":1,"method":"claw.status","params":{"a":` + deep + `}}`)
	w := p.next()
	wantError(t, w, CodeInvalidRequest)
	wantNullID(t, w)
	p.send(deep) // a batch of batches
	wantError(t, p.next(), CodeInvalidRequest)
	// 64 levels are fine: this one fails later, for its params.
	ok64 := strings.Repeat("[", 62) + strings.Repeat("]", 62)
	p.send(`{"jsonrpc":"2.0","id":2,"method":"claw.initialize","params":{"capabilities":` + ok64 + `}}`)
	wantError(t, p.next(), CodeInvalidParams)
}

func TestUnknownTopLevelMemberIsRefused(t *testing.T) {
	p := startPeer(t, &Server{Handler: newTestHandler()})
	cases := []struct {
		line string
		id   string
	}{
		{`{"jsonrpc":"2.0","id":7,"method":"claw.status","extra":true}`, "7"},
		// A second "method" would let two parsers disagree on what runs.
		{`{"jsonrpc":"2.0","id":8,"method":"claw.status","method":"claw.shutdown"}`, "8"},
		{`{"jsonrpc":"2.0","id":9,"method":"claw.status","result":{}}`, "9"},
		{`{"jsonrpc":"1.0","id":10,"method":"claw.status"}`, "10"},
		{`{"id":11,"method":"claw.status"}`, "11"},
		{`{"jsonrpc":"2.0","id":12,"method":42}`, "12"},
		{`{"jsonrpc":"2.0","id":{"a":1},"method":"claw.status"}`, "null"}, // the id itself is invalid
		{`{"jsonrpc":"2.0","id":[1],"method":"claw.status"}`, "null"},
		{`{"jsonrpc":"2.0","id":true,"method":"claw.status"}`, "null"},
		{`"claw.status"`, "null"},
		{`42`, "null"},
		{`null`, "null"},
	}
	for _, tc := range cases {
		p.send(tc.line)
		w := p.next()
		wantError(t, w, CodeInvalidRequest)
		if string(w.ID) != tc.id {
			t.Errorf("%s: reply id %s, want %s", tc.line, w.ID, tc.id)
		}
	}
}

func TestIdsAreEchoedExactly(t *testing.T) {
	p := startPeer(t, &Server{Handler: newTestHandler()})
	for _, id := range []string{`"a<b>&c"`, `-1.5e3`, `0`, `"\u00e9"`, `null`, `12345678901234567890123`} {
		p.send(`{"jsonrpc":"2.0","id":` + id + `,"method":"claw.status"}`)
		w := p.next()
		var want, got any
		json.Unmarshal([]byte(id), &want)
		json.Unmarshal(w.ID, &got)
		if want != got {
			t.Errorf("id %s echoed as %s", id, w.ID)
		}
	}
}

func TestUnknownParamsFieldIsRefused(t *testing.T) {
	p := startPeer(t, &Server{Handler: newTestHandler()})
	p.initialize()
	cases := []struct {
		params any
		names  string // what the message must name
	}{
		{map[string]any{"name": "echo", "extra": 1}, `"extra"`},
		{map[string]any{"name": "echo", "context": map[string]any{"request_id": "r", "tenant": "other"}}, `"context.tenant"`},
		{map[string]any{"name": 42}, "name"},
		{map[string]any{"name": "echo", "context": map[string]any{"request_id": nil}}, "context.request_id"}, // null is not ""
		{map[string]any{"name": "echo", "arguments": []any{1}}, "arguments"},
		{map[string]any{"name": "echo", "context": "r-1"}, "context"},
		{map[string]any{}, "name"},
		{map[string]any{"name": ""}, "name"},
	}
	for i, tc := range cases {
		e := wantError(t, p.call(i, "claw.tool.call", tc.params), CodeInvalidParams)
		if !strings.Contains(e.Message, tc.names) {
			t.Errorf("params %v: message %q does not name %s", tc.params, e.Message, tc.names)
		}
	}
	// A duplicated field is refused, not resolved silently.
	p.send(`{"jsonrpc":"2.0","id":"dup","method":"claw.tool.call","params":{"name":"echo","name":"leak"}}`)
	wantError(t, p.next(), CodeInvalidParams)
	// MCP's _meta is allowed in every object this package defines.
	r := wantResult(t, p.call("meta", "claw.tool.call", map[string]any{
		"name": "echo", "_meta": map[string]any{"progressToken": 1}, "arguments": map[string]any{"_meta": 1},
		"context": map[string]any{"request_id": "r", "_meta": map[string]any{}},
	}))
	if text := r["content"].([]any)[0].(map[string]any)["text"]; text != `{"_meta":1}` {
		t.Fatalf("arguments reached the handler as %v; _meta inside arguments is the tool's", text)
	}
	for i, bad := range []map[string]any{{"timeout_ms": -1}, {"timeout_ms": 300_001}, {"timeout_ms": 1.5}, {"timeout_ms": "10"}, {"reason": 3}} {
		wantError(t, p.call(100+i, "claw.shutdown", bad), CodeInvalidParams)
	}
	wantError(t, p.call("status", "claw.status", map[string]any{"verbose": true}), CodeInvalidParams)
	wantError(t, p.call("approve", "claw.tool.approve", map[string]any{}), CodeInvalidParams)
}

func TestApproveOnSameStreamWhileCallBlocks(t *testing.T) {
	h := newTestHandler()
	p := startPeer(t, &Server{Handler: h})
	p.initialize()
	p.send(requestLine(t, "call", "claw.tool.call", toolCall("wait", "r-1", nil)))
	h.waitStarted(t)
	p.send(requestLine(t, "ok", "claw.tool.approve", map[string]any{"request_id": "r-1", "reason": "fine"}))
	got := p.replies(2)
	if ack := wantResult(t, got[`"ok"`]); ack["acknowledged"] != true {
		t.Fatalf("approve reply %v", ack)
	}
	if c := wantResult(t, got[`"call"`])["content"].([]any); c[0].(map[string]any)["text"] != "approved" {
		t.Fatalf("call result %s", got[`"call"`].raw)
	}
}

func TestShutdownWaitsForCallThatFinishes(t *testing.T) {
	h := newTestHandler()
	p := startPeer(t, &Server{Handler: h})
	p.initialize()
	p.send(requestLine(t, "call", "claw.tool.call", toolCall("wait", "r-1", nil)))
	h.waitStarted(t)
	p.send(requestLine(t, "bye", "claw.shutdown", map[string]any{"timeout_ms": 300_000}))
	// STOPPING at once: new tool calls and status are refused...
	wantError(t, p.call("late", "claw.tool.call", toolCall("echo", "r-2", nil)), CodeInvalidRequest)
	wantError(t, p.call("st", "claw.status", nil), CodeInvalidRequest)
	wantError(t, p.call("again", "claw.shutdown", nil), CodeInvalidRequest)
	// ...but a decision still arrives, so the drain can finish.
	p.send(requestLine(t, "no", "claw.tool.deny", map[string]any{"request_id": "r-1"}))
	got := map[string]wire{}
	for range 3 {
		w := p.nextReply()
		if string(w.ID) == `"bye"` && got[`"call"`].raw == nil {
			t.Fatalf("shutdown replied before the call it waited for: %s", w.raw)
		}
		got[string(w.ID)] = w
	}
	wantResult(t, got[`"no"`])
	wantError(t, got[`"call"`], CodeApprovalDenied)
	if wantResult(t, got[`"bye"`])["drained"] != true {
		t.Fatalf("shutdown reply %s, want drained true", got[`"bye"`].raw)
	}
	if err := p.wait(); err != nil {
		t.Fatal(err)
	}
}

func TestShutdownCancelsBlockedCallAtDeadline(t *testing.T) {
	h := newTestHandler()
	p := startPeer(t, &Server{Handler: h})
	p.initialize()
	p.send(requestLine(t, "call", "claw.tool.call", toolCall("wait", "r-1", nil)))
	h.waitStarted(t)
	p.send(requestLine(t, "bye", "claw.shutdown", map[string]any{"timeout_ms": 1}))
	// The cancelled call's reply is written before the shutdown's.
	w := p.nextReply()
	if string(w.ID) != `"call"` {
		t.Fatalf("want the cancelled call's reply first, got %s", w.raw)
	}
	if e := wantError(t, w, CodeInternal); !strings.Contains(e.Message, "cancelled") {
		t.Fatalf("cancelled call: %s", w.raw)
	}
	w = p.nextReply()
	if string(w.ID) != `"bye"` || wantResult(t, w)["drained"] != false {
		t.Fatalf("shutdown reply %s, want drained false", w.raw)
	}
	if err := p.wait(); err != nil {
		t.Fatal(err)
	}
	if h.closeCount() != 1 {
		t.Fatal("Handler.Close not called once")
	}
}

func TestEOFCancelsCallsAndWritesTheirReplies(t *testing.T) {
	h := newTestHandler()
	p := startPeer(t, &Server{Handler: h})
	p.initialize()
	p.send(requestLine(t, "call", "claw.tool.call", toolCall("wait", "r-1", nil)))
	h.waitStarted(t)
	p.in.Close()
	rest := p.rest()
	if len(rest) != 1 || string(rest[0].ID) != `"call"` {
		t.Fatalf("after EOF the server wrote %d lines, want the call's reply", len(rest))
	}
	wantError(t, rest[0], CodeInternal)
	if err := p.wait(); err != nil {
		t.Fatalf("Serve at EOF: %v", err)
	}
	if h.closeCount() != 1 {
		t.Fatal("Handler.Close not called once")
	}
}

func TestEOFLetsShutdownDrain(t *testing.T) {
	h := newTestHandler()
	p := startPeer(t, &Server{Handler: h})
	p.initialize()
	p.send(requestLine(t, "call", "claw.tool.call", toolCall("wait", "r-1", nil)))
	h.waitStarted(t)
	p.send(requestLine(t, "bye", "claw.shutdown", map[string]any{"timeout_ms": 300_000}))
	wantError(t, p.call("late", "claw.tool.call", toolCall("echo", "r-2", nil)), CodeInvalidRequest) // STOPPING
	p.in.Close()
	// Input is gone but the drain keeps its grace: the call can still finish.
	h.decide(DecisionParams{RequestID: "r-1"}, true)
	rest := p.rest()
	if len(rest) != 2 || wantResult(t, rest[1])["drained"] != true {
		t.Fatalf("after EOF: %d lines", len(rest))
	}
}

func TestContextCancelStopsServe(t *testing.T) {
	h := newTestHandler()
	p := startPeer(t, &Server{Handler: h})
	p.initialize()
	p.send(requestLine(t, "call", "claw.tool.call", toolCall("wait", "r-1", nil)))
	h.waitStarted(t)
	p.cancel()
	if err := p.wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve = %v, want context.Canceled", err)
	}
	if rest := p.rest(); len(rest) != 1 || string(rest[0].ID) != `"call"` {
		t.Fatalf("the cancelled call's reply was not written: %d lines", len(rest))
	}
	if h.closeCount() != 1 {
		t.Fatal("Handler.Close not called once")
	}
}

func TestMaxInFlightBoundsCallsButNotApprovals(t *testing.T) {
	h := newTestHandler()
	p := startPeer(t, &Server{Handler: h, MaxInFlight: 1})
	p.initialize()
	p.send(requestLine(t, "call", "claw.tool.call", toolCall("wait", "r-1", nil)))
	h.waitStarted(t)
	e := wantError(t, p.call("over", "claw.tool.call", toolCall("echo", "r-2", nil)), CodeInternal)
	if e.Data["limit"] != float64(1) {
		t.Fatalf("over the limit: %v", e)
	}
	p.send(requestLine(t, "ok", "claw.tool.approve", map[string]any{"request_id": "r-1"}))
	for _, w := range p.replies(2) {
		wantResult(t, w)
	}
	wantResult(t, p.call("again", "claw.tool.call", toolCall("echo", "r-3", nil))) // the slot is free again
}

func TestHandlerErrorsDoNotLeakToPeerOrLog(t *testing.T) {
	p := startPeer(t, &Server{Handler: newTestHandler()})
	p.initialize()
	for _, tool := range []string{"leak", "panic"} {
		w := p.call(tool, "claw.tool.call", toolCall(tool, "r-"+tool, nil))
		wantError(t, w, CodeInternal)
		if strings.Contains(string(w.raw), secret) || strings.Contains(string(w.raw), "/var/lib") {
			t.Fatalf("%s: reply leaks the internal error: %s", tool, w.raw)
		}
	}
	wantResult(t, p.call("alive", "claw.status", nil))
	if logs := p.logs.String(); strings.Contains(logs, secret) || !strings.Contains(logs, "panicked") {
		t.Fatalf("logs: %q", logs)
	}
}

func TestWriteFailureEndsServe(t *testing.T) {
	h := newTestHandler()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	outR.Close() // the peer stopped reading
	done := make(chan error, 1)
	go func() { done <- (&Server{Handler: h}).Serve(context.Background(), inR, outW) }()
	defer inW.Close()
	io.WriteString(inW, `{"jsonrpc":"2.0","id":1,"method":"claw.status"}`+"\n")
	select {
	case err := <-done:
		if !errors.Is(err, io.ErrClosedPipe) {
			t.Fatalf("Serve = %v, want the write error", err)
		}
	case <-time.After(hangGuard):
		t.Fatal("Serve did not return")
	}
	if h.closeCount() != 1 {
		t.Fatal("Handler.Close not called once")
	}
}
