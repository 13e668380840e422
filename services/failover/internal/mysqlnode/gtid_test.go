package mysqlnode

import (
	"fmt"
	"testing"
)

func TestStateBeyond(t *testing.T) {
	tests := []struct {
		name, old, primary string
		want               string
	}{
		{name: "equal", old: "0-1-5", primary: "0-1-5", want: "[]"},
		{name: "prefix", old: "0-1-5", primary: "0-1-7", want: "[]"},
		{name: "primary moved on with its own server id", old: "0-1-5", primary: "0-1-5,0-2-9", want: "[]"},
		{name: "unreplicated tail hidden by a higher domain seq", old: "0-1-6", primary: "0-1-5,0-2-9", want: "[0-1-6]"},
		{name: "other domain", old: "0-1-5,1-1-3", primary: "0-1-5", want: "[1-1-3]"},
		{name: "empty old", old: "", primary: "0-1-5", want: "[]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := ParseState(tt.old)
			if err != nil {
				t.Fatal(err)
			}
			p, err := ParseState(tt.primary)
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(o.Beyond(p)); got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
	if _, err := ParseState("0-1"); err == nil {
		t.Fatal("bad gtid parsed")
	}
}
