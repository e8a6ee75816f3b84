package ability

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestZeroSetGrantsNothing(t *testing.T) {
	var s Set
	if m := s.Mode("gmail", "send"); m != Disabled {
		t.Fatalf("zero set grants %v", m)
	}
}

func TestModeIsExactlyWhatWasGranted(t *testing.T) {
	s, err := NewSet([]Ability{{Service: "gmail", Actions: map[string]Mode{"read": Automatic, "send": Approval}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		svc, act string
		want     Mode
	}{
		{"gmail", "read", Automatic}, {"gmail", "send", Approval},
		{"gmail", "Send", Disabled}, {"Gmail", "read", Disabled}, {"gmail", "send ", Disabled},
		{"gmail", "", Disabled}, {"slack", "read", Disabled},
	} {
		if got := s.Mode(c.svc, c.act); got != c.want {
			t.Errorf("%s/%q: %v, want %v", c.svc, c.act, got, c.want)
		}
	}
}

func TestDecodeRefusesMalformedAbilities(t *testing.T) {
	for _, in := range []string{
		`{"service":"gmail","actions":{}}`,
		`{"service":"gmail","actions":{"send":"yes"}}`,
		`{"service":"gmail","actions":{"send":""}}`,
		`{"service":"Gmail","actions":{"send":"automatic"}}`,
		`{"service":"gmail","actions":{"Send":"automatic"}}`,
		`{"service":"gmail","actions":{"send":"automatic"},"extra":1}`,
		`{"service":"gmail","actions":{"send":"automatic"}} {}`,
		`{"service":"gmail","actions":{"send":"automatic"},"credential":{"name":"k","hosts":[]}}`,
		`{"service":"gmail","actions":{"send":"automatic"},"credential":{"name":"k","hosts":["h"],"header":"A","query":"q"}}`,
		`{"service":"gmail","actions":{"send":"automatic"},"credential":{"name":"k","hosts":["h"],"query":"q","format":"%s"}}`,
		`{"service":"gmail","actions":{"send":"automatic"},"credential":{"name":"k","hosts":["h"]}}`,
	} {
		if _, err := Decode([]byte(in)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: accepted (%v)", in, err)
		}
	}
}

func TestServiceGrantedTwiceIsRefused(t *testing.T) {
	a := Ability{Service: "gmail", Actions: map[string]Mode{"send": Automatic}}
	if _, err := NewSet([]Ability{a, a}); err == nil {
		t.Fatal("a service granted twice was accepted")
	}
}

func TestUnlabelledToolIsALocalAction(t *testing.T) {
	if s, a := Of("echo", nil); s != LocalService || a != "echo" {
		t.Fatalf("%s/%s", s, a)
	}
	if s, a := Of("send-mail", map[string]string{LabelService: "gmail", LabelAction: "send"}); s != "gmail" || a != "send" {
		t.Fatalf("%s/%s", s, a)
	}
}

// FuzzDecode: whatever decodes is valid, and encodes and decodes back to
// the same grant.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"service":"gmail","actions":{"send":"approval","read":"automatic"}}`))
	f.Add([]byte(`{"service":"gh","actions":{"issues.create":"disabled"},"credential":{"name":"gh","hosts":["api.github.com"],"header":"Authorization","format":"Bearer %s"},"guidelines":"be nice"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := Decode(b)
		if err != nil {
			return
		}
		if err := a.Validate(); err != nil {
			t.Fatalf("decoded an invalid ability: %v", err)
		}
		out, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Decode(out)
		if err != nil {
			t.Fatalf("round trip: %v", err)
		}
		for k, m := range a.Actions {
			if back.Actions[k] != m {
				t.Fatalf("round trip changed %s", k)
			}
		}
	})
}
