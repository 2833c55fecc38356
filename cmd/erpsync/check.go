package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/orderweave/erpsync/config"
	"github.com/orderweave/erpsync/detector"
	"github.com/orderweave/erpsync/ha"
	"github.com/orderweave/erpsync/signer"
	"github.com/orderweave/erpsync/site"
)

// CheckCommand is a doctor: it checks the settings, the database, the
// ingestion endpoint, the clock, the outbox and the log, and says how to fix
// each problem.
type CheckCommand struct{ stdio }

// Run runs every check and fails when any found a problem.
func (c *CheckCommand) Run(ctx context.Context, args []string) error {
	fs := newFlagSet("check", c.stderr, c.Usage)
	configPath, siteName := configFlag(fs), siteFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON for machines")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	path := config.Path(*configPath)
	doc := &doctor{path: path, site: *siteName, serviceUser: serviceUser()}
	doc.run(ctx)
	fails, warns := doc.count()
	if *asJSON {
		if err := printJSON(c.stdout, struct {
			Config  string        `json:"config"`
			OK      bool          `json:"ok"`
			Results []checkResult `json:"results"`
		}{path, fails == 0, doc.results}); err != nil {
			return err
		}
	} else {
		doc.print(c.stdout)
	}
	if fails > 0 {
		return fmt.Errorf("%d problem(s), %d warning(s): fix what FAIL says and run erpsync check again", fails, warns)
	}
	return nil
}

// Usage prints help.
func (c *CheckCommand) Usage() {
	fmt.Fprint(c.stdout, `usage: erpsync check [--config FILE] [--site NAME] [--json]

Checks everything erpsync needs and says how to fix each problem. Exits 1 when
any check FAILs (warnings do not fail). Safe while the daemon runs: it changes
nothing.

  settings   the file parses and every value is valid; it is not readable by
             others (it may hold the secret or the database password)
  secret     decodes from base64 to at least 32 bytes; secret_file is not
             readable by others
  database   reachable with erp.dsn; the ERPNext tables and columns erpsync
             reads are there and readable (SELECT); warns when the user may do
             more than read
  selection  erp.sync_field names a Check column of tabItem; the item group
             tree is there for erp.item_groups
  references every price list, warehouse, item group and brand the settings
             name (erp.price_lists, erp.warehouses, erp.item_groups,
             erp.brands) exists and is enabled; a renamed one is named with
             its new name; warns about a price list not for selling
  indexes    tabItem, tabItem Price, tabBin and tabDeleted Document have an
             index on modified (fresh ERPNext v16 sites lack it on Bin and
             Item Price, and every poll would read the whole table)
  binlog     whether MariaDB's binary log is on and readable for erp.watch
  ha         with ha.enabled: the MariaDB named lock works for this user (a
             test lock is taken and released; the site's own is not
             touched), and which host's erpsync holds the site's lock now;
             warns on Galera, which does not replicate named locks
  ingestion  ingest.url answers a signed probe. The probe is a POST signed
             exactly like a delivery, whose body carries an empty "items"
             list: PROTOCOL requires 1..batch_size items, so a receiver
             verifies the signature first and then refuses the body (the
             reference receiver answers 422) and nothing is stored. 400/422
             (or 2xx) means the signature was accepted; 401/403 means the
             secret, tenant or clock is wrong.
  clock      skew against the Date header of the ingestion server's answer
             (receivers refuse timestamps 5 s ahead or 5 min behind)
  outbox     outbox.path is an outbox (or its directory can hold one) and is
             writable; warns about dead letters
  log        log.file can be written
  metrics    metrics.listen is on loopback

Run it as root (sudo) to read the settings and the secret; file permissions are
then judged for the user the service runs as (erpsync).

Examples:
	sudo erpsync check
	sudo erpsync check --config /etc/erpsync/settings.toml --json
`)
}

// checkResult is one line of the report.
type checkResult struct {
	Check   string `json:"check"`
	Status  string `json:"status"` // "ok", "warn" or "fail"
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
}

// doctor runs the checks and collects their results.
type doctor struct {
	path        string
	site        string         // --site: which site's database, endpoint and outbox to check
	file        *config.Config // the whole file, as parsed
	cfg         *config.Site   // the site checked
	badKeys     []string       // the settings lines that failed, for checks that need those keys
	serviceUser *user.User     // the erpsync user, when running as root and it exists
	results     []checkResult
	httpClient  *http.Client // tests may set it
}

