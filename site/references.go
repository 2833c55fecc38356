package site

import (
	"context"
	"strings"
	"time"
)

// referencesEvery is how often detection checks that the price lists,
// warehouses and item groups the settings name still exist and are enabled.
const referencesEvery = 5 * time.Minute

// referencesRepeat is how often a problem that persists is logged again.
const referencesRepeat = time.Hour

// references is what detection last found wrong with the names the settings
// give, so that it logs a problem when it appears, and again only hourly.
type references struct {
	checkedAt time.Time // zero: check at the next step
	logged    string    // the problems last logged, one per line
	loggedAt  time.Time
}

// checkReferences checks the names the settings give (detector
// CheckReferences) when due: at start, after a reload and every
// referencesEvery. A name that does not exist, is disabled or was renamed
// would send empty prices or stock without a word: it is logged as an ERROR
// naming the key, the name, the likely new name and the fix, and counted in
// erpsync_settings_problems; the daemon goes on with the names that work.
func (r *detection) checkReferences(ctx context.Context) error {
	if !r.refs.checkedAt.IsZero() && time.Since(r.refs.checkedAt) < referencesEvery {
		return nil
	}
	refs, err := r.det.CheckReferences(ctx)
	if err != nil {
		return err
	}
	r.refs.checkedAt = time.Now()
	var lines []string
	severe := 0
	for _, ref := range refs {
		lines = append(lines, ref.Text(r.settingsFile))
		if ref.Severe() {
			severe++
		}
	}
	r.metrics.settingsProblems(severe)
	now := strings.Join(lines, "\n")
	switch {
	case now == "" && r.refs.logged != "":
		r.logger.Info("the price lists, warehouses and item groups the settings name all exist and are enabled again")
	case now != "" && (now != r.refs.logged || time.Since(r.refs.loggedAt) >= referencesRepeat):
		for _, ref := range refs {
			if ref.Severe() {
				r.logger.Error("settings name what ERPNext does not have: "+ref.Text(r.settingsFile),
					"key", ref.Key, "name", ref.Name, "problem", ref.Problem, "renamed_to", ref.RenamedTo)
			} else {
				r.logger.Warn(ref.Text(r.settingsFile), "key", ref.Key, "name", ref.Name, "problem", ref.Problem)
			}
		}
		r.refs.loggedAt = time.Now()
	}
	r.refs.logged = now
	return nil
}

// selectionSound reports whether items that the settings no longer select
// may be sent as deletes: not while erp.item_groups or erp.brands names a
// group or brand that ERPNext does not have (why says which and the fix), nor
// while that cannot be checked.
func (r *detection) selectionSound(ctx context.Context) (bool, string) {
	refs, err := r.det.CheckReferences(ctx)
	if err != nil {
		return false, "cannot check the item groups and brands the settings name: " + err.Error()
	}
	for _, ref := range refs {
		if ref.Severe() && (ref.Key == "erp.item_groups" || ref.Key == "erp.brands") {
			return false, ref.Text(r.settingsFile)
		}
	}
	return true, ""
}
