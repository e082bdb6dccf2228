package opsui

// RiverUIRuns says whether River UI's background work runs now and how
// many runs started so far.
func RiverUIRuns(c *Console) (running bool, starts int) { return c.riverUI.isRunning() }