func (doc *doctor) add(check, status, msg, fix string) {
	doc.results = append(doc.results, checkResult{Check: check, Status: status, Message: msg, Fix: fix})
}
func (doc *doctor) ok(check, msg string)        { doc.add(check, "ok", msg, "") }
func (doc *doctor) warn(check, msg, fix string) { doc.add(check, "warn", msg, fix) }
func (doc *doctor) fail(check, msg, fix string) { doc.add(check, "fail", msg, fix) }

func (doc *doctor) count() (fails, warns int) {
	for _, r := range doc.results {
		switch r.Status {
		case "fail":
			fails++
		case "warn":
			warns++
		}
	}
	return fails, warns
}

func (doc *doctor) print(w io.Writer) {
	fmt.Fprintf(w, "erpsync check: %s\n\n", doc.path)
	for _, r := range doc.results {
		label := r.Status
		if label == "fail" {
			label = "FAIL"
		}
		fmt.Fprintf(w, "  %-5s %-10s %s\n", label, r.Check, r.Message)
		if r.Fix != "" {
			fmt.Fprintf(w, "  %-5s %-10s fix: %s\n", "", "", r.Fix)
		}
	}
	fails, warns := doc.count()
	fmt.Fprintf(w, "\n%d problem(s), %d warning(s)\n", fails, warns)
}

// serviceUser is the erpsync user when this runs as root, so that file
// permissions are judged for the daemon rather than for root.
func serviceUser() *user.User {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("erpsync")
	if err != nil {
		return nil
	}
	return u
}

// run runs every check in order; a check that needs what an earlier one
// found wrong says so instead of failing again.
func (doc *doctor) run(ctx context.Context) {
	file, err := config.Parse(doc.path)
	if err != nil {
		doc.fail("settings", err.Error(), "")
		return
	}
	doc.file = file
	doc.settings()
	switch {
	case doc.site != "":
		doc.cfg = file.Site(doc.site)
		if doc.cfg == nil {
			doc.fail("settings", fmt.Sprintf("--site %q: %s has no such site", doc.site, doc.path), "name one of its [[sites]]")
			return
		}
	case len(file.Sites) > 1:
		doc.fail("settings", fmt.Sprintf("%s has %d sites", doc.path, len(file.Sites)), "check each with erpsync check --site NAME")
		return
	default:
		doc.cfg = file.Sites[0]
	}
	cfg := doc.cfg
	doc.filePerms("settings", doc.path)
	if cfg.Tenant.SecretFile != "" && cfg.Tenant.Secret == "" {
		doc.filePerms("secret", cfg.Tenant.SecretFile)
	}
	doc.database(ctx)
	doc.ingestion(ctx)
	doc.outbox(ctx)
	doc.logFile()
	doc.metrics()
}

// settings validates the file and reads its secret and bench files
// (config's Validate and Resolve), reporting secret problems on their own
// line.
func (doc *doctor) settings() {
	err := errors.Join(doc.file.Validate(), doc.file.Resolve())
	var lines []string
	if err != nil {
		lines = strings.Split(err.Error(), "\n")
	}
	bad := 0
	seen := map[string]bool{}
	for _, l := range lines {
		if l = strings.TrimSpace(l); l == "" || seen[l] {
			continue // Resolve repeats what Validate says of a secret it cannot read
		}
		seen[l] = true
		doc.badKeys = append(doc.badKeys, l)
		check := "settings"
		if strings.HasPrefix(l, "tenant.secret") {
			check = "secret"
		}
		doc.fail(check, l, "edit "+doc.path)
		bad++
	}
	if bad == 0 {
		doc.ok("settings", doc.path+" is valid")
	}
	for _, sc := range doc.file.Sites {
		if key := sc.Key(); key != nil {
			from := "tenant.secret"
			if sc.Tenant.SecretFile != "" {
				from = "tenant.secret_file " + sc.Tenant.SecretFile
			}
			if len(doc.file.Sites) > 1 {
				from = "site " + sc.Name + ": " + from
			}
			doc.ok("secret", fmt.Sprintf("%s decodes to %d bytes (at least 32 needed)", from, len(key)))
		}
	}
}

