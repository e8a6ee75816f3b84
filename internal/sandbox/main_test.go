package sandbox

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	InitIfChild()
	os.Exit(m.Run())
}
