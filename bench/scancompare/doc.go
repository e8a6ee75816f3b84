// Package scancompare benchmarks clawkeep's secret scanner against gitleaks on the same text and the same labelled corpus.
//
// It is a separate module so that the product module never depends on
// gitleaks; it has no code outside its tests. Run it with
//
//	cd bench/scancompare && go test -run TestRecallOnCorpus -v
//	cd bench/scancompare && go test -run '^$' -bench . -benchmem
//
// # Threat model
//
// The inputs hold only fake keys made from a seeded PRNG (no real credential
// is stored or generated), and nothing here touches the network. The risk
// it guards against is a benchmark that prints the secrets it scans: a test
// log or a gitleaks debug line copied into docs would carry key-shaped
// strings.
//
// # Guarantees
//
// Both tools see byte-identical inputs. The tests log counts and rule names
// only, never a scanned text or a finding's value, and gitleaks' global
// logger is silenced before any detector runs. Every corpus line is scanned
// by both tools, and the test fails if one is skipped.
package scancompare