// settingFailed reports whether a settings line about one of keys failed.
func (doc *doctor) settingFailed(keys ...string) bool {
	for _, l := range doc.badKeys {
		for _, k := range keys {
			if strings.Contains(l, k) {
				return true
			}
		}
	}
	return false
}

// filePerms fails when path is readable or writable by others, and when the
// service user cannot read it.
func (doc *doctor) filePerms(check, path string) {
	fi, err := os.Stat(path)
	if err != nil {
		return // validate already said so
	}
	mode := fi.Mode().Perm()
	if mode&0o006 != 0 {
		doc.fail(check, fmt.Sprintf("%s is %s by others (mode %04o): it may hold a secret", path, rw(mode&0o006), mode),
			fmt.Sprintf("chmod 0640 %s && chown root:erpsync %s", path, path))
		return
	}
	if u := doc.serviceUser; u != nil && !accessible(fi, u, 0o4) {
		msg := fmt.Sprintf("%s cannot be read by the %s user (mode %04o)", path, u.Username, mode)
		fix := fmt.Sprintf("chown root:%s %s && chmod 0640 %s", u.Username, path, path)
		// The daemon reads both files itself (and the secret again whenever
		// it is replaced): one it cannot read stops the service.
		doc.fail(check, msg, fix)
		return
	}
	doc.ok(check, fmt.Sprintf("%s is not readable by others (mode %04o)", path, mode))
}

func rw(bits fs.FileMode) string {
	switch {
	case bits&0o6 == 0o6:
		return "readable and writable"
	case bits&0o4 != 0:
		return "readable"
	}
	return "writable"
}

// accessible reports whether u may access fi with want (4 read, 2 write,
// 1 execute) by its permission bits.
func accessible(fi fs.FileInfo, u *user.User, want fs.FileMode) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	mode := fi.Mode().Perm()
	if strconv.FormatUint(uint64(st.Uid), 10) == u.Uid {
		return mode&(want<<6) == want<<6
	}
	groups, _ := u.GroupIds()
	for _, g := range append(groups, u.Gid) {
		if g == strconv.FormatUint(uint64(st.Gid), 10) {
			return mode&(want<<3) == want<<3
		}
	}
	return mode&want == want
}

// writable reports whether dir-or-file path can be written by the service
// user (when root runs check) or by this process.
func (doc *doctor) writable(path string) (bool, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	want := fs.FileMode(0o2)
	if fi.IsDir() {
		want = 0o3
	}
	if u := doc.serviceUser; u != nil {
		return accessible(fi, u, want), nil
	}
	return syscall.Access(path, uint32(want)) == nil, nil
}

func (doc *doctor) who() string {
	if doc.serviceUser != nil {
		return "the " + doc.serviceUser.Username + " user"
	}
	if u, err := user.Current(); err == nil {
		return "user " + u.Username
	}
	return "this user"
}

// database checks the connection, tables, grants, indexes and binary log.
func (doc *doctor) database(ctx context.Context) {
	cfg := doc.cfg
	raw := cfg.ERP.DSN.Reveal()
	if raw == "" {
		return // validate said so
	}
	mcfg, err := mysql.ParseDSN(raw)
	if err != nil {
		return // validate said so
	}
	redact := func(s string) string {
		if mcfg.Passwd != "" {
			s = strings.ReplaceAll(s, mcfg.Passwd, "xxxxx")
		}
		return s
	}
	db, err := detector.Open(raw)
	if err != nil {
		doc.fail("database", redact(err.Error()), "fix erp.dsn in "+doc.path)
		return
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	where := fmt.Sprintf("database %s on %s as %s", mcfg.DBName, mcfg.Addr, mcfg.User)
	var serverVersion string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&serverVersion); err != nil {
		fix := "check that MariaDB is running and listening there (systemctl status mariadb), and erp.dsn's address"
		switch detector.Refused(err) {
		case detector.BadLogin:
			fix = "check the user and password in erp.dsn"
		case detector.NoDatabase:
			fix = fmt.Sprintf("set the database in erp.dsn to the site's db_name (sites/<site>/site_config.json) and grant: GRANT SELECT ON `%s`.* TO '%s'@'localhost';", mcfg.DBName, mcfg.User)
		}
		doc.fail("database", "cannot connect to "+where+": "+redact(err.Error()), fix)
		return
	}
	doc.ok("database", "connected to "+where+" (MariaDB "+serverVersion+")")

	dcfg := site.DetectorConfig(cfg, nil)
	if err := detector.CheckSelection(ctx, db, dcfg.Selection); err != nil {
		doc.fail("selection", redact(err.Error()), "edit "+doc.path)
		// Said: the tables check is about the rest.
		dcfg.Selection.SyncField, dcfg.Selection.ItemGroups = "", nil
	}
	det, err := detector.New(ctx, db, dcfg)
	if err != nil {
		doc.fail("tables", redact(err.Error()), fmt.Sprintf("point erp.dsn at the site's database (db_name in sites/<site>/site_config.json) and make sure %s may read it: GRANT SELECT ON `%s`.* TO '%s'@'localhost';", mcfg.User, mcfg.DBName, mcfg.User))
	} else {
		doc.ok("tables", "the ERPNext tables and columns erpsync reads are present; site time zone "+det.Location().String())
		doc.timeZone(ctx, db)
	}
	doc.references(ctx, db, err == nil)
	doc.grants(ctx, db, mcfg)
	doc.indexes(ctx, db)
	doc.binlog(ctx, db)
	if cfg.HA.Enabled {
		doc.ha(ctx, db, redact)
	}
}

