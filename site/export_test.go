package site

// ProbeCounts returns, summed over the database servers, how many full
// probes ran and how many the change mark saved.
func (s *Servers) ProbeCounts() (probes, skipped int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sv := range s.servers {
		sv.mu.Lock()
		probes += sv.probes
		skipped += sv.skipped
		sv.mu.Unlock()
	}
	return probes, skipped
}
