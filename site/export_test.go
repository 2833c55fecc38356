package site

import "time"

// SafetyOffset is where in every the own polls of the site named name fall.
func SafetyOffset(every time.Duration, name string) time.Duration { return safetyOffset(every, name) }

// SafetyNetMin is the least time between two own polls of a probed site.
const SafetyNetMin = safetyNetMin

// ProbeCounts returns, summed over the database servers, how many full
// probes ran, how many the change mark saved, and how many reads of the
// binary log ran instead.
func (s *Servers) ProbeCounts() (probes, skipped, logged int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sv := range s.servers {
		sv.mu.Lock()
		probes += sv.probes
		skipped += sv.skipped
		logged += sv.logged
		sv.mu.Unlock()
	}
	return probes, skipped, logged
}

// OutboxConnections returns the connections the running site's outbox
// holds open, writing and reading (-1, -1: the site does not run).
func (p *Pipeline) OutboxConnections() (writing, reading int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ob == nil {
		return -1, -1
	}
	return p.ob.OpenConnections()
}