// ha checks that the site's named lock can work: a test lock is taken and
// released, this user sees its own connections in the process list (as a
// standby must see the active one's), and it says who holds the site's lock.
func (doc *doctor) ha(ctx context.Context, db *sql.DB, redact func(string) string) {
	name, err := site.LockName(doc.cfg)
	if err != nil {
		return // validate said so
	}
	rep, err := ha.Check(ctx, db, name)
	if err != nil {
		doc.fail("ha", "the named lock does not work: "+redact(err.Error()),
			"ha.enabled needs GET_LOCK, IS_USED_LOCK, RELEASE_LOCK and information_schema.PROCESSLIST, which any MariaDB user may use; check that erp.dsn points at MariaDB itself (not a proxy that spreads queries over several servers)")
		return
	}
	holder := "no erpsync holds it now (the first erpsync run to start takes it)"
	switch h := rep.Holder; {
	case h.ConnID != 0 && h.Visible:
		holder = fmt.Sprintf("the erpsync on host %s holds it now (connection %d)", h.Host, h.ConnID)
	case h.ConnID != 0:
		holder = fmt.Sprintf("connection %d holds it now, which this user cannot see in the process list", h.ConnID)
		doc.warn("ha", fmt.Sprintf("lock %s is held by connection %d of another database user: a standby could not end it if its host died silently", name, h.ConnID),
			"give every erpsync host the same database user in erp.dsn")
	}
	doc.ok("ha", fmt.Sprintf("the named lock works (a test lock taken and released); site lock %s: %s", name, holder))
	if rep.Galera {
		doc.warn("ha", "this server is a Galera node (wsrep_on): named locks are not replicated, so erpsync on two hosts that reach different nodes would both be active",
			"point erp.dsn on every erpsync host at the same node, or at a proxy that sends all connections to one node and ends them when it moves to another (README: Galera)")
	}
}

// references fails for each price list, warehouse, item group or brand the
// settings name that does not exist (saying what ERPNext renamed it to, when
// it recorded that) or is disabled, and warns about a price list that is not
// for selling: left so, prices, stock or items would silently not be sent.
// tablesOK says whether the tables check passed; when not, a failure to read
// the names is what it said already.
func (doc *doctor) references(ctx context.Context, db *sql.DB, tablesOK bool) {
	refs, err := detector.CheckReferences(ctx, db, doc.cfg.ERP.Selection())
	if err != nil {
		if !tablesOK {
			return
		}
		doc.warn("references", "cannot check the names in erp.price_lists, erp.warehouses, erp.item_groups and erp.brands: "+err.Error(),
			"grant SELECT on the site's database (tabPrice List, tabWarehouse, tabItem Group, tabBrand, tabComment)")
		return
	}
	for _, r := range refs {
		if r.Severe() {
			doc.fail("references", r.Message, r.Fix(doc.path))
		} else {
			doc.warn("references", r.Message, r.Fix(doc.path))
		}
	}
	if len(refs) == 0 {
		doc.ok("references", "every price list, warehouse, item group and brand the settings name exists and is enabled (an empty list selects all)")
	}
}

