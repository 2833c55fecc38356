package ha

// Pause holds c's rounds back, as when its process freezes: the lock
// connection goes quiet while the terms of its Locks go on. resume lets the
// rounds run again.
func (c *Conn) Pause() (resume func()) {
	c.mu.Lock()
	c.paused = true
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		c.paused = false
		c.mu.Unlock()
		c.kickLoop()
	}
}