// timeZone fails when erp.time_zone names another zone than System Settings:
// ERPNext stamps `modified` in System Settings' zone, so cursors and
// validity dates would be read hours off.
func (doc *doctor) timeZone(ctx context.Context, db *sql.DB) {
	site, err := detector.SiteTimeZone(ctx, db)
	if err != nil {
		doc.warn("time zone", "cannot read System Settings' time zone: "+err.Error(), "grant SELECT on tabSingles")
		return
	}
	set := doc.cfg.ERP.TimeZone
	switch {
	case set == "":
		doc.ok("time zone", "the site's time zone is "+site+" (System Settings; erp.time_zone is empty, so erpsync follows it)")
	case set != site:
		doc.fail("time zone", fmt.Sprintf("erp.time_zone = %q but System Settings says %q: ERPNext stamps changes in %s, so erpsync would read them hours off", set, site, site),
			fmt.Sprintf("set erp.time_zone = %q, or leave it empty to follow System Settings, in %s", site, doc.path))
	default:
		doc.ok("time zone", "erp.time_zone matches System Settings ("+site+")")
	}
}

// readTables are the tables erpsync reads.
var readTables = []string{"tabItem", "tabItem Price", "tabBin", "tabItem Barcode", "tabDeleted Document", "tabSingles"}

var grantPattern = regexp.MustCompile("^GRANT (.+?) ON (\\S+) TO ")

func (doc *doctor) grants(ctx context.Context, db *sql.DB, mcfg *mysql.Config) {
	var denied []string
	for _, t := range readTables {
		var one int
		err := db.QueryRowContext(ctx, "SELECT 1 FROM `"+t+"` LIMIT 1").Scan(&one)
		var me *mysql.MySQLError
		if err != nil && !errors.Is(err, sql.ErrNoRows) && errors.As(err, &me) && (me.Number == 1142 || me.Number == 1146) {
			denied = append(denied, "`"+t+"`")
		}
	}
	if len(denied) > 0 {
		doc.fail("grants", fmt.Sprintf("%s cannot read %s", mcfg.User, strings.Join(denied, ", ")),
			fmt.Sprintf("GRANT SELECT ON `%s`.* TO '%s'@'localhost';", mcfg.DBName, mcfg.User))
		return
	}
	rows, err := db.QueryContext(ctx, "SHOW GRANTS")
	if err != nil {
		doc.warn("grants", "cannot list this user's grants: "+err.Error(), "")
		return
	}
	defer rows.Close()
	var broader []string
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			break
		}
		// Only the privileges and the object are kept: a grant line may
		// carry a password hash.
		m := grantPattern.FindStringSubmatch(g)
		if m == nil {
			if strings.HasPrefix(g, "GRANT ") {
				broader = append(broader, "a role")
			}
			continue
		}
		for _, p := range strings.Split(m[1], ",") {
			p = strings.TrimSpace(p)
			switch strings.ToUpper(p) {
			case "USAGE", "SELECT", "SHOW VIEW":
			default:
				broader = append(broader, p+" ON "+m[2])
			}
		}
		if strings.Contains(g, "WITH GRANT OPTION") {
			broader = append(broader, "GRANT OPTION ON "+m[2])
		}
	}
	if len(broader) > 0 {
		sort.Strings(broader)
		doc.warn("grants", fmt.Sprintf("%s may do more than read: %s (erpsync only reads)", mcfg.User, strings.Join(broader, "; ")),
			fmt.Sprintf("use a read-only user: CREATE USER 'erpsync'@'localhost' IDENTIFIED BY '…'; GRANT SELECT ON `%s`.* TO 'erpsync'@'localhost'; then set it in erp.dsn", mcfg.DBName))
		return
	}
	doc.ok("grants", mcfg.User+" can read every table erpsync needs, and nothing more than read")
}

// pollTables are the tables polled on their modified index.
var pollTables = []string{"tabItem", "tabItem Price", "tabBin", "tabDeleted Document"}

func (doc *doctor) indexes(ctx context.Context, db *sql.DB) {
	rows, err := db.QueryContext(ctx, `SELECT DISTINCT TABLE_NAME FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = DATABASE() AND COLUMN_NAME = 'modified' AND SEQ_IN_INDEX = 1
		AND TABLE_NAME IN ('tabItem', 'tabItem Price', 'tabBin', 'tabDeleted Document')`)
	if err != nil {
		doc.warn("indexes", "cannot read the index list: "+err.Error(), "")
		return
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var t string
		if rows.Scan(&t) == nil {
			have[t] = true
		}
	}
	var missing, fixes []string
	for _, t := range pollTables {
		if !have[t] {
			missing = append(missing, "`"+t+"`")
			fixes = append(fixes, "ALTER TABLE `"+t+"` ADD INDEX modified (modified);")
		}
	}
	if len(missing) > 0 {
		doc.fail("indexes", fmt.Sprintf("no index on modified in %s (fresh ERPNext v16 sites create none on Bin and Item Price): every poll reads the whole table", strings.Join(missing, ", ")),
			"as the database administrator (erpsync's user only reads): "+strings.Join(fixes, " "))
		return
	}
	doc.ok("indexes", "tabItem, tabItem Price, tabBin and tabDeleted Document have an index on modified")
}

func (doc *doctor) binlog(ctx context.Context, db *sql.DB) {
	watch := doc.cfg.ERP.Watch
	var on string
	var base sql.NullString
	if err := db.QueryRowContext(ctx, "SELECT @@log_bin, @@log_bin_basename").Scan(&on, &base); err != nil {
		doc.warn("binlog", "cannot read log_bin: "+err.Error(), "")
		return
	}
	const enable = "enable it: add log_bin = /var/lib/mysql/mariadb-bin and server_id = 1 under [mariadbd] in /etc/mysql/mariadb.conf.d/50-server.cnf, restart MariaDB"
	if on != "1" && !strings.EqualFold(on, "ON") {
		if watch != "" {
			doc.fail("binlog", "erp.watch = \""+watch+"\" but the binary log is off: commits cannot wake the detector", enable+"; or set erp.watch = \"\" to poll only")
		} else {
			doc.ok("binlog", "the binary log is off: erpsync polls every erp.poll_interval (to detect each commit at once, "+enable+" and set erp.watch)")
		}
		return
	}
	dir, prefix := "", ""
	if base.Valid && base.String != "" {
		dir, prefix = filepath.Dir(base.String), filepath.Base(base.String)
	}
	if watch == "" {
		msg := "the binary log is on"
		if dir != "" {
			msg += " in " + dir + ": set erp.watch = \"" + dir + "\" to detect each commit at once"
		}
		doc.ok("binlog", msg+" (polling every erp.poll_interval meanwhile)")
		return
	}
	readFix := fmt.Sprintf("let %s read it: usermod -aG mysql erpsync, and add SupplementaryGroups=mysql with systemctl edit erpsync", watch)
	entries, err := os.ReadDir(watch)
	if err != nil {
		doc.fail("binlog", "erp.watch = \""+watch+"\": "+err.Error(), readFix+"; or set erp.watch to the directory of log_bin_basename ("+dir+")")
		return
	}
	if dir != "" && filepath.Clean(watch) != dir {
		doc.warn("binlog", fmt.Sprintf("erp.watch = %q but MariaDB writes its binary log in %s", watch, dir),
			"set erp.watch = \""+dir+"\" (if MariaDB runs in a container or on another host, its binary log cannot be watched: set erp.watch = \"\")")
	}
	var logs []string
	for _, e := range entries {
		if prefix == "" || strings.HasPrefix(e.Name(), prefix+".") && !strings.HasSuffix(e.Name(), ".index") {
			logs = append(logs, e.Name())
		}
	}
	if len(logs) == 0 {
		doc.fail("binlog", "erp.watch = \""+watch+"\" holds no binary log files ("+prefix+".*)", "set erp.watch to the directory of log_bin_basename ("+dir+")")
		return
	}
	sort.Strings(logs)
	newest := filepath.Join(watch, logs[len(logs)-1])
	fi, err := os.Stat(newest)
	readable := err == nil
	if readable && doc.serviceUser != nil {
		readable = accessible(fi, doc.serviceUser, 0o4)
	} else if readable {
		f, err := os.Open(newest)
		readable = err == nil
		if f != nil {
			f.Close()
		}
	}
	if !readable {
		doc.fail("binlog", fmt.Sprintf("%s cannot read the binary log %s", doc.who(), newest), readFix)
		return
	}
	doc.ok("binlog", "the binary log is on and "+newest+" is readable: commits wake the detector at once")
}

// ingestion sends the signed probe and measures the clock skew from the
// answer's Date header.
func (doc *doctor) ingestion(ctx context.Context) {
	cfg := doc.cfg
	key := cfg.Tenant.Key()
	if key == nil || doc.settingFailed("ingest.url", "tenant.id") {
		doc.fail("ingestion", "not probed: the settings above must be fixed first", "fix the settings, then run erpsync check again")
		return
	}
	var b [8]byte
	rand.Read(b[:])
	deliveryID := "erpsync-check-" + hex.EncodeToString(b[:])
	body, err := signer.Canonical(map[string]any{"delivery_id": deliveryID, "items": []any{}, "tenant": cfg.Tenant.ID})
	if err != nil {
		doc.fail("ingestion", err.Error(), "")
		return
	}
	timeout := cfg.Ingest.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	hc := doc.httpClient
	if hc == nil {
		hc = &http.Client{
			Timeout:       timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport: &http.Transport{
				Proxy:           http.ProxyFromEnvironment,
				TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12},
			},
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.Ingest.URL, bytes.NewReader(body))
	if err != nil {
		doc.fail("ingestion", err.Error(), "fix ingest.url in "+doc.path)
		return
	}
	sent := time.Now()
	for _, kv := range requestHeaders(cfg, deliveryID, sent.Unix(), body) {
		req.Header.Set(kv[0], kv[1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		var dnsErr *net.DNSError
		fix := "check ingest.url, and that this host can reach it (firewall, proxy: HTTPS_PROXY)"
		if errors.As(err, &dnsErr) {
			fix = "the host name does not resolve: check ingest.url and DNS"
		}
		doc.fail("ingestion", "cannot reach "+cfg.Ingest.URL+": "+err.Error(), fix)
		doc.fail("clock", "not measured: the ingestion server did not answer", "")
		return
	}
	got := time.Now()
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	resp.Body.Close()
	answer := fmt.Sprintf("%s answered %d", cfg.Ingest.URL, resp.StatusCode)
	if s := oneLine(string(excerpt), 200); s != "" {
		answer += ": " + s
	}
	switch code := resp.StatusCode; {
	case code == 400 || code == 422:
		doc.ok("ingestion", fmt.Sprintf("%s accepted the signature of the probe and refused its empty item list (%d), as PROTOCOL expects", cfg.Ingest.URL, code))
	case code >= 200 && code < 300:
		doc.ok("ingestion", fmt.Sprintf("%s accepted the signed probe (%d)", cfg.Ingest.URL, code))
	case code == 401 || code == 403:
		doc.fail("ingestion", answer+" (HMAC rejected)",
			"make tenant.id and the secret match what the ingestion service holds for this tenant, and check the clock below")
	case code >= 300 && code < 400:
		doc.fail("ingestion", answer+" (redirect to "+resp.Header.Get("Location")+")", "erpsync does not follow redirects: set ingest.url to the final address")
	case code == 404 || code == 405:
		doc.fail("ingestion", answer, "check the path of ingest.url")
	case code == 410:
		doc.fail("ingestion", answer, "the endpoint is gone: ask the ingestion service for its new address and set ingest.url")
	case code == 408 || code == 425 || code == 429 || code >= 500:
		doc.fail("ingestion", answer+" (the service is in trouble; deliveries would be retried)", "try again later, or ask the ingestion service")
	default:
		doc.fail("ingestion", answer, "check ingest.url")
	}
	doc.clock(resp.Header.Get("Date"), sent, got)
}

// clock compares this host's clock with the server's Date header, which has
// one-second resolution.
func (doc *doctor) clock(date string, sent, got time.Time) {
	server, err := http.ParseTime(date)
	if err != nil {
		doc.warn("clock", "the ingestion server sent no Date header: skew not measured", "keep this host's clock synchronised (timedatectl set-ntp true)")
		return
	}
	mid := sent.Add(got.Sub(sent) / 2)
	skew := server.Add(500 * time.Millisecond).Sub(mid) // > 0: this clock is behind
	uncertainty := 500*time.Millisecond + got.Sub(sent)/2
	const fix = "synchronise the clock: timedatectl set-ntp true (or install chrony), then check timedatectl status"
	ahead := -skew
	switch {
	case ahead-uncertainty > signer.MaxFutureSkew:
		doc.fail("clock", fmt.Sprintf("this host's clock is %s ahead of the ingestion server: receivers refuse timestamps more than %s ahead (HMAC rejected)", ahead.Round(time.Second), signer.MaxFutureSkew), fix)
	case skew-uncertainty > signer.Window-time.Minute:
		doc.fail("clock", fmt.Sprintf("this host's clock is %s behind the ingestion server: receivers refuse timestamps older than %s", skew.Round(time.Second), signer.Window), fix)
	case skew.Abs() > uncertainty+time.Second:
		doc.warn("clock", fmt.Sprintf("this host's clock is %s off the ingestion server's", skew.Round(time.Second)), fix)
	default:
		doc.ok("clock", fmt.Sprintf("within %s of the ingestion server", (uncertainty+time.Second).Round(100*time.Millisecond)))
	}
}

func (doc *doctor) outbox(ctx context.Context) {
	path := doc.cfg.Outbox.Path
	if path == "" {
		return // validate said so
	}
	dir := filepath.Dir(path)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		ok, err := doc.writable(dir)
		switch {
		case err != nil:
			doc.fail("outbox", fmt.Sprintf("directory %s of outbox.path: %v", dir, err), "create it: install -d -o erpsync -g erpsync -m 0750 "+dir+" (the unit's StateDirectory= does this for /var/lib/erpsync)")
		case !ok:
			doc.fail("outbox", fmt.Sprintf("%s cannot write directory %s of outbox.path", doc.who(), dir), "chown erpsync:erpsync "+dir)
		default:
			doc.ok("outbox", "no outbox yet at "+path+": the daemon creates it on first start")
		}
		return
	}
	ob, err := openExistingOutbox(ctx, doc.cfg)
	if err != nil {
		doc.fail("outbox", err.Error(), "set outbox.path to an erpsync outbox, or to a new file")
		return
	}
	defer ob.Close()
	st, err := ob.Stats(ctx)
	if err != nil {
		doc.fail("outbox", err.Error(), "")
		return
	}
	for _, p := range []string{dir, path} {
		if ok, err := doc.writable(p); err == nil && !ok {
			doc.fail("outbox", fmt.Sprintf("%s cannot write %s", doc.who(), p), "chown -R erpsync:erpsync "+dir)
			return
		}
	}
	msg := fmt.Sprintf("%s is writable: %d pending, %d dead, %d delivered", path, st.Pending, st.Dead, st.Delivered)
	if st.Dead > 0 {
		doc.warn("outbox", msg, "see why with erpsync outbox list; send again with erpsync outbox retry ID|--all-dead once the cause is fixed")
		return
	}
	doc.ok("outbox", msg)
}

func (doc *doctor) logFile() {
	file := doc.file.Log.File
	if file == "" || file == "-" {
		doc.ok("log", "the sync log goes to stderr only (the journal under systemd)")
		return
	}
	// The daemon creates the file, and its directory when missing: what
	// must be writable is the file, or its nearest existing ancestor.
	target := file
	for {
		if _, err := os.Stat(target); !errors.Is(err, fs.ErrNotExist) || filepath.Dir(target) == target {
			break
		}
		target = filepath.Dir(target)
	}
	ok, err := doc.writable(target)
	switch {
	case err != nil:
		doc.fail("log", fmt.Sprintf("log.file %s: %v", file, err), "create the directory: install -d -o erpsync -g erpsync -m 0750 "+filepath.Dir(file)+" (the unit's LogsDirectory= does this for /var/log/erpsync)")
	case !ok:
		doc.fail("log", fmt.Sprintf("%s cannot write %s", doc.who(), target), "chown erpsync:erpsync "+target)
	default:
		doc.ok("log", file+" is writable")
	}
}

func (doc *doctor) metrics() {
	addr := doc.file.Metrics.Listen
	if addr == "" {
		return
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return // validate said so
	}
	if !config.IsLoopback(host) {
		doc.warn("metrics", "metrics.listen = \""+addr+"\" is not a loopback address: anyone who can reach it reads the metrics",
			"listen on 127.0.0.1 and let a local Prometheus or a reverse proxy scrape it")
		return
	}
	doc.ok("metrics", "metrics on http://"+addr+"/metrics")
}
